import TaskShedCalendar

/// Microseconds since the epoch of a UTC time written `2026-03-08 07:30` or `2026-03-08 07:30:15`.
func utc(_ text: String) -> Int64 {
    let parts = text.split(whereSeparator: { $0 == " " || $0 == "-" || $0 == ":" }).map { Int($0)! }
    let time = LocalDateTime(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4],
                             second: parts.count > 5 ? parts[5] : 0)
    return time.wallSeconds * 1_000_000
}

/// `2026-03-08 07:30:00` for an instant in µs.
func utcText(_ instant: Int64) -> String {
    LocalDateTime(wallSeconds: instant / 1_000_000).description
}

/// The UTC texts of the first `count` occurrences after `after` (a `utc(_:)` string).
func nextRuns(_ rule: CalendarRule, after: String, count: Int, dst: DSTPolicy = .default) -> [String] {
    rule.occurrences(after: utc(after), count: count, dst: dst).map { utcText($0.instant) }
}

/// Parses a cron rule, failing the test with the message if it does not parse.
func cron(_ text: String, _ zone: String = "UTC") throws -> CalendarRule {
    try CalendarRule.cron(text, timeZone: zone)
}

/// Parses a systemd rule.
func systemd(_ text: String, _ zone: String = "UTC") throws -> CalendarRule {
    try CalendarRule.systemd(text, timeZone: zone)
}

/// The error a parse throws, or `nil`.
func parseError(_ text: String, _ syntax: CalendarSyntax, zone: String = "UTC") -> CalendarExpressionError? {
    do {
        _ = try CalendarRule(text, syntax: syntax, defaultTimeZone: zone)
        return nil
    } catch {
        return error
    }
}

/// A small, seeded, reproducible generator (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension LocalDateTime {
    /// Test-only: the wall time `seconds` after 1970-01-01 00:00.
    init(wallSeconds seconds: Int64) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let tod = Int(seconds - days * 86_400)
        // Hinnant's civil_from_days, written out again so the tests do not depend on the module's internals.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
        self.init(year: year, month: month, day: day, hour: tod / 3600, minute: tod / 60 % 60, second: tod % 60)
    }
}
