/// A parsed calendar schedule: a cron or systemd expression plus the IANA zone it is read in.
///
/// Parsing refuses every invalid expression (naming the field and the token), every unknown zone, and every
/// expression that no date can satisfy (`0 0 30 2 *`, `*-02-30`), so a rule that exists can always be evaluated.
/// Parsing is deterministic and fast (tens of microseconds; the zone is cached after its first load), so a store
/// can keep the user's text, zone and policies and parse again on load. Two rules are equal when they have the
/// same syntax, the same sets of allowed values and the same zone name; ``normalized`` parses back to an equal
/// rule.
///
/// The occurrence functions (``next(after:dst:)``, ``previous(before:dst:)``, ``matches(_:dst:)``) are in
/// `CalendarRule+Occurrences.swift`.
public struct CalendarRule: Sendable, Hashable, CustomStringConvertible {
    /// The syntax the rule was written in (it decides the text of ``normalized``).
    public let syntax: CalendarSyntax
    /// The allowed values of every field.
    let fields: CalendarFields
    /// The zone the rule is read in (default UTC).
    public let timeZone: ZoneInfo

    /// Parses `expression` in `syntax`.
    ///
    /// - Parameters:
    ///   - expression: The text, e.g. `30 2 * * *`, `CRON_TZ=Europe/Berlin 30 2 * * *`, `Mon..Fri 09:00`.
    ///   - syntax: `.cron` or `.systemd`.
    ///   - defaultTimeZone: The zone when the expression names none (a `CRON_TZ=`/`TZ=` prefix, or systemd's
    ///     trailing zone, wins over it). Default `UTC`.
    /// - Throws: `CalendarExpressionError` for a malformed expression, an unknown zone (`unknownTimeZone`), or
    ///   an expression that never matches (`neverMatches`).
    public init(_ expression: String, syntax: CalendarSyntax,
                defaultTimeZone: String = "UTC") throws(CalendarExpressionError) {
        let parsed: (fields: CalendarFields, zone: String?)
        switch syntax {
        case .cron: parsed = try CronSyntax.parse(expression)
        case .systemd: parsed = try SystemdCalendarSyntax.parse(expression)
        }
        guard parsed.fields.matchesSomeDay() else {
            throw CalendarExpressionError(
                code: .neverMatches, token: expression,
                message: "\"\(expression.trimmingWhitespace)\" never matches: no date satisfies its day, month"
                    + (syntax == .systemd ? ", year" : "") + " and weekday fields together")
        }
        self.syntax = syntax
        self.fields = parsed.fields
        self.timeZone = try ZoneInfo.named(parsed.zone ?? defaultTimeZone)
    }

    /// Parses a Vixie cron expression; shorthand for `init(expression, syntax: .cron, defaultTimeZone:)`.
    public static func cron(_ expression: String, timeZone: String = "UTC") throws(CalendarExpressionError)
        -> CalendarRule {
        try CalendarRule(expression, syntax: .cron, defaultTimeZone: timeZone)
    }

    /// Parses a systemd calendar event; shorthand for `init(expression, syntax: .systemd, defaultTimeZone:)`.
    public static func systemd(_ expression: String, timeZone: String = "UTC") throws(CalendarExpressionError)
        -> CalendarRule {
        try CalendarRule(expression, syntax: .systemd, defaultTimeZone: timeZone)
    }

    /// The zone's IANA name.
    public var timeZoneIdentifier: String { timeZone.identifier }

    /// Whether hour, minute and second are each a single value, so the gap and fold policies apply.
    public var isFixedTime: Bool { fields.isFixedTime }

    /// The canonical text of the rule, in its syntax, naming the zone unless it is UTC.
    ///
    /// Cron: `CRON_TZ=Europe/Berlin 30 2 * * 1-5` (macros expanded, names as numbers, `7` as `0`, lists sorted
    /// and merged into ranges, `*` only where the source had a field starting with `*`). systemd: like
    /// `systemd-analyze calendar`'s "Normalized form", `Mon..Fri *-*-* 09:00:00 Europe/Berlin`. Parsing it (with
    /// the default zone UTC) gives an equal rule.
    public var normalized: String {
        let zone = timeZone.identifier == "UTC" ? nil : timeZone.identifier
        switch syntax {
        case .cron: return CronSyntax.format(fields, zone: zone)
        case .systemd: return SystemdCalendarSyntax.format(fields, zone: zone)
        }
    }

    /// ``normalized``.
    public var description: String { normalized }

    /// Equal syntax, fields and zone name.
    public static func == (lhs: CalendarRule, rhs: CalendarRule) -> Bool {
        lhs.syntax == rhs.syntax && lhs.fields == rhs.fields && lhs.timeZone.identifier == rhs.timeZone.identifier
    }

    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(syntax)
        hasher.combine(fields)
        hasher.combine(timeZone.identifier)
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines (no Foundation needed).
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}
