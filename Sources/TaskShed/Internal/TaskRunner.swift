import Foundation
import Logging
import Synchronization
import TaskShedProtocol

/// Runs delivered tasks for a worker: looks up the callback, keeps the lease alive while it runs, reports the
/// outcome (ACK, FAIL, or FAIL without retry for an unknown callback name), and tracks what is in flight so
/// that shutdown can wait for it and release the rest.
///
/// - Important: Thread-safe; `start` may be called from a connection's reader thread (it only spawns a task).
final class TaskRunner: Sendable {
    private struct Running {
        var lease: LeaseRef
        var connection: Connection
        var task: Task<Void, Never>?
        /// Given back (RELEASE) or orphaned by a lost connection: the outcome must not be reported.
        var abandoned = false
    }

    private struct State {
        var callbacks: [String: TaskCallback]
        var running: [UInt64: Running] = [:]
        var nextToken: UInt64 = 0
    }

    private let state: Mutex<State>
    private let logger: Logger
    /// Lease length asked of TOUCH (`nil`: the subscription's or the daemon's default).
    let leaseMicros: Int64?
    /// Signalled whenever a task finishes (a slot is free; maybe nothing runs any more).
    let finished = AsyncSignal()
    /// Extends the leases of the callbacks while they run.
    private let leaseKeeper: LeaseKeeper

    init(callbacks: [String: TaskCallback], leaseMicros: Int64?, logger: Logger) {
        self.state = Mutex(State(callbacks: callbacks))
        self.leaseMicros = leaseMicros
        self.logger = logger
        self.leaseKeeper = LeaseKeeper(extendMicros: leaseMicros, logger: logger)
    }

    /// Stops extending leases (at worker shutdown, once nothing is reported any more).
    func stopLeaseKeeper() {
        leaseKeeper.stop()
    }

    // MARK: Callbacks

    /// The callback names, sorted (the order sent in SUBSCRIBE and CLAIM).
    var callbackNames: [String] { state.withLock { $0.callbacks.keys.sorted() } }

    /// Adds a callback.
    /// - Throws: `.duplicateCallback` when the name is taken; `.invalidUsage` for an empty name.
    func addCallback(_ name: String, _ callback: @escaping TaskCallback) throws(TaskShedError) {
        guard !name.isEmpty else {
            throw TaskShedError(.invalidUsage, field: "name", message: "a callback name must not be empty")
        }
        let added = state.withLock { state -> Bool in
            if state.callbacks[name] != nil { return false }
            state.callbacks[name] = callback
            return true
        }
        guard added else {
            throw TaskShedError(
                .duplicateCallback, field: "name", message: "the worker already has a callback named \"\(name)\"")
        }
    }

    // MARK: Running

    /// Number of tasks running now.
    var runningCount: Int { state.withLock { $0.running.count } }

    /// Starts running a delivered task in a new task.
    ///
    /// With the reader thread's `turn` (an event-driven delivery), the task starts on that thread at once
    /// (`Task.immediate`) when the connection lends it to the push handler: the callback then begins without
    /// waiting for a thread of the cooperative pool, or another reader thread, to wake up (15–25 µs each in a
    /// VM), and the thread returns to reading when the callback first suspends or ends (or leaves the reading to
    /// another thread if the callback holds it past `Connection.loanGraceNanos`). Otherwise the task is enqueued
    /// on the global executor.
    /// - Parameters:
    ///   - record: The delivered (leased) task.
    ///   - connection: The connection that leased it; the outcome is reported there.
    ///   - turn: The reader thread's turn when called from a push handler, else `nil`.
    func start(_ record: TaskRecord, on connection: Connection, turn: ReaderTurn? = nil) {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            state.running[state.nextToken] = Running(
                lease: LeaseRef(id: record.id, attempt: record.attempt), connection: connection)
            return state.nextToken
        }
        let task: Task<Void, Never>
        let readNanos = turn?.frameReadNanos
        if let turn, turn.keepThread() {
            task = Task.immediate { [self] in
                await run(record, token: token, on: connection, readNanos: readNanos)
                finish(token)
            }
        } else {
            task = Task { [self] in
                await run(record, token: token, on: connection, readNanos: readNanos)
                finish(token)
            }
        }
        let abandoned = state.withLock { state -> Bool in
            // The task may already have finished and removed its entry.
            guard state.running[token] != nil else { return false }
            state.running[token]?.task = task
            return state.running[token]?.abandoned ?? false
        }
        // Given back while its callback's first part ran on this thread, before the task could be cancelled.
        if abandoned { task.cancel() }
    }

    private func finish(_ token: UInt64) {
        state.withLock { _ = $0.running.removeValue(forKey: token) }
        finished.signal()
    }

    private func run(_ record: TaskRecord, token: UInt64, on connection: Connection, readNanos: Int64?) async {
        // Everything up to the callback's start is on the path that the lag benchmark measures: no task is
        // created here, and the per-task logger is only built when something is logged.
        let lease = LeaseRef(id: record.id, attempt: record.attempt)
        guard let callback = state.withLock({ $0.callbacks[record.callback] }) else {
            let error = IncorrectCallbackNameError(callback: record.callback, taskID: record.id)
            let logger = taskLogger(record)
            logger.error("\(error)")
            await report(.fail(Fail(lease: lease, error: error.description, retry: false)), token: token, on: connection, logger: logger)
            return
        }

        let task = ScheduledTask(record: record)
        leaseKeeper.register(token, lease: lease, callback: record.callback, deadline: record.leaseDeadline, on: connection)
        let outcome: Result<Void, any Error>
        do {
            try await DeliveryTiming.$frameReadNanos.withValue(readNanos) { try await callback(task) }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        leaseKeeper.unregister(token)

        let logger = taskLogger(record)
        switch outcome {
        case .success:
            await report(.ack(lease), token: token, on: connection, logger: logger)
        case .failure(let error):
            if isAbandoned(token) {
                logger.debug("callback ended after its task was given back: \(error)")
                return
            }
            logger.error("callback failed: \(error)")
            await report(
                .fail(Fail(lease: lease, error: TaskRunner.describe(error), retry: true)), token: token, on: connection,
                logger: logger)
        }
    }

    /// The runner's logger with the task's metadata.
    private func taskLogger(_ record: TaskRecord) -> Logger {
        var logger = self.logger
        logger[metadataKey: "taskshed.task.id"] = "\(record.id)"
        logger[metadataKey: "taskshed.callback"] = "\(record.callback)"
        logger[metadataKey: "taskshed.attempt"] = "\(record.attempt)"
        return logger
    }

    private func report(_ message: Message, token: UInt64, on connection: Connection, logger: Logger) async {
        if isAbandoned(token) {
            logger.debug("not reporting the outcome of a task that was given back")
            return
        }
        do {
            _ = try await connection.request(message)
        } catch let error as TaskShedError where error.code == .leaseLost {
            logger.warning("the lease was lost before the outcome was reported; the task may run again: \(error)")
        } catch {
            logger.warning("cannot report the task's outcome: \(error)")
        }
    }

    private func isAbandoned(_ token: UInt64) -> Bool {
        state.withLock { $0.running[token]?.abandoned ?? false }
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        let type = String(describing: Swift.type(of: error))
        return text.hasPrefix(type) ? text : "\(type): \(text)"
    }

    // MARK: Losing the connection and shutting down

    /// The connection closed: the daemon released its leases and will deliver those tasks again, so the
    /// callbacks still running on it are cancelled and their outcome is not reported.
    func abandonAll(on connection: Connection) {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            var tasks: [Task<Void, Never>] = []
            for (token, running) in state.running where running.connection === connection && !running.abandoned {
                state.running[token]?.abandoned = true
                leaseKeeper.unregister(token)
                if let task = running.task { tasks.append(task) }
            }
            return tasks
        }
        if !tasks.isEmpty {
            logger.warning("connection lost with \(tasks.count) task(s) running; the daemon will deliver them again")
        }
        for task in tasks { task.cancel() }
    }

    /// Waits until nothing runs or `deadline` passes.
    /// - Returns: Whether nothing runs.
    func waitUntilIdle(deadline: ContinuousClock.Instant) async -> Bool {
        while runningCount > 0 {
            let now = ContinuousClock.now
            if now >= deadline { return false }
            await finished.wait(timeout: deadline - now)
        }
        return true
    }

    /// Gives back every task still running (RELEASE, which does not count the attempt) and cancels its callback.
    /// - Returns: How many tasks were released.
    func releaseAll() async -> Int {
        let toRelease = state.withLock { state -> [(LeaseRef, Connection, Task<Void, Never>?)] in
            var list: [(LeaseRef, Connection, Task<Void, Never>?)] = []
            for (token, running) in state.running where !running.abandoned {
                state.running[token]?.abandoned = true
                // A given-back lease must not be touched again.
                leaseKeeper.unregister(token)
                // On a closed connection the daemon has already released the lease: only cancel the callback.
                if running.connection.isClosed {
                    running.task?.cancel()
                } else {
                    list.append((running.lease, running.connection, running.task))
                }
            }
            return list
        }
        await withTaskGroup(of: Void.self) { group in
            for (lease, connection, task) in toRelease {
                task?.cancel()
                group.addTask { [logger] in
                    do {
                        _ = try await connection.request(.release(lease))
                    } catch {
                        logger.warning(
                            "cannot release a task at shutdown (its lease will expire instead): \(error)",
                            metadata: ["taskshed.task.id": "\(lease.id)"])
                    }
                }
            }
        }
        return toRelease.count
    }
}

/// Timing of the delivery a callback runs, for the package's benchmarks (not public API).
package enum DeliveryTiming {
    /// When the delivery being run was read from the socket (`CLOCK_REALTIME` ns); bound around the callback of
    /// event-driven deliveries, `nil` for claimed ones. `taskshed-bench lag` subtracts it from the callback's
    /// start to show the library's own share of the lag.
    @TaskLocal package static var frameReadNanos: Int64?
}

extension Connection {
    /// The daemon's default lease length in microseconds (30 s if the handshake did not say).
    var defaultLeaseMicros: Int64 { helloOK?.defaultLeaseMicros ?? 30_000_000 }
}

extension Date {
    /// Microseconds since the epoch (saturating; for the client's own clock readings).
    var micros: Int64 {
        Int64(exactly: (timeIntervalSince1970 * 1_000_000).rounded()) ?? Int64.max
    }
}
