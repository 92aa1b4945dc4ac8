import ArgumentParser
import TaskShedCalendar

/// `--syntax` of `taskshedctl calendar`: a language, or `auto` to tell cron from systemd by the expression's shape.
public enum CalendarSyntaxChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Vixie cron.
    case cron
    /// systemd calendar events.
    case systemd
    /// ``detect(_:)`` decides.
    case auto

    /// The syntax to parse `expression` in.
    /// - Parameter expression: The expression as given.
    /// - Returns: `.cron` or `.systemd`; for `auto`, what ``detect(_:)`` says.
    public func resolve(for expression: String) -> CalendarSyntax {
        switch self {
        case .cron: return .cron
        case .systemd: return .systemd
        case .auto: return Self.detect(expression)
        }
    }

    /// The auto-detection rule: cron when the expression has exactly 5 whitespace-separated fields, or starts
    /// with `@`, `CRON_TZ=` or `TZ=`; systemd otherwise.
    ///
    /// A systemd event has at most 4 words (weekdays, date, time, zone), and systemd's shorthands (`daily`)
    /// have no `@`, so the two languages do not overlap under this rule. A 6- or 7-field cron line falls to
    /// systemd; `CalendarCommand` then reports cron's message, which explains why those counts are refused.
    /// - Parameter expression: The expression as given.
    /// - Returns: The syntax the rule picks.
    public static func detect(_ expression: String) -> CalendarSyntax {
        let words = expression.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard let first = words.first else { return .systemd }
        if words.count == 5 || first.hasPrefix("@") || first.hasPrefix("CRON_TZ=") || first.hasPrefix("TZ=") {
            return .cron
        }
        return .systemd
    }
}
