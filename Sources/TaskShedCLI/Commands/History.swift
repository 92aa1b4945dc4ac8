import ArgumentParser
import Foundation
import TaskShed
import TaskShedProtocol

/// `taskshedctl history [ID]`: how recent runs ended, newest first.
public struct History: ClientCommand {
    /// The `--limit` default: a screenful.
    public static let defaultLimit = 20
    /// The largest `--limit`: ten times the daemon's default store-wide bound of 100,000 runs, so that a
    /// daemon configured to keep more can still be read whole, while a typo (an extra zero or five) is caught.
    public static let maximumLimit = 1_000_000
    /// Runs asked for per request: large enough that the default limit is one request, small enough that one
    /// reply stays well under the daemon's frame size.
    static let pageSize = 500

    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Show how recent runs ended: outcome, lateness, duration, worker, error.",
        discussion: """
            Lists the run history the daemon keeps, newest first: every delivery's end (succeeded, failed, lease \
            expired, worker disconnected, released) and a calendar task's skipped occurrences. Give a task id for \
            that task's runs (also after the task was removed: its runs stay until they age out). The daemon keeps \
            the last runs of each task and of the last days (taskshedd --history-per-task, --history-max-runs, \
            --history-max-age; by default 20 per task, 100,000 in all, 7 days).

            Columns: FINISHED (local time), TASK, CALLBACK, ATTEMPT, OUTCOME, THEN (what became of the task: \
            finished, retry, dead, next run), LATE (delivered minus due), DURATION (finished minus delivered), \
            WORKER (its name/pid), ERROR (first line; cut to the terminal's width).

            --since takes a duration back from now (1h, 30m, 2d) or a time (RFC 3339 such as \
            2026-03-08T02:00:00Z, or local 'YYYY-MM-DD HH:MM[:SS]'). When more runs match than --limit (default \
            \(History.defaultLimit)), standard error names the --before for the next page.

            Examples:
              taskshedctl history
              taskshedctl history nightly-backup
              taskshedctl history --failed --since 1d
              taskshedctl history --callback backup --since '2026-03-08 00:00' --limit 200
              taskshedctl history --json --limit 1000 | jq '.runs[] | select(.failure)'
            """)

    /// Shared options.
    @OptionGroup public var global: GlobalOptions

    /// A task id, or `nil` for every task.
    @Argument(help: ArgumentHelp("Only this task's runs.", valueName: "id"))
    public var id: String?

    /// Callback filter.
    @Option(name: .long, help: ArgumentHelp("Only runs of this callback.", valueName: "name"))
    public var callback: String?

    /// Failures only.
    @Flag(name: .long, help: "Only failures: failed, lease expired, worker disconnected.")
    public var failed = false

    /// Lower time bound, as given.
    @Option(
        name: .long,
        help: ArgumentHelp("Only runs that finished since: a duration back from now (1h, 2d) or a time.", valueName: "duration|time"))
    public var since: String?

    /// Most runs.
    @Option(name: .long, help: ArgumentHelp("Most runs to show; pages through the daemon's replies.", valueName: "n"))
    public var limit: Int = History.defaultLimit

    /// Where to continue.
    @Option(
        name: .long,
        help: ArgumentHelp("Only runs older than this one: the --before a previous page printed.", valueName: "seq"))
    public var before: UInt64?

    /// Creates the command (the parser does this).
    public init() {}

    /// Checks what needs no clock: the limit's range, and that names are not empty.
    public func validate() throws {
        guard (1...History.maximumLimit).contains(limit) else {
            throw ValidationError("--limit must be 1 … \(History.maximumLimit), got \(limit)")
        }
        if id?.isEmpty == true { throw ValidationError("the task id is empty; leave it out for every task's runs") }
        if callback?.isEmpty == true { throw ValidationError("--callback: the callback name is empty") }
        if before == 0 { throw ValidationError("--before 0 matches nothing: runs are numbered from 1") }
    }

    /// The instant `--since` names, in microseconds since the epoch, or `nil` without `--since`.
    /// - Parameter context: Now and the zone.
    /// - Returns: The instant.
    /// - Throws: `CLIError` (usage) naming `--since`, for text that is neither a duration nor a time, or a
    ///   time in the future.
    public func sinceMicros(context: TimeContext) throws -> Int64? {
        guard let since else { return nil }
        if let back = try? DurationParser.parseMicros(since) {
            let (start, overflow) = context.nowMicros.subtractingReportingOverflow(back)
            guard !overflow else { throw CLIError("--since: '\(since)' reaches back too far", status: .usage) }
            return start
        }
        let instant: Int64
        do {
            instant = try TimeParser(context: context).parseMicros(since)
        } catch {
            throw CLIError(
                "--since: '\(since)' is neither a duration back from now (1h, 30m, 2d; "
                    + "\(TimeParseError.acceptedDurationFormats)) nor a time (\(error.problem); accepted: "
                    + "\(TimeParseError.acceptedTimeFormats))",
                status: .usage)
        }
        guard instant <= context.nowMicros else {
            throw CLIError(
                "--since: '\(since)' is \(TimeFormatting.relative(micros: instant, context: context)), in the future, "
                    + "so no run matches (a bare time of day means its next occurrence; give the date, "
                    + "'YYYY-MM-DD HH:MM', or a duration back from now such as 3h)",
                status: .usage)
        }
        return instant
    }

    /// Fetches and prints the runs.
    public func execute(_ session: CommandSession) async throws {
        let sinceMicros = try sinceMicros(context: session.context)
        let since = sinceMicros.map(Date.init(cliMicros:))
        let result: HistoryCollector.Result
        do {
            result = try await HistoryCollector.collect(limit: limit, before: before) { count, before in
                try await session.scheduler.history(
                    taskID: id, callback: callback, failedOnly: failed, since: since, limit: count, before: before)
            }
        } catch let error as TaskShedError where HistoryCollector.isUnsupported(error) {
            throw CLIError(
                "the daemon at \(session.socketPath) keeps no run history (it predates it: \(error.message)); "
                    + "upgrade taskshedd", status: .software)
        }
        if session.json {
            session.write(json: .object([
                ("runs", .array(result.runs.map(HistoryFormatting.json))),
                ("next_before", result.nextBefore.map { .uint($0) } ?? .null),
            ]))
            return
        }
        if result.runs.isEmpty {
            session.write(id.map { "No runs recorded for task '\($0)'.\n" } ?? "No runs recorded.\n")
        } else {
            session.write(HistoryFormatting.table(result.runs, context: session.context, width: TerminalWidth.ofStandardOutput()))
        }
        if let next = result.nextBefore {
            session.note("more runs: add `--before \(next)` for the next page, or raise --limit")
        }
    }
}

/// Pages through `GET_HISTORY` with `before` until a limit is reached or no older run matches.
enum HistoryCollector {
    /// The runs collected and where the next page would start.
    struct Result {
        /// The runs, newest first, at most the limit.
        var runs: [RunEntry]
        /// The `before` of the next page, or `nil` when no older run matches.
        var nextBefore: UInt64?
    }

    /// Collects up to `limit` runs.
    /// - Parameters:
    ///   - limit: Most runs (at least 1).
    ///   - before: Where to start (`--before`), or `nil` for the newest run.
    ///   - fetch: Fetches one page of at most the given count, older than the given `before`.
    /// - Returns: The runs and the next page's `before`.
    static func collect(
        limit: Int, before: UInt64?, fetch: (Int, UInt64?) async throws -> TaskRunPage
    ) async throws -> Result {
        var runs: [RunEntry] = []
        var cursor = before
        while runs.count < limit {
            let page = try await fetch(min(History.pageSize, limit - runs.count), cursor)
            // Never more than asked for, whatever the daemon sends; the cursor then points just past the last
            // run kept, so that `--before` shows the next one and none is lost.
            let wanted = page.runs.prefix(limit - runs.count)
            runs += wanted.map(\.wire)
            if wanted.count < page.runs.count {
                cursor = wanted.last?.sequence
                break
            }
            cursor = page.nextBefore
            // An empty page ends the walk whatever its cursor says, so that a broken reply cannot loop forever.
            if cursor == nil || page.runs.isEmpty { break }
        }
        return Result(runs: runs, nextBefore: runs.isEmpty ? nil : cursor)
    }

    /// Whether the daemon does not serve the run history: it speaks a protocol version below 3, or version 3
    /// without the history yet (it answers `UNKNOWN_MESSAGE_TYPE`).
    static func isUnsupported(_ error: TaskShedError) -> Bool {
        error.code == .unsupportedVersion || error.code == .unknownMessageType
    }
}

extension TaskRun {
    /// The run as the protocol's entry, which the formatting code works on.
    var wire: RunEntry {
        RunEntry(
            seq: sequence, taskID: taskID, callback: callback, attempt: UInt32(clamping: attempt),
            scheduledAt: scheduledAt.micros, deliveredAt: deliveredAt?.micros, finishedAt: finishedAt.micros,
            outcome: outcome.wire, then: then.wire, error: error, workerName: workerName ?? "",
            workerPID: workerPID.map { UInt32(clamping: $0) } ?? 0, workerUID: workerUID ?? .max, daemon: daemon)
    }
}

extension TaskRun.Outcome {
    /// The protocol's value.
    var wire: RunOutcome {
        switch self {
        case .succeeded: return .succeeded
        case .failed: return .failed
        case .leaseExpired: return .leaseExpired
        case .workerDisconnected: return .workerDisconnected
        case .released: return .released
        case .skipped: return .skipped
        }
    }
}

extension TaskRun.FollowUp {
    /// The protocol's value.
    var wire: RunFollowUp {
        switch self {
        case .finished: return .finished
        case .retry: return .retry
        case .deadLettered: return .deadLettered
        case .nextRun: return .nextRun
        }
    }
}
