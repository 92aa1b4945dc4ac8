import ArgumentParser
import Foundation
import TaskShed
import TaskShedProtocol

/// `taskshedctl stats` (alias `status`).
public struct StatsCommand: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the daemon's state: version, uptime, task counts, workers, lag.",
        discussion: """
            Shows the daemon version and uptime, task counts by state and by callback, the next wake-up, \
            connected workers per callback, due tasks waiting for a worker, the store's size, and recent \
            execution-lag percentiles (delivery time minus due time). With a datastore shared by several \
            daemons (PostgreSQL), the counts are all daemons' and a table lists the daemons (as \
            'taskshedctl daemons' does).

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
        // The daemons of a shared datastore; a daemon that predates the request (protocol version 1) is shown
        // without them rather than refused.
        var daemons: [DaemonInfo]?
        if stats.storeMapBytes == 0 {
            do {
                daemons = try await session.scheduler.daemons().map(\.wire)
            } catch let error as TaskShedError where error.code == .unsupportedVersion {
                daemons = nil
            }
        }
        if session.json {
            session.write(json: StatsFormatting.json(stats, daemons: daemons, socketPath: session.socketPath))
        } else {
            session.write(StatsFormatting.text(stats, daemons: daemons, socketPath: session.socketPath,
                                               context: session.context))
        }
    }
}

/// `taskshedctl daemons`.
public struct Daemons: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "List the daemons serving the datastore: host, pid, uptime, last heartbeat, leased tasks.",
        discussion: """
            With a PostgreSQL datastore, every taskshedd sharing it: those running, and those silent for less \
            than the heartbeat timeout (after it, the others end a silent daemon's leases and remove it from \
            the list). The daemon this command talks to is marked with '*'. With the embedded store, the one \
            daemon.

            Examples:
              taskshedctl daemons
              taskshedctl daemons --json
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Lists the daemons.
    public func execute(_ session: CommandSession) async throws {
        let daemons = try await session.scheduler.daemons().map(\.wire)
        if session.json {
            session.write(json: .array(daemons.map(StatsFormatting.json)))
        } else {
            session.write(StatsFormatting.daemonTable(daemons, context: session.context))
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
