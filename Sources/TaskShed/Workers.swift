import Logging

/// A worker callback: receives the task being run (its `kwargs`, `attempt`, schedule…).
///
/// Return to acknowledge the task (a one-off task is then removed, a recurring one advances). Throw to report a
/// failure: the daemon retries with backoff up to the task's `maxAttempts`, then dead-letters it. The task's
/// `Task` is cancelled when the worker gives the task back (shutdown timeout) or loses its connection.
public typealias TaskCallback = @Sendable (ScheduledTask) async throws -> Void

/// A worker that the daemon pushes due tasks to as soon as they are due: the lowest latency (the original's
/// ``EventDrivenWorker``).
///
/// It subscribes for the names in its callback map with a concurrency limit; the daemon never leases it more
/// than `concurrency` tasks at once. Unlike the original's, it needs no notification from the scheduler: the
/// daemon's timer decides when a task is due, so the scheduler and the worker may be in different processes.
///
/// ```swift
/// let worker = try EventDrivenWorker(callbackMap: ["say_hello": { task in print("Hello!") }])
/// try await worker.start()
/// // …
/// await worker.shutdown()
/// ```
///
/// For each task: the callback runs; success acknowledges it; a thrown error reports a failure with the
/// error's description (retried, then dead-lettered); a name missing from the map logs
/// ``IncorrectCallbackNameError`` and fails the task without retry; while a callback runs, the lease is extended
/// each time a third of it has passed. Errors in callbacks never stop the worker. After the daemon restarts the
/// worker reconnects with backoff and subscribes again.
///
/// The daemon sends each task a little before it is due (`deliveryAhead`, 10 ms by default) and the worker
/// starts it from its own timer at the task's due time, never before: the daemon's wake-up, the socket and the
/// decoding are then done by the time the task is due. A task removed, paused, rescheduled or replaced before
/// its due time is revoked by the daemon and does not start. With a daemon older than protocol version 3, or
/// a `deliveryAhead` of zero, the daemon pushes each task when it is due.
///
/// To start a callback as soon as its task is due, the worker runs it, up to its first suspension, on the
/// thread that read the task from the socket; after that it continues on the global executor like any task.
/// A callback that blocks its thread without suspending delays the frames behind its task by at most 5 ms:
/// then the reading moves to another thread, and the callback keeps its own.
///
/// - Important: `Sendable`. Call `shutdown(timeout:)` before the process exits so that unfinished tasks go
///   back to the daemon at once instead of when their leases expire.
public final class EventDrivenWorker: Sendable {
    private let engine: WorkerEngine

    /// Creates a worker; nothing connects until `start()`.
    /// - Parameters:
    ///   - callbackMap: Callback names and their closures.
    ///   - socketPath: The daemon's socket; `nil` uses `TASKSHED_SOCKET`, else the default path.
    ///   - concurrency: Most tasks running at once (default 100).
    ///   - lease: How long a delivered task stays leased without a sign of life; `nil` uses the daemon's default.
    ///     The worker extends it automatically while a callback runs.
    ///   - deliveryAhead: How long before its due time the daemon may send a task (0 … 1 s; default 10 ms); the
    ///     worker starts it at its due time. Zero: the daemon pushes each task when it is due.
    ///   - clientName: Sent to the daemon for its logs.
    ///   - logger: Callback errors (with `taskshed.task.id` and `taskshed.callback` metadata) and connection
    ///     events.
    /// - Throws: ``TaskShedError`` `.invalidUsage` for a concurrency below 1, a non-positive lease, a
    ///   `deliveryAhead` outside 0 … 1 s or an empty callback name.
    public init(
        callbackMap: [String: TaskCallback],
        socketPath: String? = nil,
        concurrency: Int = 100,
        lease: Duration? = nil,
        deliveryAhead: Duration = .milliseconds(10),
        clientName: String = "TaskShed Swift EventDrivenWorker",
        logger: Logger = Logger(label: "taskshed.worker")
    ) throws {
        engine = try WorkerEngine(
            mode: .eventDriven(aheadMicros: deliveryAhead.saturatingMicros), callbacks: callbackMap, socketPath: socketPath, concurrency: concurrency, lease: lease,
            clientName: clientName, logger: logger)
    }

    /// The socket path this worker connects to.
    public var socketPath: String { engine.socketPath }

    /// The callback names this worker runs, sorted.
    public var callbackNames: [String] { engine.runner.callbackNames }

    /// Number of callbacks running now.
    public var runningCount: Int { engine.runner.runningCount }

    /// Adds a callback while the worker runs (the original's `add_callback`); the worker subscribes again to
    /// include it.
    /// - Parameters:
    ///   - name: The callback name.
    ///   - callback: The closure.
    /// - Throws: ``TaskShedError`` `.duplicateCallback` when the name is already in the map; `.invalidUsage` for
    ///   an empty name.
    public func addCallback(_ name: String, _ callback: @escaping TaskCallback) async throws {
        try await engine.addCallback(name, callback)
    }

    /// Connects, subscribes, and starts running tasks in the background; returns once subscribed.
    /// - Throws: ``TaskShedError`` `.connectionFailed` when the daemon cannot be reached (later connection losses
    ///   are handled by reconnecting), the daemon's handshake or subscribe error, or `.invalidUsage` when the
    ///   worker was already started.
    public func start() async throws {
        try await engine.start()
    }

    /// Starts the worker and waits until `shutdown(timeout:)` has completed (for a program whose only job is
    /// to be a worker).
    /// - Throws: As `start()`.
    public func run() async throws {
        try await engine.start()
        await engine.waitUntilStopped()
    }

    /// Stops taking tasks (UNSUBSCRIBE), waits for running callbacks up to `timeout`, then gives the unfinished
    /// tasks back to the daemon (RELEASE, not counted as an attempt) so another worker runs them, and
    /// disconnects. Idempotent; a second caller waits for the first.
    /// - Parameter timeout: How long to wait for running callbacks (default 30 s, as in the original).
    /// - Returns: How many tasks were given back unfinished.
    @discardableResult
    public func shutdown(timeout: Duration = .seconds(30)) async -> Int {
        await engine.shutdown(timeout: timeout)
    }
}

/// A worker that claims due tasks at a fixed interval (the original's ``PollingWorker``): simpler to run fully
/// apart from the scheduler, with latency up to one polling interval.
///
/// Every `pollingInterval` it claims up to its free capacity (`concurrency` minus what runs); when a claim
/// fills every free slot it claims again as soon as a slot frees, so a backlog drains at full speed. Claims are
/// atomic: any number of polling workers never run the same delivery twice.
///
/// ```swift
/// let worker = try PollingWorker(callbackMap: ["say_hello": { _ in print("Hello!") }],
///                                pollingInterval: .seconds(1))
/// try await worker.run()
/// ```
///
/// Task handling, lease extension, reconnection and shutdown are as for ``EventDrivenWorker``.
///
/// - Important: `Sendable`. Call `shutdown(timeout:)` before the process exits.
public final class PollingWorker: Sendable {
    private let engine: WorkerEngine

    /// The default polling interval, 3 seconds, as in the original.
    public static let defaultPollingInterval = Duration.seconds(3)

    /// Creates a worker; nothing connects until `start()`.
    /// - Parameters:
    ///   - callbackMap: Callback names and their closures.
    ///   - pollingInterval: How often to look for due tasks (default 3 s).
    ///   - socketPath: The daemon's socket; `nil` uses `TASKSHED_SOCKET`, else the default path.
    ///   - concurrency: Most tasks running at once (default 100).
    ///   - lease: How long a claimed task stays leased without a sign of life; `nil` uses the daemon's default.
    ///   - clientName: Sent to the daemon for its logs.
    ///   - logger: Callback errors (with `taskshed.task.id` and `taskshed.callback` metadata) and connection
    ///     events.
    /// - Throws: ``TaskShedError`` `.invalidUsage` for a non-positive interval or lease, a concurrency below 1, or
    ///   an empty callback name.
    public init(
        callbackMap: [String: TaskCallback],
        pollingInterval: Duration = PollingWorker.defaultPollingInterval,
        socketPath: String? = nil,
        concurrency: Int = 100,
        lease: Duration? = nil,
        clientName: String = "TaskShed Swift PollingWorker",
        logger: Logger = Logger(label: "taskshed.worker")
    ) throws {
        engine = try WorkerEngine(
            mode: .polling(interval: pollingInterval), callbacks: callbackMap, socketPath: socketPath,
            concurrency: concurrency, lease: lease, clientName: clientName, logger: logger)
    }

    /// The socket path this worker connects to.
    public var socketPath: String { engine.socketPath }

    /// The callback names this worker runs, sorted.
    public var callbackNames: [String] { engine.runner.callbackNames }

    /// Number of callbacks running now.
    public var runningCount: Int { engine.runner.runningCount }

    /// Adds a callback while the worker runs; the next claim includes it.
    /// - Parameters:
    ///   - name: The callback name.
    ///   - callback: The closure.
    /// - Throws: ``TaskShedError`` `.duplicateCallback` when the name is already in the map; `.invalidUsage` for
    ///   an empty name.
    public func addCallback(_ name: String, _ callback: @escaping TaskCallback) async throws {
        try await engine.addCallback(name, callback)
    }

    /// Connects and starts polling in the background (the first claim happens at once, so tasks that fell due
    /// while no worker ran are picked up immediately).
    /// - Throws: ``TaskShedError`` `.connectionFailed` when the daemon cannot be reached, the daemon's handshake
    ///   error, or `.invalidUsage` when the worker was already started.
    public func start() async throws {
        try await engine.start()
    }

    /// Starts the worker and waits until `shutdown(timeout:)` has completed.
    /// - Throws: As `start()`.
    public func run() async throws {
        try await engine.start()
        await engine.waitUntilStopped()
    }

    /// Stops polling, waits for running callbacks up to `timeout`, then gives the unfinished tasks back to the
    /// daemon (RELEASE) and disconnects. Idempotent.
    /// - Parameter timeout: How long to wait for running callbacks (default 30 s, as in the original).
    /// - Returns: How many tasks were given back unfinished.
    @discardableResult
    public func shutdown(timeout: Duration = .seconds(30)) async -> Int {
        await engine.shutdown(timeout: timeout)
    }
}
