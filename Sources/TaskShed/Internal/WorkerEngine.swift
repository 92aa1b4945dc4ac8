import Foundation
import Logging
import Synchronization
import TaskShedProtocol

/// What both workers share: the connection life cycle (connect, serve, reconnect with backoff after the
/// daemon restarts), the task runner, and graceful shutdown. The two workers differ only in how they obtain
/// tasks (`Mode`).
final class WorkerEngine: Sendable {
    enum Mode: Sendable {
        /// SUBSCRIBE once per connection; the daemon pushes due tasks. With a lead (µs, > 0) and a daemon that
        /// speaks protocol version 3, SUBSCRIBE_AHEAD: the daemon sends each task up to that long before it is
        /// due and the connection starts it at its due time.
        case eventDriven(aheadMicros: Int64)
        /// CLAIM every interval, and again as soon as a slot frees after a full batch.
        case polling(interval: Duration)
    }

    private enum Phase {
        case idle
        case running
        case stopping
        case stopped
    }

    private struct State {
        var phase = Phase.idle
        var connection: Connection?
        var subscriptionID: UInt32?
        var supervisor: Task<Void, Never>?
    }

    let socketPath: String
    let concurrency: Int
    private let mode: Mode
    private let clientName: String
    private let logger: Logger
    let runner: TaskRunner
    private let state = Mutex(State())
    /// Wakes the polling loop and the reconnect backoff early (shutdown, new callback).
    private let wake = AsyncSignal()
    /// Signalled when shutdown has completed.
    private let stopped = AsyncSignal()
    /// Serializes SUBSCRIBE/UNSUBSCRIBE pairs (one subscription per connection).
    private let subscriptionChange = AsyncMutex()

    /// Backoff between reconnection attempts: doubles from `initialBackoff` up to `maxBackoff`.
    static let initialBackoff = Duration.milliseconds(100)
    static let maxBackoff = Duration.seconds(5)

    init(
        mode: Mode, callbacks: [String: TaskCallback], socketPath: String?, concurrency: Int, lease: Duration?,
        clientName: String, logger: Logger
    ) throws(TaskShedError) {
        guard concurrency >= 1, concurrency <= Int(UInt32.max) else {
            throw TaskShedError(.invalidUsage, field: "concurrency", message: "concurrency must be at least 1, got \(concurrency)")
        }
        if let lease, lease <= .zero {
            throw TaskShedError(.invalidUsage, field: "lease", message: "the lease must be positive, got \(lease)")
        }
        if case .eventDriven(let ahead) = mode, ahead < 0 || ahead > 1_000_000 {
            throw TaskShedError(
                .invalidUsage, field: "deliveryAhead", message: "the delivery lead must be between 0 and 1 s, got \(ahead) µs")
        }
        if case .polling(let interval) = mode, interval <= .zero {
            throw TaskShedError(
                .invalidUsage, field: "pollingInterval", message: "the polling interval must be positive, got \(interval)")
        }
        for name in callbacks.keys where name.isEmpty {
            throw TaskShedError(.invalidUsage, field: "callbackMap", message: "a callback name must not be empty")
        }
        self.mode = mode
        self.socketPath = socketPath ?? Scheduler.defaultSocketPath()
        self.concurrency = concurrency
        self.clientName = clientName
        self.logger = logger
        self.runner = TaskRunner(callbacks: callbacks, leaseMicros: lease?.saturatingMicros, logger: logger)
    }

    // MARK: Callbacks

    func addCallback(_ name: String, _ callback: @escaping TaskCallback) async throws {
        try runner.addCallback(name, callback)
        guard case .eventDriven = mode else {
            wake.signal()
            return
        }
        // The daemon pushes only the subscribed callbacks: subscribe again with the new list.
        let connection = state.withLock { state -> Connection? in
            guard case .running = state.phase else { return nil }
            return state.connection
        }
        guard let connection, !connection.isClosed else { return }
        do {
            try await resubscribe(on: connection)
        } catch {
            logger.warning("cannot subscribe to the new callback now; will on the next connection: \(error)")
            connection.close()
        }
    }

    // MARK: Life cycle

    /// Connects and starts taking tasks; afterwards reconnects by itself until `shutdown`.
    func start() async throws {
        let canStart = state.withLock { state -> Bool in
            guard case .idle = state.phase else { return false }
            state.phase = .running
            return true
        }
        guard canStart else {
            throw TaskShedError(.invalidUsage, message: "the worker was already started")
        }
        let connection: Connection
        do {
            connection = try await connectAndBegin()
        } catch {
            state.withLock { $0.phase = .stopped }
            stopped.signal()
            throw error
        }
        let supervisor = Task { [self] in await supervise(first: connection) }
        state.withLock { $0.supervisor = supervisor }
    }

    /// Waits until `shutdown` has completed.
    func waitUntilStopped() async {
        while true {
            let done = state.withLock { state -> Bool in
                if case .stopped = state.phase { return true }
                return false
            }
            if done { return }
            await stopped.wait(timeout: nil)
        }
    }

    /// Stops taking tasks, waits for running callbacks up to `timeout`, releases the rest, disconnects.
    /// - Returns: How many tasks were released unfinished.
    @discardableResult
    func shutdown(timeout: Duration) async -> Int {
        let (wasRunning, connection, subscriptionID, supervisor) = state.withLock { state in
            let wasRunning: Bool
            switch state.phase {
            case .running: wasRunning = true
            case .idle:
                state.phase = .stopped
                stopped.signal()
                wasRunning = false
            case .stopping, .stopped: wasRunning = false
            }
            if wasRunning { state.phase = .stopping }
            return (wasRunning, state.connection, state.subscriptionID, state.supervisor)
        }
        guard wasRunning else {
            await waitUntilStopped()
            return 0
        }
        wake.signal()
        if case .eventDriven = mode, let connection {
            await subscriptionChange.withLock {
                // Read again under the lock: a resubscription may have just finished.
                guard state.withLock({ $0.subscriptionID }) != nil || subscriptionID != nil else { return }
                do {
                    _ = try await connection.request(.unsubscribe)
                } catch {
                    logger.debug("UNSUBSCRIBE at shutdown failed: \(error)")
                }
            }
        }
        let deadline = ContinuousClock.now + timeout
        let idle = await runner.waitUntilIdle(deadline: deadline)
        var released = 0
        if !idle {
            released = await runner.releaseAll()
            logger.warning("shutdown timeout: released \(released) unfinished task(s) for another worker")
        }
        runner.stopLeaseKeeper()
        state.withLock { $0.connection }?.close()
        // Also ends a reconnection attempt that is waiting for a handshake.
        supervisor?.cancel()
        await supervisor?.value
        state.withLock { state in
            state.phase = .stopped
            state.connection = nil
        }
        stopped.signal()
        return released
    }

    private var isStopping: Bool {
        state.withLock { state in
            switch state.phase {
            case .stopping, .stopped: return true
            case .idle, .running: return false
            }
        }
    }

    // MARK: Connection life cycle

    private func connectAndBegin() async throws -> Connection {
        let connection = try await Connection.open(path: socketPath, clientName: clientName, logger: logger)
        let keep = state.withLock { state -> Bool in
            if case .running = state.phase {
                state.connection = connection
                state.subscriptionID = nil
                return true
            }
            return false
        }
        guard keep else {
            connection.close()
            throw TaskShedError(.shutDown, message: "the worker is shutting down")
        }
        if case .eventDriven = mode {
            do {
                try await resubscribe(on: connection)
            } catch {
                connection.close()
                throw error
            }
        }
        return connection
    }

    private func supervise(first: Connection) async {
        var connection: Connection? = first
        var backoff = WorkerEngine.initialBackoff
        while !isStopping {
            if let current = connection {
                let reason = await serve(current)
                // While stopping, shutdown itself waits for and releases the running tasks.
                if isStopping { break }
                runner.abandonAll(on: current)
                logger.warning("lost the connection to taskshedd; reconnecting: \(reason)")
                connection = nil
                backoff = WorkerEngine.initialBackoff
            }
            // Jitter spreads the reconnections of many workers after a daemon restart.
            let jitter = Double.random(in: 0.8...1.2)
            await wake.wait(timeout: backoff * jitter)
            if isStopping { break }
            do {
                connection = try await connectAndBegin()
                logger.info("reconnected to taskshedd at \(socketPath)")
            } catch let error as TaskShedError where error.code == .connectionFailed || error.code == .connectionClosed {
                logger.debug("reconnecting to \(socketPath) failed: \(error)")
                backoff = min(backoff * 2, WorkerEngine.maxBackoff)
            } catch {
                logger.error("reconnecting to \(socketPath) failed: \(error)")
                backoff = min(backoff * 2, WorkerEngine.maxBackoff)
            }
        }
    }

    /// Serves one connection until it closes; returns why it closed.
    private func serve(_ connection: Connection) async -> TaskShedError {
        switch mode {
        case .eventDriven:
            return await connection.waitUntilClosed()
        case .polling(let interval):
            // A closed connection ends the wait between polls at once.
            connection.onClose { [wake] _ in wake.signal() }
            return await poll(connection, interval: interval)
        }
    }

    // MARK: Event-driven

    private func resubscribe(on connection: Connection) async throws {
        try await subscriptionChange.withLock {
            try await replaceSubscription(on: connection)
        }
    }

    private func replaceSubscription(on connection: Connection) async throws {
        guard !isStopping else { return }
        let previous = state.withLock { state -> UInt32? in
            // A subscription id belongs to the connection it was made on.
            state.connection === connection ? state.subscriptionID : nil
        }
        if let previous {
            _ = try await connection.request(.unsubscribe)
            connection.removePushHandler(previous)
        }
        let names = runner.callbackNames
        guard !names.isEmpty else {
            state.withLock { $0.subscriptionID = nil }
            return
        }
        let runner = self.runner
        let logger = self.logger
        let subscribe = Subscribe(callbacks: names, concurrency: UInt32(concurrency), leaseMicros: runner.leaseMicros)
        var request = Message.subscribe(subscribe)
        if case .eventDriven(let ahead) = mode, ahead > 0, (connection.helloOK?.version ?? 1) >= 3 {
            request = .subscribeAhead(subscribe, aheadMicros: ahead)
        }
        let (requestID, reply) = try await connection.request(
            request,
            pushHandler: { [weak connection] message, turn in
                guard let connection else { return }
                switch message {
                case .delivery(let record):
                    runner.start(record, on: connection, turn: turn)
                case .error(let error):
                    logger.error("the daemon reported an error on the subscription: \(TaskShedError(error))")
                default:
                    logger.warning("unexpected \(message.type) pushed on the subscription")
                }
            })
        guard case .subscribed(let subscribed) = reply else {
            throw TaskShedError(.protocolViolation, message: "the daemon answered SUBSCRIBE with \(reply.type)")
        }
        state.withLock { $0.subscriptionID = requestID }
        logger.debug(
            "subscribed",
            metadata: ["taskshed.callbacks": "\(names.joined(separator: ","))", "taskshed.lease.us": "\(subscribed.leaseMicros)"])
    }

    // MARK: Polling

    private func poll(_ connection: Connection, interval: Duration) async -> TaskShedError {
        while !isStopping {
            if connection.isClosed { break }
            let free = concurrency - runner.runningCount
            let names = runner.callbackNames
            var full = free <= 0
            if free > 0, !names.isEmpty {
                let max = UInt32(min(free, connection.maxBatch))
                do {
                    let reply = try await connection.request(
                        .claim(Claim(callbacks: names, max: max, leaseMicros: runner.leaseMicros)))
                    guard case .tasks(let records) = reply else {
                        logger.error("the daemon answered CLAIM with \(reply.type)")
                        connection.close()
                        break
                    }
                    // Even when shutdown began meanwhile: shutdown waits for these, then releases what is left.
                    for record in records { runner.start(record, on: connection) }
                    full = records.count == Int(max)
                } catch let error as TaskShedError where error.code == .connectionClosed || error.code.serverCode?.closesConnection == true {
                    break
                } catch {
                    logger.error("CLAIM failed: \(error)")
                }
            }
            if isStopping { break }
            if full {
                // More may be due: claim again as soon as a slot frees (or after the interval at the latest).
                await waitForSlotOrWake(timeout: interval)
            } else {
                await wake.wait(timeout: interval)
            }
        }
        if isStopping {
            return TaskShedError(.shutDown, message: "the worker is shutting down")
        }
        return await connection.waitUntilClosed()
    }

    private func waitForSlotOrWake(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [runner] in await runner.finished.wait(timeout: timeout) }
            group.addTask { [wake] in await wake.wait(timeout: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
