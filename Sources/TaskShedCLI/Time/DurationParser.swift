/// Parses durations such as `90s`, `5m`, `2h30m`, `1d`, `500ms` into microseconds.
///
/// Grammar: one or more `<digits><unit>` parts with units `d`, `h`, `m`, `s`, `ms`, `us` (also `µs`), each unit
/// at most once and from the largest to the smallest (`1h30m`, not `30m1h`). A bare number is rejected because
/// its unit would be a guess.
public enum DurationParser {
    private static let units: [(name: String, micros: Int64)] = [
        ("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000),
        ("us", 1), ("µs", 1),
    ]

    /// Parses a duration.
    /// - Parameter text: The argument, such as `2h30m`.
    /// - Returns: The duration in microseconds (>= 0).
    /// - Throws: `TimeParseError` (kind `.duration`) naming the problem.
    public static func parseMicros(_ text: String) throws(TimeParseError) -> Int64 {
        func fail(_ problem: String) -> TimeParseError {
            TimeParseError(kind: .duration, input: text, problem: problem)
        }
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { throw fail("it is empty") }
        var index = 0
        var total: Int64 = 0
        var lastUnitMicros = Int64.max
        while index < scalars.count {
            var number: Int64 = 0
            let digitsStart = index
            while index < scalars.count, scalars[index].isASCII, ("0"..."9").contains(scalars[index]) {
                let digit = Int64(scalars[index].value - 48)
                let (times10, o1) = number.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(digit)
                guard !o1, !o2 else { throw fail("the number is too large") }
                number = sum
                index += 1
            }
            guard index > digitsStart else {
                throw fail("expected a number at '\(String(String.UnicodeScalarView(scalars[index...])))'")
            }
            let unitStart = index
            while index < scalars.count, !("0"..."9").contains(scalars[index]) {
                index += 1
            }
            let unit = String(String.UnicodeScalarView(scalars[unitStart..<index]))
            guard !unit.isEmpty else {
                throw fail("'\(number)' has no unit")
            }
            guard let entry = units.first(where: { $0.name == unit }) else {
                throw fail("unknown unit '\(unit)'")
            }
            guard entry.micros < lastUnitMicros else {
                throw fail("units must go from largest to smallest, each once")
            }
            lastUnitMicros = entry.micros
            let (part, o1) = number.multipliedReportingOverflow(by: entry.micros)
            let (sum, o2) = total.addingReportingOverflow(part)
            guard !o1, !o2 else { throw fail("the duration is too long") }
            total = sum
        }
        return total
    }

    /// Parses a duration that must be longer than zero (an interval, a timeout).
    /// - Parameter text: The argument.
    /// - Returns: The duration in microseconds (> 0).
    /// - Throws: `TimeParseError` (kind `.duration`).
    public static func parsePositiveMicros(_ text: String) throws(TimeParseError) -> Int64 {
        let micros = try parseMicros(text)
        guard micros > 0 else {
            throw TimeParseError(kind: .duration, input: text, problem: "it must be longer than zero")
        }
        return micros
    }
}
