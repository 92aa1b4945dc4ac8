import ArgumentParser
import Dispatch
import Foundation
import Glibc
import TaskShed

/// One `--run NAME=COMMAND` of `taskshedctl worker`.
public struct CommandCallback: Sendable, Hashable {
    /// The callback name.
    public var name: String
    /// The shell command.
    public var command: String

    /// Splits `NAME=COMMAND` at the first `=`.
    /// - Parameter text: The argument.
    /// - Returns: The callback.
    /// - Throws: `ValidationError` when the name or the command is missing.
    public static func parse(_ text: String) throws -> CommandCallback {
        guard let equals = text.firstIndex(of: "=") else {
            throw ValidationError("--run '\(text)': expected NAME=COMMAND, for example --run backup='/usr/local/bin/backup'")
        }
        let name = String(text[..<equals])
        let command = String(text[text.index(after: equals)...])
        guard !name.isEmpty else { throw ValidationError("--run '\(text)': the callback name before '=' is empty") }
        guard !command.trimmingSpaces.isEmpty else {
            throw ValidationError("--run '\(text)': the command after '=' is empty")
        }
        return CommandCallback(name: name, command: command)
    }
}

/// The failure a command-running callback throws. The client library reports it as
/// `CommandFailed: <description>`, which the daemon stores as the task's error.
public struct CommandFailed: Error, Sendable, CustomStringConvertible {
    /// `exit status 3: <last lines of stderr>`, or the timeout.
    public var description: String
}

/// `taskshedctl worker`: runs shell commands as callbacks.
public struct Worker: AsyncParsableCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Run shell commands as task callbacks (a cron/at replacement for non-Swift code).",
        discussion: """
            For each task of callback NAME, runs `/bin/sh -c COMMAND` in its own process group with:
              standard input      the task's kwargs JSON object
              TASKSHED_TASK_ID    the task id
              TASKSHED_CALLBACK   the callback name
              TASKSHED_ATTEMPT    the delivery attempt (1 for the first)
              TASKSHED_KWARGS     the kwargs JSON object
              TASKSHED_RUN_AT     the scheduled time, RFC 3339 UTC; TASKSHED_RUN_AT_US in microseconds
            Standard output goes to the worker's standard output; standard error to the worker's standard error \
            too. Exit status 0 is success; anything else fails the attempt with the last lines of standard \
            error as the task's error (the daemon retries, then dead-letters it). With --timeout, a command that \
            runs too long gets SIGTERM (its whole process group), then SIGKILL 2 s later, and fails.

            Event-driven by default (the daemon pushes each task when due); --poll INTERVAL claims due tasks every \
            interval instead. SIGINT/SIGTERM stop taking tasks and wait up to --shutdown-timeout for running \
            commands; unfinished ones are handed back to the daemon for another worker.

            Examples:
              taskshedctl worker --run backup='/usr/local/bin/backup "$TASKSHED_TASK_ID"'
              taskshedctl worker --run say-hello='jq -r .name | xargs echo hello' --concurrency 8
              taskshedctl worker --run report='make -C /srv/reports' --run cleanup='find /tmp -mtime +7 -delete' \\
                  --timeout 10m --poll 5s
            """)

    /// Shared options (`--json` does not apply).
    @OptionGroup public var global: GlobalOptions

    /// The callbacks.
    @Option(
        name: .long,
        help: ArgumentHelp("A callback NAME and the shell COMMAND it runs (repeatable).", valueName: "name=command"))
    public var run: [String] = []

    /// Concurrent commands.
    @Option(name: .long, help: ArgumentHelp("Most commands running at once.", valueName: "n"))
    public var concurrency: Int = 4

    /// Polling interval.
    @Option(name: .long, help: ArgumentHelp("Poll for due tasks at this interval instead of being pushed tasks.", valueName: "duration"))
    public var poll: String?

    /// Command timeout.
    @Option(name: .long, help: ArgumentHelp("Stop and fail a command that runs longer than this.", valueName: "duration"))
    public var timeout: String?

    /// Lease length.
    @Option(
        name: .long,
        help: ArgumentHelp("Lease length asked of the daemon (default: the daemon's; leases are extended while a command runs).", valueName: "duration"))
    public var lease: String?

    /// Shutdown wait.
    @Option(name: .long, help: ArgumentHelp("On SIGINT/SIGTERM, wait this long for running commands.", valueName: "duration"))
    public var shutdownTimeout: String = "30s"

    /// Quiet.
    @Flag(name: .long, help: "Do not log each successful run on standard error (failures are still logged).")
    public var quiet = false

    /// Creates the command (the parser does this).
    public init() {}

    /// Checks the callbacks and durations.
    public func validate() throws {
        let callbacks = try run.map(CommandCallback.parse)
        guard !callbacks.isEmpty else {
            throw ValidationError("give at least one --run NAME=COMMAND")
        }
        var seen = Set<String>()
        for callback in callbacks where !seen.insert(callback.name).inserted {
            throw ValidationError("--run: callback '\(callback.name)' is given twice")
        }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        for (option, value) in [("--poll", poll), ("--timeout", timeout), ("--lease", lease), ("--shutdown-timeout", shutdownTimeout)] {
            if let value {
                do {
                    _ = try DurationParser.parsePositiveMicros(value)
                } catch {
                    throw ValidationError("\(option): \(error.description)")
                }
            }
        }
    }

    /// Runs the worker until SIGINT or SIGTERM.
    public func run() async throws {
        let socketPath = global.socketPath
        do {
            try await runWorker(socketPath: socketPath)
        } catch {
            let failure = CLIErrorMapping.map(error, socketPath: socketPath)
            CommandSession.writeError("taskshedctl: \(failure.message)\n")
            throw ExitCode(failure.status.rawValue)
        }
    }

    private func micros(_ text: String?) -> Int64? {
        text.flatMap { try? DurationParser.parsePositiveMicros($0) }
    }

    private func runWorker(socketPath: String) async throws {
        let callbacks = try run.map(CommandCallback.parse)
        let timeoutMicros = micros(timeout)
        let log = WorkerLog(quiet: quiet)
        let baseEnvironment = ProcessInfo.processInfo.environment
        var map: [String: TaskCallback] = [:]
        for callback in callbacks {
            map[callback.name] = { task in
                try await CommandCallbackRunner.run(
                    callback, task: task, baseEnvironment: baseEnvironment, timeoutMicros: timeoutMicros, log: log)
            }
        }
        let leaseDuration = micros(lease).map { Duration.microseconds($0) }
        let clientName = "taskshedctl \(TaskShedCtl.version) worker"
        let worker: any CommandWorker
        if let interval = micros(poll) {
            worker = try PollingWorker(
                callbackMap: map, pollingInterval: .microseconds(interval), socketPath: socketPath,
                concurrency: concurrency, lease: leaseDuration, clientName: clientName)
        } else {
            worker = try EventDrivenWorker(
                callbackMap: map, socketPath: socketPath, concurrency: concurrency, lease: leaseDuration,
                clientName: clientName)
        }
        log.line(
            "worker starting on \(socketPath) (\(poll == nil ? "event-driven" : "polling every \(poll ?? "")"), "
                + "concurrency \(concurrency)): \(callbacks.map(\.name).joined(separator: ", "))", force: true)

        let shutdownAfter = Duration.microseconds(micros(shutdownTimeout) ?? 30_000_000)
        let shutdownText = shutdownTimeout
        let stopper = SignalStopper(signals: [SIGINT, SIGTERM]) { signal in
            log.line("\(signal): stopping (waiting up to \(shutdownText) for running commands)", force: true)
            let released = await worker.shutdown(timeout: shutdownAfter)
            if released > 0 {
                log.line("released \(released) unfinished \(released == 1 ? "task" : "tasks") to the daemon", force: true)
            }
        }
        defer { stopper.cancel() }
        // Returns once shutdown has completed; throws when the first connection fails.
        try await worker.run()
        await stopper.waitForHandler()
        log.line("worker stopped", force: true)
    }
}

/// What `Worker` needs of the client library's two worker kinds.
protocol CommandWorker: Sendable {
    func run() async throws
    func shutdown(timeout: Duration) async -> Int
}

extension EventDrivenWorker: CommandWorker {}
extension PollingWorker: CommandWorker {}

/// Runs one task's command and turns the outcome into the callback's result.
enum CommandCallbackRunner {
    static func run(
        _ callback: CommandCallback, task: ScheduledTask, baseEnvironment: [String: String], timeoutMicros: Int64?,
        log: WorkerLog
    ) async throws {
        let kwargs = task.kwargs.jsonBytes
        let variables = TaskCommandEnvironment.variables(
            taskID: task.id, callback: task.callback, attempt: UInt32(clamping: task.attempt),
            kwargs: String(decoding: kwargs, as: UTF8.self), runAtMicros: task.runAt.micros)
        let invocation = CommandInvocation(
            command: callback.command, standardInput: kwargs,
            environment: TaskCommandEnvironment.merged(base: baseEnvironment, task: variables),
            timeoutMicros: timeoutMicros, standardOutput: .inherit, forwardStandardError: true)
        let result = try await CommandRunner.run(invocation)
        if let failure = result.failureDescription {
            // The client library logs the failure (with the task's metadata) when it reports it to the daemon.
            throw CommandFailed(description: failure)
        }
        log.line(
            "\(callback.name) \(task.id) attempt \(task.attempt): ok in \(TimeFormatting.measurement(micros: result.elapsedMicros))",
            force: false)
    }
}

/// The worker's own log lines on standard error: `taskshedctl worker: <UTC time> <message>`.
struct WorkerLog: Sendable {
    var quiet: Bool

    func line(_ message: String, force: Bool) {
        guard force || !quiet else { return }
        let now = TimeFormatting.rfc3339UTC(micros: TimeContext.currentMicros())
        CommandSession.writeError("taskshedctl worker: \(now) \(message)\n")
    }
}

/// Turns SIGINT/SIGTERM into one call of an async handler, instead of the default of dying at once.
final class SignalStopper: @unchecked Sendable {
    // `sources` is set up in init and then only read; `handlerTask` is guarded by `lock`.
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var handlerTask: Task<Void, Never>?

    init(signals: [Int32], handler: @escaping @Sendable (String) async -> Void) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            let name = number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)"
            source.setEventHandler { [self] in
                lock.lock()
                defer { lock.unlock() }
                guard handlerTask == nil else { return }
                handlerTask = Task { await handler(name) }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Waits for the handler when a signal started it, so that its last log lines are written before exit.
    func waitForHandler() async {
        await startedHandler()?.value
    }

    private func startedHandler() -> Task<Void, Never>? {
        lock.withLock { handlerTask }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
