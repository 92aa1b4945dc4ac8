import ArgumentParser
import Foundation
import Logging
import TaskShedProtocol

/// `taskshedctl`: the root command. The executable's `@main` calls `runMain()`.
public struct TaskShedCtl: AsyncParsableCommand {
    /// The CLI's version: TaskShed's one version (`TaskShedVersion`).
    public static let version = TaskShedVersion.current

    /// Names, help and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "taskshedctl",
        abstract: "Schedule, inspect and run TaskShed tasks.",
        discussion: """
            Talks to the taskshedd daemon over its Unix socket (--socket, or $TASKSHED_SOCKET, or the default \
            path). Times: RFC 3339 with an offset, local 'YYYY-MM-DD HH:MM[:SS]', local 'HH:MM[:SS]' (the next \
            such time), 'now' or '+DURATION'. Durations: 500ms, 90s, 5m, 2h30m, 1d.

            Examples:
              taskshedctl add backup --at 02:30 --every 1d --kwargs '{"path": "/srv"}'
              taskshedctl add send-report --in 10m --group reports
              taskshedctl list --state due
              taskshedctl history --failed --since 1d
              taskshedctl worker --run backup='/usr/local/bin/backup "$TASKSHED_TASK_ID"'
              taskshedctl stats
              taskshedctl calendar 'Mon..Fri 09:00 Europe/Berlin' -n 5

            Exit status: 0 ok, 1 failure, 64 usage, 65 bad kwargs, 66 task not found, 69 daemon unavailable, \
            70 daemon or protocol error, 73 task exists, 75 store full (retry later), 77 permission denied.
            """,
        version: version,
        subcommands: [
            Add.self, List.self, Show.self, History.self, Pause.self, Resume.self, Remove.self, Reschedule.self, Failed.self,
            Retry.self, Purge.self, StatsCommand.self, Top.self, Daemons.self, Worker.self, Ping.self, CalendarCommand.self,
            Metrics.self,
        ]
    )

    /// `--socket` and `--json` given before the subcommand name; argument-parser passes them on to the
    /// subcommand's own `GlobalOptions`, so both `taskshedctl --json list` and `taskshedctl list --json` work.
    @OptionGroup public var global: GlobalOptions

    /// Creates the root command (the parser does this).
    public init() {}

    /// Runs the command line of this process: sends logs to standard error, parses, runs, exits.
    public static func runMain() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel(from: ProcessInfo.processInfo.environment["TASKSHED_LOG_LEVEL"]) ?? .notice
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    /// A swift-log level from its name (`trace` ... `critical`).
    static func logLevel(from name: String?) -> Logger.Level? {
        name.flatMap { Logger.Level(rawValue: $0.lowercased()) }
    }
}
