/// The duration syntax that the daemon's options and `taskshedctl`'s arguments share, so that a duration
/// written for one is read the same way by the other. (It lives here because this is the one module both
/// depend on; it does no I/O.)
///
/// Grammar: one or more parts `<digits>[.<digits>]<unit>`, with units `d`, `h`, `m`, `s`, `ms`, `us` (also
/// `µs`), each unit at most once and from the largest to the smallest: `500ms`, `0.2s`, `1.5m`, `2h30m`,
/// `1h0.5m`. Decimals are written as systemd and most tools write them (`0.5s`, not `.5s`). Durations are
/// whole microseconds: a part finer than that (`1.5us`, `0.0000001s`) is refused rather than rounded, so
/// that a value is never silently changed. Only ASCII digits count, and no signs, exponents or spaces.
public enum DurationSyntax {
    /// The units, largest first.
    static let units: [(name: String, micros: Int64)] = [
        ("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000),
        ("us", 1), ("µs", 1),
    ]

    /// Parses a duration.
    /// - Parameters:
    ///   - text: The duration, such as `2h30m` or `0.2s`.
    ///   - bareNumberMicros: What a number without a unit is worth (the daemon reads `30` as seconds, as
    ///     systemd does); `nil` refuses a bare number, whose unit would be a guess.
    /// - Returns: The duration in microseconds (>= 0).
    /// - Throws: `DurationSyntaxError` saying what is wrong.
    public static func parseMicros(_ text: String, bareNumberMicros: Int64? = nil) throws(DurationSyntaxError)
        -> Int64
    {
        func fail(_ problem: String) -> DurationSyntaxError { DurationSyntaxError(problem: problem) }
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { throw fail("it is empty") }
        func isDigit(_ index: Int) -> Bool {
            index < scalars.count && scalars[index].value >= 0x30 && scalars[index].value <= 0x39
        }
        func isPoint(_ index: Int) -> Bool { index < scalars.count && scalars[index] == "." }
        func rest(_ index: Int) -> String { String(String.UnicodeScalarView(scalars[index...])) }

        var index = 0
        var total: Int64 = 0
        var lastUnitMicros = Int64.max
        while index < scalars.count {
            let partStart = index
            guard isDigit(index) else {
                if isPoint(index) { throw fail("a decimal needs a digit before the decimal point (0.5s, not .5s)") }
                throw fail("expected a number at '\(rest(index))'")
            }
            var whole: Int64 = 0
            while isDigit(index) {
                let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int64(scalars[index].value - 0x30))
                guard !o1, !o2 else { throw fail("the number is too large") }
                whole = sum
                index += 1
            }
            var fraction: [UInt8] = []
            if isPoint(index) {
                index += 1
                guard isDigit(index) else { throw fail("expected a digit after the decimal point") }
                while isDigit(index) {
                    fraction.append(UInt8(scalars[index].value - 0x30))
                    index += 1
                }
                if isPoint(index) { throw fail("a number has more than one decimal point") }
            }
            let unitStart = index
            while index < scalars.count, !isDigit(index), !isPoint(index) { index += 1 }
            let unit = String(String.UnicodeScalarView(scalars[unitStart..<index]))
            let unitMicros: Int64
            if unit.isEmpty {
                guard let bareNumberMicros, partStart == 0, index == scalars.count else {
                    throw fail("'\(String(String.UnicodeScalarView(scalars[partStart..<index])))' has no unit")
                }
                unitMicros = bareNumberMicros
            } else {
                guard let entry = units.first(where: { $0.name == unit }) else { throw fail("unknown unit '\(unit)'") }
                guard entry.micros < lastUnitMicros else {
                    throw fail("units must go from largest to smallest, each once")
                }
                lastUnitMicros = entry.micros
                unitMicros = entry.micros
            }
            let part = String(String.UnicodeScalarView(scalars[partStart..<index]))
            guard let fractionMicros = micros(ofFraction: fraction, unitMicros: unitMicros) else {
                throw fail("'\(part)' is not a whole number of microseconds (the resolution is 1us)")
            }
            let (wholeMicros, o1) = whole.multipliedReportingOverflow(by: unitMicros)
            let (partMicros, o2) = wholeMicros.addingReportingOverflow(fractionMicros)
            let (sum, o3) = total.addingReportingOverflow(partMicros)
            guard !o1, !o2, !o3 else { throw fail("the duration is too long") }
            total = sum
        }
        return total
    }

    /// `0.<digits>` of a unit in whole microseconds, or `nil` when it is not a whole number of them.
    static func micros(ofFraction digits: [UInt8], unitMicros: Int64) -> Int64? {
        var digits = digits[...]
        while digits.last == 0 { digits = digits.dropLast() }
        if digits.isEmpty { return 0 }
        // The largest unit is 2^13 · 3^3 · 5^8 µs: with more than 13 significant decimals no fraction of it is
        // whole, and 18 digits still fit in an Int64.
        guard digits.count <= 13 else { return nil }
        var numerator: Int64 = 0
        var denominator: Int64 = 1
        for digit in digits {
            numerator = numerator * 10 + Int64(digit)
            denominator *= 10
        }
        let (quotient, remainder) = denominator.dividingFullWidth(numerator.multipliedFullWidth(by: unitMicros))
        return remainder == 0 ? quotient : nil
    }
}

/// A duration that `DurationSyntax` cannot read.
public struct DurationSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, to be put after the input in a message ("unknown unit 'x'").
    public var problem: String

    /// Creates an error.
    /// - Parameter problem: What is wrong.
    public init(problem: String) { self.problem = problem }

    public var description: String { problem }
}
