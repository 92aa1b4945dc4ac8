import Foundation
import Glibc
import Logging
import TaskShedProtocol

/// Creates and changes tasks in taskshedd: the Swift rendering of the original's `AsyncScheduler`.
///
/// All state lives in the daemon; a scheduler is one Unix-socket connection, opened on the first call (or by
/// `start()`) and opened again on the next call after the daemon restarted. Calls may run concurrently from many
/// tasks: they are pipelined over the one connection.
///
/// ```swift
/// let scheduler = Scheduler()
/// try await scheduler.addTask(callback: "say_hello", runAt: .now + 3, kwargs: ["name": "Ada"])
/// ```
///
/// - Important: `Sendable`: share one scheduler across tasks. Call `shutdown()` when done (it is also closed
///   when the last reference goes away). A call made while the daemon is down fails at once with
///   `.connectionFailed` ("cannot connect to <path>: is taskshedd running?"); a call in flight when the
///   connection drops fails with `.connectionClosed` (the daemon may or may not have applied it).
public final class Scheduler: Sendable {
    /// The socket path this scheduler connects to.
    public var socketPath: String { connection.socketPath }

    let connection: LazyConnection
    private let logger: Logger

    /// Creates a scheduler; nothing is connected until the first call or `start()`.
    /// - Parameters:
    ///   - socketPath: The daemon's socket; `nil` uses `TASKSHED_SOCKET`, else the default path
    ///     (`$XDG_RUNTIME_DIR/taskshed/taskshedd.sock` or `/tmp/taskshed-<uid>/taskshedd.sock`).
    ///   - clientName: Sent to the daemon for its logs.
    ///   - logger: Receives connection events at debug level.
    public init(
        socketPath: String? = nil, clientName: String = "TaskShed Swift scheduler",
        logger: Logger = Logger(label: "taskshed.scheduler")
    ) {
        let path = socketPath ?? Scheduler.defaultSocketPath()
        self.connection = LazyConnection(socketPath: path, clientName: clientName, logger: logger)
        self.logger = logger
    }

    deinit {
        connection.shutdown()
    }

    /// The socket path used when none is given: `TASKSHED_SOCKET`, else the daemon's default.
    /// - Returns: The path.
    public static func defaultSocketPath() -> String {
        DefaultSocketPath.resolve(environment: ProcessInfo.processInfo.environment, uid: getuid())
    }

    /// Connects now (and performs the handshake) instead of on the first call.
    /// - Throws: ``TaskShedError`` `.connectionFailed`, or the daemon's handshake error.
    public func start() async throws {
        _ = try await connection.get()
    }

    /// Closes the connection. Calls in flight fail with `.connectionClosed`; later calls fail with `.shutDown`.
    public func shutdown() {
        connection.shutdown()
    }

    // MARK: Adding

    /// Adds (or replaces) one task, with the original's defaults.
    ///
    /// - Parameters:
    ///   - callback: The callback name workers look up.
    ///   - runAt: The first execution time (default: now).
    ///   - kwargs: Keyword arguments, a JSON object (`["to": "ada@example.com"]`, or
    ///     `try Kwargs(encoding: value)`).
    ///   - schedule: `.once` (default) or `.every(interval)`.
    ///   - id: The task id (default: ``ScheduledTask/randomID(runAt:)``, a UUIDv7 of `runAt` in hex).
    ///   - group: A group for bulk operations.
    ///   - paused: Create it paused.
    ///   - coalesce: Recurring only: catch up with one run (default) or one run per missed interval.
    ///   - maxAttempts: Deliveries before a failing one-off task is dead-lettered (`nil`: the daemon's default).
    ///   - replaceExisting: Replace a task with the same id (default), or leave it unchanged.
    /// - Returns: The id and whether the task was inserted, replaced or kept.
    /// - Throws: ``TaskShedError``: `.invalidArgument` with the field at fault ("tasks[0].callback",
    ///   "tasks[0].schedule", "tasks[0].kwargs"…) when the daemon rejects a value; `.invalidUsage` for values that
    ///   cannot be sent; connection errors; `CancellationError`.
    @discardableResult
    public func addTask(
        callback: String,
        runAt: Date = Date(),
        kwargs: Kwargs = Kwargs(),
        schedule: TaskSchedule = .once,
        id: String? = nil,
        group: String? = nil,
        paused: Bool = false,
        coalesce: Bool = true,
        maxAttempts: Int? = nil,
        replaceExisting: Bool = true
    ) async throws -> TaskAddResult {
        let task = ScheduledTask(
            callback: callback, runAt: runAt, kwargs: kwargs, schedule: schedule, id: id, group: group, paused: paused,
            coalesce: coalesce, maxAttempts: maxAttempts)
        let results = try await addTasks([task], replaceExisting: replaceExisting)
        guard let result = results.first, results.count == 1 else {
            throw TaskShedError(.protocolViolation, message: "the daemon answered one added task with \(results.count) results")
        }
        return result
    }

    /// Adds many tasks in one request and one transaction: all are stored, or none (much faster than a loop of
    /// `addTask`).
    ///
    /// - Parameters:
    ///   - tasks: The tasks; ids must be unique within the batch; at most the daemon's batch limit (100,000 by
    ///     default).
    ///   - replaceExisting: Replace tasks whose id exists (default), or leave them unchanged (outcome `.kept`).
    /// - Returns: One result per task, in order.
    /// - Throws: ``TaskShedError``: `.invalidUsage` when the batch exceeds the daemon's limit (split it yourself
    ///   if atomicity does not matter); `.invalidArgument` naming the first bad field ("tasks[3].schedule");
    ///   connection errors; `CancellationError`.
    @discardableResult
    public func addTasks(_ tasks: [ScheduledTask], replaceExisting: Bool = true) async throws -> [TaskAddResult] {
        if tasks.isEmpty { return [] }
        var specs: [TaskSpec] = []
        specs.reserveCapacity(tasks.count)
        for (index, task) in tasks.enumerated() {
            specs.append(try task.spec(field: "tasks[\(index)]"))
        }
        let connection = try await connection.get()
        try checkBatch(tasks.count, field: "tasks", on: connection)
        let reply = try await connection.request(
            .addTasks(AddTasks(onConflict: replaceExisting ? .replace : .keep, tasks: specs)))
        guard case .added(let results) = reply else { throw unexpected(reply, to: "ADD_TASKS") }
        return results.map { TaskAddResult(id: $0.id, outcome: $0.outcome) }
    }

    // MARK: Fetching and changing

    /// Fetches tasks by ids or by group (exactly one of the two).
    /// - Parameters:
    ///   - ids: Task ids; unknown ids are skipped; an empty list does nothing (and sends nothing).
    ///   - group: A group name.
    /// - Returns: The tasks found: in the order of `ids` (each once), or a group's by run time, then id.
    /// - Throws: ``TaskShedError`` `.invalidUsage` when neither or both of `ids` and `group` are given (nothing is
    ///   sent); `.invalidArgument` for a group of more tasks than the daemon's batch limit (list it with a
    ///   group filter instead); daemon and connection errors; `CancellationError`.
    public func fetchTasks(ids: [String]? = nil, group: String? = nil) async throws -> [ScheduledTask] {
        let selector = try Scheduler.selector(ids: ids, group: group, operation: "fetchTasks")
        if ids?.isEmpty == true { return [] }
        let reply = try await request(.fetchTasks(selector), batch: ids?.count)
        guard case .tasks(let records) = reply else { throw unexpected(reply, to: "FETCH_TASKS") }
        return records.map(ScheduledTask.init(record:))
    }

    /// Pauses tasks by ids or by group (exactly one of the two): a paused task never runs until resumed.
    /// - Parameters:
    ///   - ids: Task ids; unknown ids are skipped; an empty list does nothing (and sends nothing).
    ///   - group: A group name.
    /// - Returns: How many tasks were paused (dead-lettered tasks are left alone and not counted).
    /// - Throws: As `fetchTasks(ids:group:)`.
    @discardableResult
    public func pauseTasks(ids: [String]? = nil, group: String? = nil) async throws -> Int {
        let selector = try Scheduler.selector(ids: ids, group: group, operation: "pauseTasks")
        if ids?.isEmpty == true { return 0 }
        return try affected(try await request(.pauseTasks(selector), batch: ids?.count), to: "PAUSE_TASKS")
    }

    /// Resumes paused tasks by ids or by group (exactly one of the two).
    /// - Parameters:
    ///   - ids: Task ids; unknown ids are skipped; an empty list does nothing (and sends nothing).
    ///   - group: A group name.
    /// - Returns: How many tasks were resumed (dead-lettered tasks are left alone and not counted).
    /// - Throws: As `fetchTasks(ids:group:)`.
    @discardableResult
    public func resumeTasks(ids: [String]? = nil, group: String? = nil) async throws -> Int {
        let selector = try Scheduler.selector(ids: ids, group: group, operation: "resumeTasks")
        if ids?.isEmpty == true { return 0 }
        return try affected(try await request(.resumeTasks(selector), batch: ids?.count), to: "RESUME_TASKS")
    }

    /// Removes tasks by ids or by group (exactly one of the two).
    /// - Parameters:
    ///   - ids: Task ids; unknown ids are skipped; an empty list does nothing (and sends nothing).
    ///   - group: A group name.
    /// - Returns: How many tasks were removed.
    /// - Throws: As `fetchTasks(ids:group:)`.
    @discardableResult
    public func removeTasks(ids: [String]? = nil, group: String? = nil) async throws -> Int {
        let selector = try Scheduler.selector(ids: ids, group: group, operation: "removeTasks")
        if ids?.isEmpty == true { return 0 }
        return try affected(try await request(.removeTasks(selector), batch: ids?.count), to: "REMOVE_TASKS")
    }

    /// Reschedules tasks, all or nothing.
    /// - Parameter updates: Each task's id and new next execution time.
    /// - Returns: How many tasks were rescheduled.
    /// - Throws: ``TaskShedError`` `.taskNotFound` naming the field of the first unknown id (nothing is changed;
    ///   the original's `TaskNotFoundError`); daemon and connection errors; `CancellationError`.
    @discardableResult
    public func updateExecutionTimes(_ updates: [(id: String, runAt: Date)]) async throws -> Int {
        if updates.isEmpty { return 0 }
        var wire: [RunTimeUpdate] = []
        wire.reserveCapacity(updates.count)
        for (index, update) in updates.enumerated() {
            wire.append(RunTimeUpdate(id: update.id, runAt: try update.runAt.micros(field: "updates[\(index)].run_at")))
        }
        return try affected(try await request(.updateRunTimes(wire), batch: updates.count), to: "UPDATE_RUN_TIMES")
    }

    // MARK: Listing

    /// Lists one page of tasks ordered by (`runAt`, `id`).
    /// - Parameters:
    ///   - filter: Which tasks (default: all).
    ///   - limit: Most tasks in the page (1 up to the daemon's batch limit).
    ///   - cursor: The previous page's `nextCursor`, or `nil` for the first page.
    /// - Returns: The page and the next page's cursor.
    /// - Throws: ``TaskShedError`` `.invalidUsage` for a limit below 1; `.invalidArgument` for a limit above the
    ///   daemon's maximum or a bad cursor; connection errors; `CancellationError`.
    public func listTasks(filter: TaskListFilter = TaskListFilter(), limit: Int = 1000, cursor: TaskListCursor? = nil)
        async throws -> TaskListPage
    {
        guard limit >= 1, let wireLimit = UInt32(exactly: limit) else {
            throw TaskShedError(.invalidUsage, field: "limit", message: "limit must be at least 1, got \(limit)")
        }
        let reply = try await connection.request(
            .listTasks(ListTasks(filter: try filter.wire(), limit: wireLimit, cursor: cursor?.bytes)))
        guard case .taskPage(let page) = reply else { throw unexpected(reply, to: "LIST_TASKS") }
        return TaskListPage(
            tasks: page.tasks.map(ScheduledTask.init(record:)), nextCursor: page.nextCursor.map(TaskListCursor.init(bytes:)))
    }

    /// Every task matching `filter`, fetched page by page as the sequence is iterated.
    /// - Parameters:
    ///   - filter: Which tasks (default: all).
    ///   - pageSize: Tasks per request.
    /// - Returns: An async sequence of tasks in (`runAt`, `id`) order; iterating throws what `listTasks` throws.
    public func allTasks(filter: TaskListFilter = TaskListFilter(), pageSize: Int = 1000) -> TaskListSequence {
        TaskListSequence(scheduler: self, filter: filter, pageSize: pageSize)
    }

    // MARK: Dead letters

    /// Lists one page of dead-lettered tasks (with their `lastError` and `attempt`).
    /// - Parameters:
    ///   - limit: Most tasks in the page.
    ///   - cursor: The previous page's `nextCursor`.
    /// - Returns: The page.
    /// - Throws: As `listTasks(filter:limit:cursor:)`.
    public func deadLetters(limit: Int = 1000, cursor: TaskListCursor? = nil) async throws -> TaskListPage {
        try await listTasks(filter: TaskListFilter(state: .dead), limit: limit, cursor: cursor)
    }

    /// Moves dead-lettered tasks back to scheduled: attempts reset, due now.
    /// - Parameter selection: Which dead-lettered tasks.
    /// - Returns: How many tasks were brought back.
    /// - Throws: Daemon and connection errors; `CancellationError`.
    @discardableResult
    public func retryDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        if selection == .ids([]) { return 0 }
        return try affected(try await request(.retryDead(selection.wire), batch: selection.batchCount), to: "RETRY_DEAD")
    }

    /// Deletes dead-lettered tasks.
    /// - Parameter selection: Which dead-lettered tasks.
    /// - Returns: How many tasks were deleted.
    /// - Throws: Daemon and connection errors; `CancellationError`.
    @discardableResult
    public func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        if selection == .ids([]) { return 0 }
        return try affected(try await request(.purgeDead(selection.wire), batch: selection.batchCount), to: "PURGE_DEAD")
    }

    // MARK: Daemon

    /// The daemon's and the store's state: task counts by state and callback, connections, lag.
    /// - Returns: The statistics.
    /// - Throws: Connection errors; `CancellationError`.
    public func stats() async throws -> DaemonStats {
        let reply = try await connection.request(.getStats)
        guard case .stats(let stats) = reply else { throw unexpected(reply, to: "GET_STATS") }
        return DaemonStats(stats)
    }

    /// The daemons serving the datastore: with PostgreSQL, every daemon sharing it (running, or silent for less
    /// than the heartbeat timeout), sorted by name; with the embedded store, the one daemon.
    /// - Returns: The daemons, each with its host, pid, last heartbeat and leased tasks.
    /// - Throws: `.unsupportedVersion` when the daemon speaks only protocol version 1 (it predates the
    ///   request); connection errors; `CancellationError`.
    public func daemons() async throws -> [DatastoreDaemon] {
        let connection = try await connection.get()
        let version = connection.helloOK?.version ?? 1
        guard version >= MessageType.getDaemons.sinceVersion else {
            throw TaskShedError(
                .unsupportedVersion,
                message: "the daemon speaks protocol version \(version); listing daemons needs version \(MessageType.getDaemons.sinceVersion) (a newer taskshedd)")
        }
        let reply = try await connection.request(.getDaemons)
        guard case .daemons(let daemons) = reply else { throw unexpected(reply, to: "GET_DAEMONS") }
        return daemons.map(DatastoreDaemon.init)
    }

    /// Checks that the daemon answers.
    /// - Returns: The daemon's clock, its next wake-up and the round-trip time.
    /// - Throws: Connection errors; `CancellationError`.
    public func ping() async throws -> PingReply {
        let connection = try await connection.get()
        let clock = ContinuousClock()
        let start = clock.now
        let reply = try await connection.request(.ping)
        let roundTrip = clock.now - start
        guard case .pong(let pong) = reply else { throw unexpected(reply, to: "PING") }
        return PingReply(
            serverTime: Date(micros: pong.serverTime), nextWakeup: pong.nextWakeup.map(Date.init(micros:)),
            roundTrip: roundTrip)
    }

    // MARK: Helpers

    static func selector(ids: [String]?, group: String?, operation: String) throws(TaskShedError) -> TaskSelector {
        switch (ids, group) {
        case (let ids?, nil): return .ids(ids)
        case (nil, let group?): return .group(group)
        case (nil, nil):
            throw TaskShedError(
                .invalidUsage, field: "ids",
                message: "\(operation) needs either ids or group; neither was given (use listTasks to go through every task)")
        case (.some, .some):
            throw TaskShedError(.invalidUsage, field: "ids", message: "\(operation) takes ids or group, not both")
        }
    }

    private func request(_ message: Message, batch: Int?) async throws -> Message {
        let connection = try await connection.get()
        if let batch { try checkBatch(batch, field: "ids", on: connection) }
        return try await connection.request(message)
    }

    private func checkBatch(_ count: Int, field: String, on connection: Connection) throws(TaskShedError) {
        let limit = connection.maxBatch
        guard count <= limit else {
            throw TaskShedError(
                .invalidUsage, field: field,
                message: "\(count) entries in one request, but the daemon accepts at most \(limit); split the call (each request is atomic on its own)")
        }
    }

    private func affected(_ reply: Message, to request: String) throws(TaskShedError) -> Int {
        guard case .affected(let count) = reply else { throw unexpected(reply, to: request) }
        return Int(clamping: count)
    }

    func unexpected(_ reply: Message, to request: String) -> TaskShedError {
        TaskShedError(.protocolViolation, message: "the daemon answered \(request) with \(reply.type)")
    }
}

extension DeadLetterSelection {
    var wire: TaskSelector {
        switch self {
        case .ids(let ids): return .ids(ids)
        case .group(let group): return .group(group)
        case .all: return .all
        }
    }

    var batchCount: Int? {
        if case .ids(let ids) = self { return ids.count }
        return nil
    }
}

/// Every task matching a filter, fetched from the daemon one page at a time (see
/// ``Scheduler/allTasks(filter:pageSize:)``).
public struct TaskListSequence: AsyncSequence, Sendable {
    /// A task.
    public typealias Element = ScheduledTask

    let scheduler: Scheduler
    let filter: TaskListFilter
    let pageSize: Int

    /// Creates an iterator that starts at the first page.
    /// - Returns: The iterator.
    public func makeAsyncIterator() -> Iterator {
        Iterator(scheduler: scheduler, filter: filter, pageSize: pageSize)
    }

    /// Fetches the next page when the current one is used up.
    public struct Iterator: AsyncIteratorProtocol {
        let scheduler: Scheduler
        let filter: TaskListFilter
        let pageSize: Int
        private var buffer: [ScheduledTask] = []
        private var index = 0
        private var cursor: TaskListCursor?
        private var exhausted = false

        init(scheduler: Scheduler, filter: TaskListFilter, pageSize: Int) {
            self.scheduler = scheduler
            self.filter = filter
            self.pageSize = pageSize
        }

        /// The next task, or `nil` after the last one.
        /// - Returns: The task.
        /// - Throws: What ``Scheduler/listTasks(filter:limit:cursor:)`` throws.
        public mutating func next() async throws -> ScheduledTask? {
            while index == buffer.count {
                if exhausted { return nil }
                let page = try await scheduler.listTasks(filter: filter, limit: pageSize, cursor: cursor)
                buffer = page.tasks
                index = 0
                cursor = page.nextCursor
                exhausted = page.nextCursor == nil
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}
