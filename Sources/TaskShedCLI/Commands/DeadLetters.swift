import ArgumentParser
import Foundation
import TaskShed

/// `taskshedctl failed`: dead-lettered tasks.
public struct Failed: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "List dead-lettered tasks (out of attempts) with their last error.",
        discussion: """
            A one-off task whose callback fails on every allowed attempt is kept here until it is retried \
            (`taskshedctl retry`) or purged (`taskshedctl purge`).

            Examples:
              taskshedctl failed
              taskshedctl failed --json --all
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Paging.
    @OptionGroup public var paging: PagingOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Fetches and prints the dead letters.
    public func execute(_ session: CommandSession) async throws {
        try await ListPrinter.print(session: session, paging: paging, deadLetters: true, command: "failed") {
            try await session.scheduler.deadLetters(limit: $0, cursor: $1)
        }
    }
}

/// Dead-lettered task ids, a group, or all: what `retry` and `purge` apply to.
public struct DeadLetterOptions: ParsableArguments {
    /// Ids.
    @Argument(help: "Ids of dead-lettered tasks.")
    public var ids: [String] = []
    /// Group.
    @Option(name: .long, help: ArgumentHelp("Every dead-lettered task of this group.", valueName: "group"))
    public var group: String?
    /// All.
    @Flag(name: .long, help: "Every dead-lettered task.")
    public var all = false

    /// Creates the options (the parser does this).
    public init() {}

    /// Exactly one of ids, --group and --all.
    public func validate() throws {
        let given = (ids.isEmpty ? 0 : 1) + (group == nil ? 0 : 1) + (all ? 1 : 0)
        if given == 0 { throw ValidationError("name dead-lettered task ids, or give --group or --all") }
        if given > 1 { throw ValidationError("give only one of: task ids, --group, --all") }
    }

    /// The selection.
    public var selection: DeadLetterSelection {
        if all { return .all }
        if let group { return .group(group) }
        return .ids(ids)
    }
}

/// `taskshedctl retry`.
public struct Retry: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Move dead-lettered tasks back to scheduled, due now, with their attempts reset.",
        discussion: """
            Examples:
              taskshedctl retry 3f2a9c...
              taskshedctl retry --all
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Which dead letters.
    @OptionGroup public var options: DeadLetterOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Retries them.
    public func execute(_ session: CommandSession) async throws {
        let count = try await session.scheduler.retryDeadLetters(options.selection)
        DeadLetterReport.write(count, verb: "retried", session: session)
    }
}

/// `taskshedctl purge`.
public struct Purge: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Delete dead-lettered tasks.",
        discussion: """
            Only dead-lettered tasks are deleted; use `taskshedctl remove` for others.

            Examples:
              taskshedctl purge 3f2a9c...
              taskshedctl purge --all
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Which dead letters.
    @OptionGroup public var options: DeadLetterOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Purges them.
    public func execute(_ session: CommandSession) async throws {
        let count = try await session.scheduler.purgeDeadLetters(options.selection)
        DeadLetterReport.write(count, verb: "purged", session: session)
    }
}

enum DeadLetterReport {
    static func write(_ count: Int, verb: String, session: CommandSession) {
        if session.json {
            session.write(json: .object([("affected", .uint(UInt64(count)))]))
        } else {
            session.write("\(verb) \(count) dead-lettered \(count == 1 ? "task" : "tasks")\n")
        }
    }
}
