import ArgumentParser
import Foundation
import TaskShed
import TaskShedProtocol

/// What a subcommand that talks to the daemon gets: the scheduler, the clock and zone, and output helpers.
public struct CommandSession: Sendable {
    /// The client connected (lazily) to `socketPath`.
    public let scheduler: Scheduler
    /// The socket in use.
    public let socketPath: String
    /// Now and the local zone.
    public let context: TimeContext
    /// Whether `--json` was given.
    public let json: Bool

    /// Writes text to standard output as it is (callers end lines themselves).
    public func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a JSON document and a newline to standard output.
    public func write(json value: JSONOutput) {
        write(value.render() + "\n")
    }

    /// Writes one line to standard error, prefixed with `taskshedctl: `.
    public func note(_ text: String) {
        CommandSession.writeError("taskshedctl: " + text + "\n")
    }

    /// Writes text to standard error.
    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// A subcommand that talks to the daemon. Its `run()` sets up the session and turns every error into one line
/// on standard error and a documented exit status.
public protocol ClientCommand: AsyncParsableCommand {
    /// The shared `--socket` and `--json` options.
    var global: GlobalOptions { get }

    /// Does the command's work.
    /// - Parameter session: The scheduler, clock and output.
    /// - Throws: Anything; `CLIErrorMapping` turns it into a message and an exit status.
    func execute(_ session: CommandSession) async throws
}

extension ClientCommand {
    /// Runs `execute` with a fresh session and reports failures.
    public func run() async throws {
        let socketPath = global.socketPath
        let scheduler = Scheduler(socketPath: socketPath, clientName: "taskshedctl \(TaskShedCtl.version)")
        defer { scheduler.shutdown() }
        let session = CommandSession(
            scheduler: scheduler, socketPath: socketPath, context: .current(), json: global.json)
        do {
            try await execute(session)
        } catch {
            let failure = CLIErrorMapping.map(error, socketPath: socketPath)
            session.note(failure.message)
            throw ExitCode(failure.status.rawValue)
        }
    }
}

/// Turns any error a command meets into the one-line message and exit status the CLI reports.
public enum CLIErrorMapping {
    /// The message and status for an error.
    /// - Parameters:
    ///   - error: What was thrown.
    ///   - socketPath: The socket in use (named in connection errors).
    /// - Returns: The error to report.
    public static func map(_ error: any Error, socketPath: String) -> CLIError {
        switch error {
        case let error as CLIError:
            return error
        case let error as TimeParseError:
            return .badTime(error)
        case let error as TaskShedError:
            return map(error, socketPath: socketPath)
        case let error as CommandLaunchError:
            return CLIError("cannot run the command: \(error)", status: .software)
        case let error as ExitCode:
            return CLIError("exited with status \(error.rawValue)", status: ExitStatus(rawValue: error.rawValue) ?? .failure)
        default:
            return CLIError(String(describing: error), status: .failure)
        }
    }

    /// The message and status for a client library error.
    public static func map(_ error: TaskShedError, socketPath: String) -> CLIError {
        let field = error.field.map { "\($0): " } ?? ""
        switch error.code {
        case .connectionFailed:
            if error.field == "socketPath" {
                return CLIError("\(error.message); check --socket / TASKSHED_SOCKET", status: .usage)
            }
            return ConnectionDiagnosis.diagnose(path: socketPath)
        case .connectionClosed:
            return CLIError(
                "lost the connection to the daemon at \(socketPath): \(error.message); check that taskshedd is "
                    + "running (`taskshedctl ping`)", status: .unavailable)
        case .shutDown:
            return CLIError(error.message, status: .unavailable)
        case .invalidUsage:
            return CLIError(field + error.message, status: .usage)
        case .kwargsCoding:
            return CLIError(field + error.message, status: .dataError)
        case .protocolViolation:
            return CLIError("the daemon broke the protocol: \(error.message)", status: .software)
        case .permissionDenied:
            return CLIError(
                "the daemon at \(socketPath) refuses this user (uid \(getuid())): \(error.message); "
                    + "ask for your uid or group to be allowed, or \(ConnectionDiagnosis.groupAdvice(forPath: socketPath))",
                status: .permissionDenied)
        case .invalidArgument:
            return CLIError("the daemon rejected \(field.isEmpty ? "the request: " : field)\(error.message)", status: .usage)
        case .taskNotFound:
            return CLIError("\(error.message) (see `taskshedctl list`)", status: .notFound)
        case .storeFull:
            return CLIError(
                "the daemon's store is full: \(error.message); remove tasks (`taskshedctl purge --all`, "
                    + "`taskshedctl remove`) or raise its size limit", status: .temporaryFailure)
        case .tooManyConnections, .shuttingDown, .storeUnavailable:
            return CLIError("\(error.code.name): \(error.message); try again shortly", status: .unavailable)
        default:
            let status = error.code.serverCode.map(ExitStatus.forProtocolError) ?? .software
            return CLIError("\(error.code.name): \(field)\(error.message)", status: status)
        }
    }
}

extension Date {
    /// Microseconds since the epoch, rounded (the client library's `Date`s come from microseconds).
    var micros: Int64 {
        let value = (timeIntervalSince1970 * 1_000_000).rounded()
        return Int64(exactly: value) ?? (value < 0 ? Int64.min : Int64.max)
    }

    /// The instant of a microsecond count.
    init(cliMicros micros: Int64) {
        self.init(timeIntervalSince1970: Double(micros) / 1_000_000)
    }
}

extension Duration {
    /// Whole microseconds, saturating.
    var wholeMicros: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        guard !overflow else { return seconds < 0 ? Int64.min : Int64.max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000).partialValue
    }
}

extension ScheduledTask {
    /// The task as the protocol's record, which the formatting code works on.
    var record: TaskRecord {
        let wireSchedule: Schedule
        switch schedule {
        case .once: wireSchedule = .once
        case .every(let interval): wireSchedule = .interval(micros: interval.wholeMicros)
        case .calendar(let calendar): wireSchedule = .calendar(calendar)
        }
        return TaskRecord(
            id: id, callback: callback, runAt: runAt.micros, schedule: wireSchedule, kwargs: kwargs.jsonBytes,
            group: group, paused: paused, pausedAt: pausedAt?.micros, coalesce: coalesce, state: state,
            attempt: UInt32(clamping: attempt), maxAttempts: UInt32(clamping: maxAttempts ?? 0),
            leaseDeadline: leaseDeadline?.micros, lastError: lastError, createdAt: createdAt?.micros ?? 0,
            lastRunAt: lastRunAt?.micros, lastFailureAt: lastFailureAt?.micros,
            skippedRuns: UInt64(clamping: skippedRuns), lastSkip: lastSkip)
    }
}

extension DaemonStats {
    /// The statistics as the protocol's value, which the formatting code works on.
    var wire: Stats {
        Stats(
            serverVersion: serverVersion, serverTime: serverTime.micros, startedAt: startedAt.micros,
            pending: UInt64(clamping: pending), due: UInt64(clamping: due), paused: UInt64(clamping: paused),
            leased: UInt64(clamping: leased), dead: UInt64(clamping: dead),
            waitingForWorker: UInt64(clamping: waitingForWorker), nextWakeup: nextWakeup?.micros,
            connections: UInt32(clamping: connections),
            callbacks: callbacks.map {
                CallbackStats(
                    callback: $0.name, scheduled: UInt64(clamping: $0.scheduled), due: UInt64(clamping: $0.due),
                    leased: UInt64(clamping: $0.leased), dead: UInt64(clamping: $0.dead),
                    workers: UInt32(clamping: $0.workers))
            },
            storeFileBytes: storeFileBytes, storeMapBytes: storeMapBytes, storeUsedBytes: storeUsedBytes,
            lag: LagSummary(
                count: UInt64(clamping: lag.count), p50: lag.p50.wholeMicros, p90: lag.p90.wholeMicros,
                p99: lag.p99.wholeMicros, max: lag.max.wholeMicros))
    }
}

extension DatastoreDaemon {
    /// The entry as the protocol's value, which the formatting code works on.
    var wire: DaemonInfo {
        DaemonInfo(name: name, host: host, pid: UInt32(clamping: pid), startedAt: startedAt.micros,
                   heartbeatAgeMicros: heartbeatAge.wholeMicros, leased: UInt64(clamping: leased),
                   isThisDaemon: isThisDaemon)
    }
}
