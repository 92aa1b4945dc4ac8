import Testing
import TaskShedProtocol

@Suite struct DurationSyntaxTests {
    @Test(arguments: [
        ("0.2s", Int64(200_000)), ("1.5m", 90_000_000), ("2.5ms", 2_500), ("0.5d", 43_200_000_000), ("1h0.5m", 3_630_000_000),
        ("0.000001s", 1), ("1.50000000000000000000s", 1_500_000), ("0.0000000003125d", 27), ("3µs", 3),
        ("106751991d", 9_223_372_022_400_000_000),
    ])
    func decimalsAreExact(_ text: String, _ micros: Int64) throws {
        #expect(try DurationSyntax.parseMicros(text) == micros)
    }

    @Test(arguments: [
        ("1.5us", "'1.5us' is not a whole number of microseconds (the resolution is 1us)"),
        ("0.00000000001d", "'0.00000000001d' is not a whole number of microseconds (the resolution is 1us)"),
        ("1.0000000000000000001s", "'1.0000000000000000001s' is not a whole number of microseconds (the resolution is 1us)"),
        ("106751992d", "the duration is too long"), ("99999999999999999999s", "the number is too large"),
        ("", "it is empty"), ("1.2.3s", "a number has more than one decimal point"),
        (".5s", "a decimal needs a digit before the decimal point (0.5s, not .5s)"),
        ("5.s", "expected a digit after the decimal point"), ("2x", "unknown unit 'x'"), ("5 m", "unknown unit ' m'"),
        ("-1s", "expected a number at '-1s'"), ("1m1h", "units must go from largest to smallest, each once"),
        ("30", "'30' has no unit"),
    ])
    func refusalsSayWhatIsWrong(_ text: String, _ problem: String) {
        #expect(throws: DurationSyntaxError(problem: problem)) { try DurationSyntax.parseMicros(text) }
    }

    @Test func aBareNumberTakesTheCallersUnitOnlyWhenItIsTheWholeText() throws {
        #expect(try DurationSyntax.parseMicros("30", bareNumberMicros: 1_000_000) == 30_000_000)
        #expect(try DurationSyntax.parseMicros("0.25", bareNumberMicros: 1_000_000) == 250_000)
        #expect(throws: DurationSyntaxError(problem: "'5' has no unit")) {
            try DurationSyntax.parseMicros("1m5", bareNumberMicros: 1_000_000)
        }
    }
}
