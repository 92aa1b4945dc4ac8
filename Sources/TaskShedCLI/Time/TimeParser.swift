/// Parses the points in time the CLI accepts (`--at`, `reschedule`, `--due-before`/`--due-after`).
///
/// Accepted forms (see `TimeParseError.acceptedTimeFormats`):
/// - RFC 3339 with an offset: `2026-03-08T14:30:00Z`, `2026-03-08T14:30:00.250+01:00` (a space may replace the
///   `T`, seconds may be omitted, fractions beyond microseconds are truncated);
/// - a local date and time without an offset: `2026-03-08 14:30`, `2026-03-08T14:30:15`;
/// - a local time of day `HH:MM[:SS]`: the next such time strictly after now (today if still ahead, otherwise
///   tomorrow);
/// - `now`, and `+DURATION` (`+90s`, `+2h30m`) from now.
///
/// Local times follow `LocalTimeResolver`'s rule: a time in a spring-forward gap moves forward by the gap, an
/// ambiguous time in a fall-back overlap takes its first occurrence.
public struct TimeParser: Sendable {
    /// The clock and zone local times and relative forms are based on.
    public var context: TimeContext

    /// Creates a parser.
    public init(context: TimeContext) {
        self.context = context
    }

    /// Parses a point in time.
    /// - Parameter text: The argument.
    /// - Returns: Microseconds since the epoch.
    /// - Throws: `TimeParseError` (kind `.time`) naming the problem and listing the accepted formats.
    public func parseMicros(_ text: String) throws(TimeParseError) -> Int64 {
        let trimmed = text.trimmingSpaces
        func fail(_ problem: String) -> TimeParseError {
            TimeParseError(kind: .time, input: text, problem: problem)
        }
        if trimmed.isEmpty { throw fail("it is empty") }
        if trimmed.lowercased() == "now" { return context.nowMicros }
        if trimmed.hasPrefix("+") {
            let duration: Int64
            do {
                duration = try DurationParser.parseMicros(String(trimmed.dropFirst()))
            } catch {
                throw fail("after '+' comes a duration: \(error.problem)")
            }
            let (sum, overflow) = context.nowMicros.addingReportingOverflow(duration)
            guard !overflow else { throw fail("it is too far in the future") }
            return sum
        }
        var scanner = Scanner(Array(trimmed.utf8))
        if scanner.count == 5 || scanner.count == 8 || (scanner.count >= 3 && scanner.peek(offset: 2) == UInt8(ascii: ":")) {
            let time = try scanTimeOfDay(&scanner, allowFraction: false, fail: fail)
            guard scanner.atEnd else { throw fail("unexpected text after the time of day") }
            return nextOccurrence(hour: time.hour, minute: time.minute, second: time.second)
        }
        guard let year = scanner.number(digits: 4), scanner.consume("-"),
            let month = scanner.number(digits: 2), scanner.consume("-"),
            let day = scanner.number(digits: 2)
        else {
            throw fail("it is neither a date and time nor a time of day")
        }
        guard scanner.consume("T") || scanner.consume("t") || scanner.consume(" ") else {
            throw fail(scanner.atEnd ? "a date needs a time of day (add ' HH:MM')" : "expected 'T' or a space after the date")
        }
        let time = try scanTimeOfDay(&scanner, allowFraction: true, fail: fail)
        let civil = CivilDateTime(
            year: year, month: month, day: day, hour: time.hour, minute: time.minute, second: time.second,
            microsecond: time.microsecond)
        guard civil.isValid else { throw fail("no such date or time (\(civil))") }
        if scanner.atEnd {
            return context.resolver.instant(of: civil)
        }
        let offsetSeconds: Int
        if scanner.consume("Z") || scanner.consume("z") {
            offsetSeconds = 0
        } else if let sign = scanner.next(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            guard let hours = scanner.number(digits: 2), scanner.consume(":"), let minutes = scanner.number(digits: 2),
                hours <= 23, minutes <= 59
            else {
                throw fail("the offset must be Z or ±HH:MM")
            }
            offsetSeconds = (sign == UInt8(ascii: "-") ? -1 : 1) * (hours * 3600 + minutes * 60)
        } else {
            throw fail("the offset must be Z or ±HH:MM")
        }
        guard scanner.atEnd else { throw fail("unexpected text after the offset") }
        return civil.naiveMicros - Int64(offsetSeconds) * 1_000_000
    }

    /// The next local `hour:minute:second` strictly after now, today or tomorrow.
    private func nextOccurrence(hour: Int, minute: Int, second: Int) -> Int64 {
        let resolver = context.resolver
        var local = resolver.localTime(ofMicros: context.nowMicros)
        local.hour = hour
        local.minute = minute
        local.second = second
        local.microsecond = 0
        let today = resolver.instant(of: local)
        if today > context.nowMicros { return today }
        return resolver.instant(of: local.nextDay)
    }

    private struct TimeOfDay {
        var hour: Int
        var minute: Int
        var second: Int
        var microsecond: Int
    }

    private func scanTimeOfDay(
        _ scanner: inout Scanner, allowFraction: Bool, fail: (String) -> TimeParseError
    ) throws(TimeParseError) -> TimeOfDay {
        guard let hour = scanner.number(digits: 2), scanner.consume(":"), let minute = scanner.number(digits: 2) else {
            throw fail("the time of day must be HH:MM or HH:MM:SS")
        }
        var second = 0
        var microsecond = 0
        if scanner.consume(":") {
            guard let s = scanner.number(digits: 2) else { throw fail("seconds must be two digits") }
            second = s
            if scanner.peek() == UInt8(ascii: ".") || scanner.peek() == UInt8(ascii: ",") {
                guard allowFraction else { throw fail("a time of day takes whole seconds") }
                _ = scanner.next()
                var digits = 0
                var value = 0
                while let byte = scanner.peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                    _ = scanner.next()
                    if digits < 6 {
                        value = value * 10 + Int(byte - UInt8(ascii: "0"))
                    }
                    digits += 1
                }
                guard digits > 0 else { throw fail("expected digits after the decimal point") }
                for _ in min(digits, 6)..<6 { value *= 10 }
                microsecond = value
            }
        }
        guard hour <= 23, minute <= 59, second <= 59 else {
            throw fail("hours go to 23, minutes and seconds to 59")
        }
        return TimeOfDay(hour: hour, minute: minute, second: second, microsecond: microsecond)
    }
}

/// A cursor over ASCII bytes.
private struct Scanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }
    var atEnd: Bool { index >= bytes.count }

    func peek(offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    mutating func next() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func consume(_ character: Unicode.Scalar) -> Bool {
        guard peek() == UInt8(ascii: character) else { return false }
        index += 1
        return true
    }

    /// Exactly `digits` decimal digits.
    mutating func number(digits: Int) -> Int? {
        guard index + digits <= bytes.count else { return nil }
        var value = 0
        for offset in 0..<digits {
            let byte = bytes[index + offset]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        index += digits
        return value
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
