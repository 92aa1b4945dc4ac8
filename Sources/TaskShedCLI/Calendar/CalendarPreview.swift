import Foundation
import TaskShedCalendar

/// A calendar rule's next occurrences after a start instant: what `taskshedctl calendar` computes and prints.
///
/// Building one is a pure function of its inputs (expression, syntax, zone, start, count, DST policy), so tests
/// pass a fixed start and zone and never depend on when or where they run. The occurrences come from
/// `CalendarRule.occurrences(after:count:dst:)`, the same function the daemon will schedule with, so the
/// preview cannot disagree with real runs.
public struct CalendarPreview: Sendable {
    /// The expression as the user wrote it.
    public var original: String
    /// The parsed rule (its zone is the expression's own, else the default zone).
    public var rule: CalendarRule
    /// The instant the occurrences follow (strictly after), microseconds since the epoch.
    public var fromMicros: Int64
    /// Whether the start is "now" (the text then says "From now"), rather than a `--from` time.
    public var fromIsNow: Bool
    /// The DST policy the occurrences were computed with.
    public var dst: DSTPolicy
    /// The occurrences, increasing; fewer than asked (possibly none) when the rule runs out.
    public var occurrences: [Occurrence]

    /// Computes the next `count` occurrences of `rule`.
    ///
    /// - Parameters:
    ///   - original: The expression as the user wrote it (shown as "Original form").
    ///   - rule: The parsed rule (see ``parseRule(_:syntax:defaultTimeZone:defaultZoneOption:)``).
    ///   - fromMicros: Occurrences strictly after this instant.
    ///   - fromIsNow: Whether `fromMicros` is the current time (changes one label of the text only).
    ///   - count: How many occurrences.
    ///   - dst: The gap and fold policies.
    public init(original: String, rule: CalendarRule, fromMicros: Int64, fromIsNow: Bool = false, count: Int,
                dst: DSTPolicy = .default) {
        self.original = original
        self.rule = rule
        self.fromMicros = fromMicros
        self.fromIsNow = fromIsNow
        self.dst = dst
        occurrences = rule.occurrences(after: fromMicros, count: count, dst: dst)
    }

    /// Parses the expression and computes its next `count` occurrences.
    ///
    /// - Parameters:
    ///   - expression: A cron or systemd calendar expression.
    ///   - syntax: The language to read it in.
    ///   - defaultTimeZone: The IANA zone when the expression names none.
    ///   - fromMicros: Occurrences strictly after this instant.
    ///   - count: How many occurrences.
    ///   - dst: The gap and fold policies.
    /// - Throws: `CLIError` as ``parseRule(_:syntax:defaultTimeZone:defaultZoneOption:)``.
    public init(expression: String, syntax: CalendarSyntax, defaultTimeZone: String, fromMicros: Int64,
                count: Int, dst: DSTPolicy = .default) throws(CLIError) {
        let rule = try Self.parseRule(expression, syntax: syntax, defaultTimeZone: defaultTimeZone)
        self.init(original: expression, rule: rule, fromMicros: fromMicros, count: count, dst: dst)
    }

    /// Parses a calendar expression, turning the module's refusal into the CLI's one-line error.
    ///
    /// - Parameters:
    ///   - expression: A cron or systemd calendar expression.
    ///   - syntax: The language to read it in.
    ///   - defaultTimeZone: The IANA zone when the expression names none (`CRON_TZ=`, `TZ=` or systemd's
    ///     trailing zone win over it).
    ///   - defaultZoneOption: What to blame when `defaultTimeZone` itself is unknown (`--tz`).
    /// - Returns: The rule.
    /// - Throws: `CLIError` with status `usage` (64, as for a bad `add --at`) carrying the calendar module's
    ///   message, which names the field and the token it refused.
    public static func parseRule(_ expression: String, syntax: CalendarSyntax, defaultTimeZone: String,
                                 defaultZoneOption: String = "--tz") throws(CLIError) -> CalendarRule {
        do {
            return try CalendarRule(expression, syntax: syntax, defaultTimeZone: defaultTimeZone)
        } catch {
            // The default zone is only loaded when the expression names none, so a refusal of exactly that
            // name is about the option, not the expression.
            if error.code == .unknownTimeZone || error.code == .invalidTimeZoneData, error.token == defaultTimeZone {
                throw CLIError("\(defaultZoneOption): \(error.message)", status: .usage)
            }
            throw CLIError("invalid \(syntax.rawValue) expression '\(expression)': \(error.message)", status: .usage)
        }
    }

    /// The text, laid out like `systemd-analyze calendar --iterations`, with the local time, its UTC offset,
    /// the UTC time and any DST mark on each line. Ends with a newline.
    public var text: String {
        let fromOffset = rule.timeZone.utcOffset(atSecond: fromSecond)
        var lines = [
            "  Original form: \(original)",
            "Normalized form: \(rule.normalized)",
            "      Time zone: \(rule.timeZoneIdentifier)",
            "           From: \(Self.local(wallSeconds: fromSecond + Int64(fromOffset), offset: fromOffset))  "
                + Self.utc(second: fromSecond),
        ]
        guard !occurrences.isEmpty else {
            lines.append("    Next elapse: never (no occurrence within 400 years after the start)")
            return lines.joined(separator: "\n") + "\n"
        }
        for (index, occurrence) in occurrences.enumerated() {
            let label = index == 0 ? "    Next elapse" : Self.leftPad("Iter. #\(index + 1)", 15)
            lines.append("\(label): \(Self.line(occurrence))")
            if index == 0 {
                let seconds = UInt64(clamping: occurrence.second - fromSecond)
                let wait = TimeFormatting.coarse(seconds: seconds)
                lines.append(fromIsNow ? "       From now: \(wait) left" : "     From start: \(wait) later")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The `--json` document: `original`, `normalized`, `syntax`, `time_zone`, `from`, `from_us`, `gap`, `fold`
    /// and `occurrences`, each `{local, utc, offset, instant_us, scheduled, adjustment}`.
    public var json: JSONOutput {
        .object([
            ("original", .string(original)),
            ("normalized", .string(rule.normalized)),
            ("syntax", .string(rule.syntax.rawValue)),
            ("time_zone", .string(rule.timeZoneIdentifier)),
            ("from", .string(TimeFormatting.rfc3339UTC(micros: fromMicros))),
            ("from_us", .int(fromMicros)),
            ("gap", .string(Self.name(of: dst.gap))),
            ("fold", .string(Self.name(of: dst.fold))),
            ("occurrences", .array(occurrences.map(Self.json))),
        ])
    }

    /// The stable name of an adjustment in JSON, or `nil` for `.none`.
    public static func name(of adjustment: DSTAdjustment) -> String? {
        switch adjustment {
        case .none: return nil
        case .shiftedOutOfGap: return "gap-shifted"
        case .atGapTransition: return "gap-at-change"
        case .firstOfFold: return "fold-first"
        case .secondOfFold: return "fold-second"
        }
    }

    // MARK: - Formatting helpers

    private var fromSecond: Int64 { floorDivide(fromMicros, 1_000_000).quotient }

    private static func json(_ occurrence: Occurrence) -> JSONOutput {
        .object([
            ("local", .string(rfc3339Local(occurrence))),
            ("utc", .string(TimeFormatting.rfc3339UTC(micros: occurrence.instant))),
            ("offset", .string(offsetText(occurrence.utcOffset))),
            ("instant_us", .int(occurrence.instant)),
            ("scheduled", .string(occurrence.scheduled.description)),
            ("adjustment", .optional(name(of: occurrence.adjustment))),
        ])
    }

    /// `Sun 2026-03-08 03:30:00 -04:00  2026-03-08 07:30:00 UTC  DST-gap→shifted (02:30:00 does not exist)`.
    private static func line(_ occurrence: Occurrence) -> String {
        var text = local(wallSeconds: occurrence.local.wallSeconds, offset: occurrence.utcOffset)
            + "  " + utc(second: occurrence.second)
        if occurrence.adjustment != .none {
            text += "  " + occurrence.adjustment.description
            // A gap adjustment runs at another wall time than the rule named: say which one it stands for.
            if occurrence.scheduled != occurrence.local {
                text += " (\(clock(occurrence.scheduled)) does not exist)"
            }
        }
        return text
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]

    /// `Sun 2026-03-08 03:30:00 -04:00`.
    private static func local(wallSeconds: Int64, offset: Int32) -> String {
        let wall = CivilDateTime.fromNaiveMicros(wallSeconds * 1_000_000)
        let weekday = Int(floorDivide(floorDivide(wallSeconds, 86_400).quotient + 4, 7).remainder)
        return "\(weekdays[weekday]) \(wall) \(offsetText(offset))"
    }

    /// `2026-03-08 07:30:00 UTC`.
    private static func utc(second: Int64) -> String {
        "\(CivilDateTime.fromNaiveMicros(second * 1_000_000)) UTC"
    }

    /// `2026-03-08T03:30:00-04:00`.
    private static func rfc3339Local(_ occurrence: Occurrence) -> String {
        let l = occurrence.local
        return "\(pad(l.year, 4))-\(pad(l.month, 2))-\(pad(l.day, 2))T\(clock(l))\(offsetText(occurrence.utcOffset))"
    }

    private static func clock(_ time: LocalDateTime) -> String {
        "\(pad(time.hour, 2)):\(pad(time.minute, 2)):\(pad(time.second, 2))"
    }

    /// `+01:00`, `-04:00`, `+05:45`.
    static func offsetText(_ seconds: Int32) -> String {
        let magnitude = Int(seconds.magnitude)
        return (seconds < 0 ? "-" : "+") + "\(pad(magnitude / 3600, 2)):\(pad(magnitude / 60 % 60, 2))"
    }

    private static func leftPad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    private static func name(of gap: GapPolicy) -> String {
        switch gap {
        case .shift: return "shift"
        case .skip: return "skip"
        case .atChange: return "at-change"
        }
    }

    private static func name(of fold: FoldPolicy) -> String {
        switch fold {
        case .first: return "first"
        case .last: return "last"
        case .both: return "both"
        }
    }
}
