import ArgumentParser
import Foundation
import TaskShed

/// `taskshedctl add CALLBACK`: adds a task and prints its id.
public struct Add: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Add a task and print its id.",
        discussion: """
            The task runs once at --at or --in (default: now), or, with --every, at that time and then every \
            interval, or, with --cron or --calendar, at each occurrence of a calendar rule from that time on (the \
            first occurrence at or after it), read in --tz (default: the local zone). A task with the id of an existing one replaces it (keeping its creation time) unless \
            --keep-existing is given. When no connected worker serves the callback, a warning goes to standard \
            error (the daemon counts event-driven workers only); the task waits until a worker for it connects.

            TIME: RFC 3339 with an offset (2026-03-08T14:30:00Z, 2026-03-08T14:30:00+01:00), local \
            'YYYY-MM-DD HH:MM[:SS]', local 'HH:MM[:SS]' (the next such time), 'now', or '+DURATION'. A local time \
            skipped by a daylight-saving change moves forward by the gap; a repeated one means its first occurrence.
            DURATION: numbers with units d, h, m, s, ms, us, largest first, decimals down to 1us: 500ms, 0.2s, 90s, \
            1.5m, 2h30m, 1d.
            Calendar policies (see `taskshedctl calendar` to preview a rule): --gap and --fold as there; \
            --catch-up skip|one|all (with --catch-up-max N, 1…1000) for occurrences missed while the daemon was \
            down or no worker ran them, within --catch-up-window (default 1h); --overlap skip|queue-one|allow \
            for occurrences due while the previous run still runs (allow: each run is a one-off task \
            ID@OCCURRENCE); --jitter DURATION delays each run at random, up to the bound and never to the next \
            occurrence (--jitter-fixed: the same delay for every run).

            Examples:
              taskshedctl add say-hello
              taskshedctl add backup --at '2026-03-08 02:30' --kwargs '{"path": "/srv"}'
              taskshedctl add report --at 09:00 --every 1d --group daily --id daily-report
              taskshedctl add cleanup --in 90s --kwargs @cleanup.json --max-attempts 5
              taskshedctl add backup --cron '30 2 * * *' --tz Europe/Berlin --id nightly-backup
              taskshedctl add standup --calendar 'Mon..Fri 09:00' --tz America/New_York --catch-up skip
              echo '{"to": "ops"}' | taskshedctl add notify --in 5m --kwargs -
            """)

    /// Shared options.
    @OptionGroup public var global: GlobalOptions

    /// The callback name.
    @Argument(help: "The callback name a worker runs for this task.")
    public var callback: String

    /// First run time.
    @Option(name: .long, help: ArgumentHelp("First run at this time (see TIME below).", valueName: "time"))
    public var at: String?

    /// First run after a delay.
    @Option(name: .customLong("in"), help: ArgumentHelp("First run after this delay.", valueName: "duration"))
    public var delay: String?

    /// Interval of a recurring task.
    @Option(name: .long, help: ArgumentHelp("Repeat at this interval (a recurring task).", valueName: "duration"))
    public var every: String?

    /// A cron rule.
    @Option(name: .long, help: ArgumentHelp("Run at each occurrence of this cron rule ('30 2 * * *').", valueName: "expr"))
    public var cron: String?

    /// A systemd calendar rule.
    @Option(
        name: .long,
        help: ArgumentHelp("Run at each occurrence of this systemd calendar rule ('Mon..Fri 09:00').", valueName: "expr"))
    public var calendar: String?

    /// The rule's zone.
    @Option(
        name: .customLong("tz"),
        help: ArgumentHelp("IANA time zone of --cron/--calendar (default: the local zone).", valueName: "zone"))
    public var timeZone: String?

    /// The DST gap policy.
    @Option(name: .long, help: ArgumentHelp("Calendar: a local time skipped by DST: shift, skip or at-change.", valueName: "policy"))
    public var gap: GapChoice?

    /// The DST fold policy.
    @Option(name: .long, help: ArgumentHelp("Calendar: a local time repeated by DST: first, last or both.", valueName: "policy"))
    public var fold: FoldChoice?

    /// The catch-up policy.
    @Option(name: .long, help: ArgumentHelp("Calendar: missed occurrences: skip, one (default) or all.", valueName: "policy"))
    public var catchUp: CatchUpChoice?

    /// The catch-up maximum.
    @Option(name: .long, help: ArgumentHelp("Calendar, --catch-up all: at most this many missed runs (1…1000, default 10).", valueName: "n"))
    public var catchUpMax: Int?

    /// The catch-up window.
    @Option(name: .long, help: ArgumentHelp("Calendar: how far back a missed occurrence still runs (default 1h).", valueName: "duration"))
    public var catchUpWindow: String?

    /// The overlap policy.
    @Option(name: .long, help: ArgumentHelp("Calendar: occurrences due while a run still runs: skip, queue-one or allow.", valueName: "policy"))
    public var overlap: OverlapChoice?

    /// The jitter bound.
    @Option(name: .long, help: ArgumentHelp("Calendar: delay each run at random by up to this.", valueName: "duration"))
    public var jitter: String?

    /// Fixed jitter.
    @Flag(name: .long, help: "Calendar: the same jitter for every run of the task (derived from its id).")
    public var jitterFixed = false

    /// The kwargs source.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Keyword arguments: a JSON object, @FILE to read one from a file, or - for standard input.",
            valueName: "json"))
    public var kwargs: String?

    /// The task id.
    @Option(
        name: .long,
        help: ArgumentHelp("The task id (default: a 32-digit hex UUIDv7 of the first run time).", valueName: "id"))
    public var id: String?

    /// The group.
    @Option(name: .long, help: ArgumentHelp("A group name, for bulk pause/resume/remove.", valueName: "group"))
    public var group: String?

    /// Created paused.
    @Flag(name: .long, help: "Create the task paused: it runs only after `taskshedctl resume`.")
    public var paused = false

    /// One run per missed interval.
    @Flag(
        name: .customLong("no-coalesce"),
        help: "Recurring only: after falling behind, run once per missed interval instead of once.")
    public var noCoalesce = false

    /// Leave an existing task alone.
    @Flag(name: .long, help: "If a task with this id exists, leave it unchanged instead of replacing it.")
    public var keepExisting = false

    /// Attempts before dead-lettering.
    @Option(
        name: .long,
        help: ArgumentHelp("Deliveries of a failing one-off task before it is dead-lettered (default: the daemon's, 3).", valueName: "n"))
    public var maxAttempts: Int?

    /// Creates the command (the parser does this).
    public init() {}

    /// Checks option combinations.
    public func validate() throws {
        if at != nil && delay != nil {
            throw ValidationError("give either --at or --in, not both")
        }
        if let maxAttempts, maxAttempts < 1 {
            throw ValidationError("--max-attempts must be at least 1")
        }
        if noCoalesce && every == nil {
            throw ValidationError("--no-coalesce applies to interval tasks (--every); calendar tasks have --catch-up")
        }
        if [every != nil, cron != nil, calendar != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give one of --every, --cron and --calendar")
        }
        if cron == nil && calendar == nil {
            let given = [("--tz", timeZone != nil), ("--gap", gap != nil), ("--fold", fold != nil),
                         ("--catch-up", catchUp != nil), ("--catch-up-max", catchUpMax != nil),
                         ("--catch-up-window", catchUpWindow != nil), ("--overlap", overlap != nil),
                         ("--jitter", jitter != nil), ("--jitter-fixed", jitterFixed)].filter(\.1).map(\.0)
            if let first = given.first {
                throw ValidationError("\(first) applies to calendar tasks; add --cron or --calendar")
            }
        }
        if let catchUpMax {
            guard catchUp == .all else { throw ValidationError("--catch-up-max applies to --catch-up all") }
            guard (1...1000).contains(catchUpMax) else {
                throw ValidationError("--catch-up-max must be between 1 and 1000, not \(catchUpMax)")
            }
        }
        if jitterFixed && jitter == nil {
            throw ValidationError("--jitter-fixed needs --jitter DURATION")
        }
    }

    /// The calendar schedule of --cron or --calendar with its policies, or `nil` for other tasks.
    func calendarSchedule(context: TimeContext) throws -> TaskSchedule? {
        guard let expression = cron ?? calendar else { return nil }
        var window = CalendarSchedule.defaultCatchUpWindowMicros
        if let catchUpWindow {
            do {
                window = try DurationParser.parsePositiveMicros(catchUpWindow)
            } catch {
                throw CLIError.badTime(error, option: "--catch-up-window")
            }
        }
        var jitterMicros: Int64 = 0
        if let jitter {
            do {
                jitterMicros = try DurationParser.parsePositiveMicros(jitter)
            } catch {
                throw CLIError.badTime(error, option: "--jitter")
            }
        }
        let policy = catchUp ?? .one
        return .calendar(CalendarSchedule(
            syntax: cron != nil ? .cron : .systemd, expression: expression,
            timeZone: timeZone ?? context.timeZone.identifier, gap: (gap ?? .shift).wire, fold: (fold ?? .first).wire,
            catchUp: policy.wire, catchUpMaximum: policy == .all ? UInt32(catchUpMax ?? 10) : 0,
            catchUpWindowMicros: window, overlap: (overlap ?? .skip).wire, jitterMicros: jitterMicros,
            jitterMode: jitterFixed ? .fixed : .random))
    }

    /// The task these options describe.
    /// - Parameters:
    ///   - context: Now and the local zone, for --at and --in.
    ///   - readStandardInput: Reads standard input for `--kwargs -`.
    /// - Returns: The task to add.
    /// - Throws: `CLIError` for a bad time, duration or kwargs.
    public func makeTask(context: TimeContext, readStandardInput: () throws -> [UInt8]) throws -> ScheduledTask {
        var runAt = context.nowMicros
        if let at {
            do {
                runAt = try TimeParser(context: context).parseMicros(at)
            } catch {
                throw CLIError.badTime(error, option: "--at")
            }
        } else if let delay {
            do {
                runAt = context.nowMicros + (try DurationParser.parseMicros(delay))
            } catch {
                throw CLIError.badTime(error, option: "--in")
            }
        }
        var schedule = try calendarSchedule(context: context) ?? .once
        if let every {
            do {
                schedule = .every(.microseconds(try DurationParser.parsePositiveMicros(every)))
            } catch {
                throw CLIError.badTime(error, option: "--every")
            }
        }
        var taskKwargs = Kwargs()
        if let kwargs {
            taskKwargs = try Kwargs(jsonBytes: try KwargsInput.read(kwargs, readStandardInput: readStandardInput))
        }
        return ScheduledTask(
            callback: callback, runAt: Date(cliMicros: runAt), kwargs: taskKwargs, schedule: schedule,
            id: id, group: group, paused: paused, coalesce: !noCoalesce,
            maxAttempts: maxAttempts)
    }

    /// Adds the task, prints its id, warns when no worker serves the callback.
    public func execute(_ session: CommandSession) async throws {
        let task = try makeTask(context: session.context, readStandardInput: KwargsInput.readAllStandardInput)
        let results = try await session.scheduler.addTasks([task], replaceExisting: !keepExisting)
        guard let result = results.first else {
            throw CLIError("the daemon answered the add without a result", status: .software)
        }
        let outcome: String
        switch result.outcome {
        case .inserted: outcome = "inserted"
        case .replaced: outcome = "replaced"
        case .kept: outcome = "kept"
        }
        if session.json {
            session.write(json: .object(
                [("id", .string(result.id)), ("outcome", .string(outcome))]
                    + TaskFormatting.timeMembers("run_at", task.runAt.micros)))
        } else {
            session.write(result.id + "\n")
        }
        if result.outcome == .kept {
            session.note("a task with id '\(result.id)' exists; it was left unchanged (--keep-existing)")
        }
        // The warning is advice: a failure to fetch statistics must not turn a successful add into an error.
        if let stats = try? await session.scheduler.stats(),
            (stats.callbacks.first { $0.name == callback }?.workers ?? 0) == 0
        {
            // A shared datastore (no map) has workers on other daemons that this one does not count.
            let elsewhere = stats.storeMapBytes == 0 ? " on this daemon (workers on other daemons are not counted)" : ""
            session.note(
                "warning: no connected worker\(elsewhere) serves callback '\(callback)' (polling workers are not counted); "
                    + "the task waits until one does (for example `taskshedctl worker --run \(callback)=COMMAND`)")
        }
    }
}
