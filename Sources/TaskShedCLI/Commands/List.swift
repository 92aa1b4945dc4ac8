import ArgumentParser
import Foundation
import TaskShed
import TaskShedProtocol

/// `taskshedctl list`: tasks ordered by next run time, with filters and pagination.
public struct List: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "List tasks by next run time.",
        discussion: """
            Shows one page (--limit, default 100); when more tasks match, standard error names the --cursor for \
            the next page. --all fetches every page. Statuses: pending (waiting for its time), due (waiting for a \
            worker), paused, leased (running on a worker), dead (out of attempts; see `taskshedctl failed`).

            Examples:
              taskshedctl list
              taskshedctl list --state due --callback backup
              taskshedctl list --group reports --due-before +1h
              taskshedctl list --due-after '2026-03-08 00:00' --due-before '2026-03-09 00:00' --all
              taskshedctl list --json --limit 500 --cursor 0000018e...
            """)

    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Paging.
    @OptionGroup public var paging: PagingOptions

    /// Group filter.
    @Option(name: .long, help: ArgumentHelp("Only tasks of this group.", valueName: "group"))
    public var group: String?
    /// State filter.
    @Option(name: .long, help: ArgumentHelp("Only tasks in this state.", valueName: "state"))
    public var state: StateOption?
    /// Callback filter.
    @Option(name: .long, help: ArgumentHelp("Only tasks of this callback.", valueName: "callback"))
    public var callback: String?
    /// Upper time bound.
    @Option(name: .long, help: ArgumentHelp("Only tasks due before this time.", valueName: "time"))
    public var dueBefore: String?
    /// Lower time bound.
    @Option(name: .long, help: ArgumentHelp("Only tasks due at or after this time.", valueName: "time"))
    public var dueAfter: String?

    /// Creates the command (the parser does this).
    public init() {}

    /// The filter these options describe.
    /// - Parameter context: Now and the zone, for the time bounds.
    /// - Returns: The filter.
    /// - Throws: `CLIError` (usage) for a bad time.
    public func makeFilter(context: TimeContext) throws -> TaskListFilter {
        let parser = TimeParser(context: context)
        func bound(_ text: String?, _ option: String) throws -> Date? {
            guard let text else { return nil }
            do {
                return Date(cliMicros: try parser.parseMicros(text))
            } catch {
                throw CLIError.badTime(error, option: option)
            }
        }
        return TaskListFilter(
            group: group, state: state?.filter, callback: callback, dueAfter: try bound(dueAfter, "--due-after"),
            dueBefore: try bound(dueBefore, "--due-before"))
    }

    /// Fetches and prints the page(s).
    public func execute(_ session: CommandSession) async throws {
        let filter = try makeFilter(context: session.context)
        try await ListPrinter.print(
            session: session, paging: paging, deadLetters: false, command: "list"
        ) { limit, cursor in
            try await session.scheduler.listTasks(filter: filter, limit: limit, cursor: cursor)
        }
    }
}

/// Fetches pages for `list` and `failed` and prints them as a table or as the JSON document
/// `{"tasks": [...], "next_cursor": "…" | null}`.
enum ListPrinter {
    static func print(
        session: CommandSession, paging: PagingOptions, deadLetters: Bool, command: String,
        fetch: (Int, TaskListCursor?) async throws -> TaskListPage
    ) async throws {
        var tasks: [TaskRecord] = []
        var cursor = paging.cursor.flatMap(CursorText.decode).map(TaskListCursor.init(bytes:))
        repeat {
            let page = try await fetch(paging.limit, cursor)
            tasks += page.tasks.map(\.record)
            cursor = page.nextCursor
        } while paging.all && cursor != nil
        let nextCursor = cursor.map { CursorText.encode($0.bytes) }
        if session.json {
            session.write(json: .object([
                ("tasks", .array(tasks.map { TaskFormatting.json($0, nowMicros: session.context.nowMicros) })),
                ("next_cursor", .optional(nextCursor)),
            ]))
            return
        }
        if tasks.isEmpty {
            session.write(deadLetters ? "No dead-lettered tasks.\n" : "No tasks.\n")
        } else {
            session.write(
                deadLetters
                    ? TaskFormatting.deadLetterTable(tasks, context: session.context)
                    : TaskFormatting.table(tasks, context: session.context, width: TerminalWidth.ofStandardOutput()))
        }
        if let nextCursor {
            session.note("more tasks: `taskshedctl \(command) --cursor \(nextCursor)`, or --all for every page")
        }
    }
}

/// `taskshedctl show ID`: one task in detail.
public struct Show: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Show one task in detail, with its last runs.",
        discussion: """
            Prints every field of the task, then its last \(Show.lastRunCount) runs from the daemon's run history \
            (as `taskshedctl history ID` does; left out against a daemon that keeps no history). Exits with \
            status 66 when no task has this id (a removed task's runs: `taskshedctl history ID`).

            Examples:
              taskshedctl show daily-report
              taskshedctl show 3f2a9c... --json
            """)

    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// The id.
    @Argument(help: "The task id.")
    public var id: String

    /// Creates the command (the parser does this).
    public init() {}

    /// How many of the task's runs `show` lists.
    public static let lastRunCount = 5

    /// Fetches and prints the task and its last runs.
    public func execute(_ session: CommandSession) async throws {
        guard let task = try await session.scheduler.fetchTasks(ids: [id]).first else {
            throw CLIError("no task with id '\(id)' (see `taskshedctl list`)", status: .notFound)
        }
        let runs = try await lastRuns(session)
        if session.json {
            session.write(json: TaskFormatting.json(task.record, nowMicros: session.context.nowMicros).appending(
                "last_runs", runs.map { .array($0.map(HistoryFormatting.json)) } ?? .null))
        } else {
            var text = TaskFormatting.detail(task.record, context: session.context)
            if let runs {
                text += HistoryFormatting.lastRuns(runs, context: session.context, width: TerminalWidth.ofStandardOutput())
            }
            session.write(text)
        }
    }

    /// The task's last runs, newest first, or `nil` when the daemon keeps no run history (older than protocol
    /// version 3, or without the history yet): `show` then prints the task alone rather than failing, since the
    /// task is what was asked for.
    func lastRuns(_ session: CommandSession) async throws -> [RunEntry]? {
        do {
            return try await session.scheduler.history(taskID: id, limit: Show.lastRunCount).runs.map(\.wire)
        } catch let error as TaskShedError where HistoryCollector.isUnsupported(error) {
            return nil
        }
    }
}
