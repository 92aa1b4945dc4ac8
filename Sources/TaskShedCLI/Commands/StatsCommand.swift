import ArgumentParser
import Foundation
import TaskShed

/// `taskshedctl stats` (alias `status`).
public struct StatsCommand: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the daemon's state: version, uptime, task counts, workers, lag.",
        discussion: """
            Shows the daemon version and uptime, task counts by state and by callback, the next wake-up, \
            connected workers per callback, due tasks waiting for a worker, the store's size, and recent \
            execution-lag percentiles (delivery time minus due time).

            Examples:
              taskshedctl stats
              taskshedctl status --json
            """,
        aliases: ["status"])
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Fetches and prints the statistics.
    public func execute(_ session: CommandSession) async throws {
        let stats = try await session.scheduler.stats().wire
        if session.json {
            session.write(json: StatsFormatting.json(stats, socketPath: session.socketPath))
        } else {
            session.write(StatsFormatting.text(stats, socketPath: session.socketPath, context: session.context))
        }
    }
}

/// `taskshedctl ping`.
public struct Ping: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Check that the daemon answers; print the round trip and its next wake-up.",
        discussion: """
            Exits with status 0 when the daemon answers, 69 when it cannot be reached.

            Examples:
              taskshedctl ping
              taskshedctl ping --socket /run/taskshed/taskshedd.sock
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Pings the daemon.
    public func execute(_ session: CommandSession) async throws {
        let reply = try await session.scheduler.ping()
        let roundTrip = reply.roundTrip.wholeMicros
        let serverNow = reply.serverTime.micros
        if session.json {
            session.write(json: .object(
                [("socket", .string(session.socketPath)), ("round_trip_us", .int(roundTrip))]
                    + TaskFormatting.timeMembers("server_time", serverNow)
                    + TaskFormatting.timeMembers("next_wakeup", reply.nextWakeup?.micros)))
        } else {
            var context = session.context
            context.nowMicros = serverNow
            let wakeup = reply.nextWakeup.map { TimeFormatting.localWithHint(micros: $0.micros, context: context) } ?? "none"
            session.write(
                "taskshedd at \(session.socketPath) answered in \(TimeFormatting.measurement(micros: roundTrip)); "
                    + "next wake-up: \(wakeup)\n")
        }
    }
}
