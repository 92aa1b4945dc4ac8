import ArgumentParser
import Foundation
import TaskShedCalendar

/// `taskshedctl calendar EXPR`: previews a cron or systemd calendar expression (no daemon needed).
public struct CalendarCommand: ParsableCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        commandName: "calendar",
        abstract: "Show the next occurrences of a cron or systemd calendar expression.",
        discussion: """
            Prints the expression as given and normalized, then its next occurrences after --from: the local \
            time with its UTC offset, the UTC time, and a mark on each run that a daylight-saving change moved \
            or selected (DST-gap→shifted, DST-gap→at change, fold→first, fold→second). Needs no daemon.

            Syntax (--syntax auto): an expression with exactly 5 whitespace-separated fields, or one starting \
            with '@', 'CRON_TZ=' or 'TZ=', is cron; anything else is systemd's calendar syntax (when that \
            fails for an expression of 6 or 7 fields, the error is cron's, which explains why such cron lines \
            are refused).
            Time zone: a zone named in the expression (CRON_TZ=, TZ=, or systemd's trailing zone) wins over \
            --tz, which defaults to the local zone (TZ, else the system's), as for `add --at`. Local forms of \
            --from are read in the zone the occurrences are shown in.
            DST (fixed-time rules only, where hour, minute and second are single values): --gap shift runs a \
            skipped local time with the offset before the change (02:30 becomes 03:30 EDT), skip leaves that day \
            out, at-change runs at the change itself; --fold first/last/both picks the runs of a repeated time. \
            Other rules run at every real instant whose local time matches.

            Examples:
              taskshedctl calendar '30 2 * * *' --tz America/New_York
              taskshedctl calendar 'Mon..Fri 09:00 Europe/Berlin' -n 5
              taskshedctl calendar 'CRON_TZ=Europe/Berlin 0 3 * * 0' --from 2026-03-28T00:00Z --json
            """)

    /// Shared options (only `--json` matters here; `--socket` is accepted and unused).
    @OptionGroup public var global: GlobalOptions

    /// The calendar expression.
    @Argument(help: "A cron ('30 2 * * 1-5') or systemd ('Mon..Fri 09:00') calendar expression.")
    public var expression: String

    /// The expression's language.
    @Option(name: .long, help: ArgumentHelp("cron, systemd, or auto (see below).", valueName: "syntax"))
    public var syntax: CalendarSyntaxChoice = .auto

    /// The zone when the expression names none.
    @Option(
        name: .customLong("tz"),
        help: ArgumentHelp("IANA time zone when the expression names none (default: the local zone).", valueName: "zone"))
    public var timeZone: String?

    /// The start of the preview.
    @Option(name: .long, help: ArgumentHelp("Show occurrences after this time (as for `add --at`; default: now).", valueName: "time"))
    public var from: String?

    /// How many occurrences.
    @Option(name: [.customShort("n"), .long], help: ArgumentHelp("How many occurrences, 1…1000.", valueName: "n"))
    public var count: Int = 10

    /// The gap policy.
    @Option(name: .long, help: ArgumentHelp("A local time skipped by a DST change: shift, skip or at-change.", valueName: "policy"))
    public var gap: GapChoice = .shift

    /// The fold policy.
    @Option(name: .long, help: ArgumentHelp("A local time repeated by a DST change: first, last or both.", valueName: "policy"))
    public var fold: FoldChoice = .first

    /// The largest `--count`: enough for a year of daily runs, small enough to print at once.
    public static let maximumCount = 1000

    /// Creates the command (the parser does this).
    public init() {}

    /// Checks `--count`.
    public func validate() throws {
        guard (1...Self.maximumCount).contains(count) else {
            throw ValidationError("--count must be between 1 and \(Self.maximumCount), not \(count)")
        }
    }

    /// The preview these options describe.
    /// - Parameter context: Now and the local zone (the defaults of --from and --tz).
    /// - Returns: The computed preview.
    /// - Throws: `CLIError` with status `usage` for a bad expression, zone or --from time.
    public func makePreview(context: TimeContext) throws(CLIError) -> CalendarPreview {
        let zoneName = timeZone ?? context.timeZone.identifier
        let zoneOption = timeZone == nil ? "the local time zone (give --tz)" : "--tz"
        let resolved = syntax.resolve(for: expression)
        let rule: CalendarRule
        do {
            rule = try CalendarPreview.parseRule(
                expression, syntax: resolved, defaultTimeZone: zoneName, defaultZoneOption: zoneOption)
        } catch {
            // A 6- or 7-field cron line (seconds or a year) falls to systemd under the auto rule; systemd's
            // complaint about it would puzzle, so show cron's message, which explains those field counts.
            let words = expression.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).count
            if syntax == .auto, resolved == .systemd, words == 6 || words == 7 {
                _ = try CalendarPreview.parseRule(
                    expression, syntax: .cron, defaultTimeZone: zoneName, defaultZoneOption: zoneOption)
            }
            throw error
        }
        var fromMicros = context.nowMicros
        if let from {
            // Local --from times are read in the zone the occurrences are shown in, so both sides match.
            var local = context
            local.timeZone = TimeZone(identifier: rule.timeZoneIdentifier) ?? context.timeZone
            do {
                fromMicros = try TimeParser(context: local).parseMicros(from)
            } catch {
                throw CLIError.badTime(error, option: "--from")
            }
        }
        return CalendarPreview(
            original: expression, rule: rule, fromMicros: fromMicros, fromIsNow: from == nil, count: count,
            dst: DSTPolicy(gap: gap.policy, fold: fold.policy))
    }

    /// What the command prints: the text, or the JSON document and a newline with `--json`.
    /// - Parameter context: Now and the local zone.
    /// - Returns: The standard output.
    /// - Throws: `CLIError` as ``makePreview(context:)``.
    public func output(context: TimeContext) throws(CLIError) -> String {
        let preview = try makePreview(context: context)
        return global.json ? preview.json.render() + "\n" : preview.text
    }

    /// Prints the preview; a bad input is one line on standard error and exit status 64.
    public func run() throws {
        do {
            let text = try output(context: .current())
            FileHandle.standardOutput.write(Data(text.utf8))
        } catch {
            CommandSession.writeError("taskshedctl: " + error.message + "\n")
            throw ExitCode(error.status.rawValue)
        }
    }
}
