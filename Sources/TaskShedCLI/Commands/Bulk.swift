import ArgumentParser
import Foundation
import TaskShed

/// Task ids or a group: what `pause`, `resume` and `remove` apply to.
public struct TaskSelection: ParsableArguments {
    /// Ids.
    @Argument(help: "Task ids.")
    public var ids: [String] = []
    /// Group.
    @Option(name: .long, help: ArgumentHelp("Every task of this group instead of ids.", valueName: "group"))
    public var group: String?

    /// Creates the options (the parser does this).
    public init() {}

    /// Exactly one of ids and --group.
    public func validate() throws {
        if ids.isEmpty && group == nil { throw ValidationError("name task ids, or a group with --group") }
        if !ids.isEmpty && group != nil { throw ValidationError("give task ids or --group, not both") }
    }
}

/// The shared body of `pause`, `resume` and `remove`.
enum BulkChange {
    static func run(
        _ selection: TaskSelection, verb: String, session: CommandSession,
        apply: ([String]?, String?) async throws -> Int
    ) async throws {
        let ids = selection.ids.isEmpty ? nil : selection.ids
        let affected = try await apply(ids, selection.group)
        if affected == 0, let ids, try await session.scheduler.fetchTasks(ids: ids).isEmpty {
            let list = ids.map { "'\($0)'" }.joined(separator: ", ")
            throw CLIError("no task with id \(list) (see `taskshedctl list`)", status: .notFound)
        }
        if session.json {
            session.write(json: .object([("affected", .uint(UInt64(affected)))]))
        } else {
            session.write("\(verb) \(affected) \(affected == 1 ? "task" : "tasks")\n")
        }
    }
}

/// `taskshedctl pause`.
public struct Pause: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Pause tasks: they do not run until resumed.",
        discussion: """
            Prints how many of the named tasks exist and are not dead-lettered (a task that was already paused \
            counts; its paused-at time is kept). Exits with status 66 when none of \
            the given ids exists.

            Examples:
              taskshedctl pause daily-report
              taskshedctl pause --group reports
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Which tasks.
    @OptionGroup public var selection: TaskSelection
    /// Creates the command (the parser does this).
    public init() {}
    /// Pauses them.
    public func execute(_ session: CommandSession) async throws {
        try await BulkChange.run(selection, verb: "paused", session: session) {
            try await session.scheduler.pauseTasks(ids: $0, group: $1)
        }
    }
}

/// `taskshedctl resume`.
public struct Resume: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Resume paused tasks.",
        discussion: """
            A resumed task whose time has passed runs at once. Exits with status 66 when none of the given ids \
            exists.

            Examples:
              taskshedctl resume daily-report
              taskshedctl resume --group reports
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Which tasks.
    @OptionGroup public var selection: TaskSelection
    /// Creates the command (the parser does this).
    public init() {}
    /// Resumes them.
    public func execute(_ session: CommandSession) async throws {
        try await BulkChange.run(selection, verb: "resumed", session: session) {
            try await session.scheduler.resumeTasks(ids: $0, group: $1)
        }
    }
}

/// `taskshedctl remove`.
public struct Remove: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Remove tasks.",
        discussion: """
            Exits with status 66 when none of the given ids exists.

            Examples:
              taskshedctl remove daily-report
              taskshedctl remove --group reports
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Which tasks.
    @OptionGroup public var selection: TaskSelection
    /// Creates the command (the parser does this).
    public init() {}
    /// Removes them.
    public func execute(_ session: CommandSession) async throws {
        try await BulkChange.run(selection, verb: "removed", session: session) {
            try await session.scheduler.removeTasks(ids: $0, group: $1)
        }
    }
}

/// `taskshedctl reschedule ID TIME`.
public struct Reschedule: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Move a task's next run to another time.",
        discussion: """
            TIME as for `add --at`: RFC 3339 with an offset, local 'YYYY-MM-DD HH:MM[:SS]', local 'HH:MM[:SS]' \
            (the next such time), 'now' or '+DURATION'. Exits with status 66 when no task has this id.

            Examples:
              taskshedctl reschedule daily-report 07:30
              taskshedctl reschedule 3f2a9c... +10m
              taskshedctl reschedule backup now
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// The task.
    @Argument(help: "The task id.")
    public var id: String
    /// The new time.
    @Argument(help: "The new next run time.")
    public var time: String

    /// Creates the command (the parser does this).
    public init() {}

    /// Reschedules the task.
    public func execute(_ session: CommandSession) async throws {
        let micros: Int64
        do {
            micros = try TimeParser(context: session.context).parseMicros(time)
        } catch {
            throw CLIError.badTime(error)
        }
        try await session.scheduler.updateExecutionTimes([(id: id, runAt: Date(cliMicros: micros))])
        if session.json {
            session.write(json: .object([("id", .string(id))] + TaskFormatting.timeMembers("run_at", micros)))
        } else {
            session.write("rescheduled \(id) to \(TimeFormatting.localWithHint(micros: micros, context: session.context))\n")
        }
    }
}
