import TaskShedProtocol

/// The write operations of a task store, available inside one write transaction (`TaskStore.write`).
///
/// Every time is microseconds since the Unix epoch and is passed in (`now`): a store never reads the clock.
/// Each operation either happens entirely or not at all. Errors are `StoreError`s whose codes the daemon sends
/// to clients unchanged.
public protocol TaskStoreWriteBatch {
    /// Adds tasks. Validation (every task is checked before anything is stored): callback, id and group are
    /// non-empty and at most `ProtocolLimits.maxNameBytes` bytes; an interval is > 0; kwargs are a JSON object
    /// (empty bytes mean `{}`) within the store's kwargs limit; ids are unique in the batch. A `nil` id gets a
    /// new 15-character id (URL-safe base64 alphabet, time-ordered like a UUIDv7; never an existing id), a
    /// `nil` `runAt` is `now`, `maxAttempts` 0 is 3. Ids, callbacks and groups are compared as bytes (two
    /// canonically equivalent spellings are two names). Replacing keeps `createdAt`, drops any lease (state
    /// scheduled, attempt 0) and clears the failure history.
    /// - Returns: One result per spec, in order.
    /// - Throws: `invalidArgument` naming the field (`tasks[i].callback`, ...); `taskExists` naming `tasks[i].id`
    ///   under `ConflictPolicy.fail` (nothing of the batch is stored).
    mutating func add(_ specs: [TaskSpec], onConflict: ConflictPolicy, now: Int64) throws(StoreError) -> [AddResult]

    /// Pauses the selected tasks that are not dead (a paused task is never claimed; a dead one is left alone,
    /// so that RETRY_DEAD makes it due rather than paused). `pausedAt` is set to `now` unless the task was
    /// already paused, in which case it is kept.
    /// - Returns: How many selected tasks exist and are not dead (unknown ids are skipped).
    mutating func pause(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int

    /// Resumes the selected tasks that are not dead and clears `pausedAt`.
    /// - Returns: How many selected tasks exist and are not dead.
    mutating func resume(_ selector: TaskSelector) throws(StoreError) -> Int

    /// Removes the selected tasks (`.all`: every task). Removal keeps working when the store is full.
    /// - Returns: How many tasks were removed.
    mutating func remove(_ selector: TaskSelector) throws(StoreError) -> Int

    /// Sets new `runAt` times, all or nothing.
    /// - Throws: `taskNotFound` naming the first unknown id (field `updates[i].id`); nothing is changed.
    mutating func updateRunTimes(_ updates: [RunTimeUpdate]) throws(StoreError)

    /// Atomically leases up to `max` unpaused, scheduled tasks of `callbacks` that are due by `dueBy`
    /// (`runAt <= dueBy`), earliest first across the callbacks. Each becomes `leased` to `holder` until
    /// `leaseDeadline`, with `attempt + 1` and `lastRunAt = max(runAt, now)`: a caller that claims ahead
    /// (`dueBy` after `now`) delivers such a task at its due time. No task is ever returned by two claims.
    /// - Returns: The claimed records, in the leased state.
    mutating func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, dueBy: Int64,
                        now: Int64) throws(StoreError) -> [TaskRecord]

    /// Acknowledges a successful run. A one-off task is removed; a recurring task moves to its next run
    /// (computed now; see LAYOUT.md) with attempt 0, and stays paused if it was paused meanwhile.
    /// - Returns: `nil` when the task was removed, else the rescheduled record.
    /// - Throws: `taskNotFound`; `leaseLost` when the task is not leased to `holder` with this `attempt`.
    mutating func ack(id: String, attempt: UInt32, holder: UInt64, now: Int64) throws(StoreError) -> TaskRecord?

    /// Several `ack`s (a group commit's), each with the result `ack` would give it, in order. A requirement, not
    /// only an extension method, so that generic callers (the server's store jobs) reach a store's own version:
    /// the default applies them one by one; `PostgresWriteBatch` deletes them in one statement.
    mutating func ack(_ leases: [LeaseAck], now: Int64) -> [Result<TaskRecord?, StoreError>]

    /// Several independent `add` requests (a group commit's), each with the result `add` would give it, in
    /// order. A requirement for the same reason as `ack(_:now:)`: `PostgresWriteBatch` merges them.
    mutating func add(requests: [AddRequest], now: Int64) -> [Result<[AddResult], StoreError>]

    /// Records a failed run. A one-off task with `retry` and `attempt < maxAttempts` is scheduled again after
    /// an exponential backoff with jitter; otherwise it is dead-lettered. A recurring task records the failure
    /// and moves to its next run. `error` is truncated to `ProtocolLimits.maxErrorBytes` on a UTF-8 boundary.
    /// - Returns: The record after the change.
    /// - Throws: `taskNotFound`; `leaseLost`.
    mutating func fail(id: String, attempt: UInt32, holder: UInt64, error: String, retry: Bool, now: Int64)
        throws(StoreError) -> TaskRecord

    /// Moves a lease's deadline.
    /// - Returns: The new deadline.
    /// - Throws: `taskNotFound`; `leaseLost`.
    mutating func touch(id: String, attempt: UInt32, holder: UInt64, leaseDeadline: Int64) throws(StoreError) -> Int64

    /// Gives a lease back without running the task: it is due again at its `runAt`, and the delivery does not
    /// count as an attempt (`attempt` and `lastRunAt` are back to what they were before the claim).
    /// - Parameter now: When a worker gave the delivery back (a RELEASE), recorded as a `released` run in
    ///   `endedRuns`; `nil` for a delivery that never reached a worker (the daemon gives back what it claimed
    ///   ahead and did not push), which leaves no trace.
    /// - Returns: The record after the change.
    /// - Throws: `taskNotFound`; `leaseLost`.
    mutating func release(id: String, attempt: UInt32, holder: UInt64, now: Int64?) throws(StoreError) -> TaskRecord

    /// Ends every lease of `holder` (its worker is gone). Each counts as a failed attempt with `reason` as the
    /// error: the task is due again at its `runAt`, or, out of attempts, dead-lettered (one-off) or moved to
    /// its next run (recurring). Costs O(the holder's leases), not O(all leases), in `LMDBTaskStore`.
    /// - Returns: The changed records, by lease deadline then id.
    mutating func releaseHolder(_ holder: UInt64, reason: String, now: Int64) throws(StoreError) -> [TaskRecord]

    /// Ends every lease whose deadline is `<= now`, like `releaseHolder` with the reason "lease expired",
    /// except those that `spare` keeps: the daemon spares a lease that a request it has received but not yet
    /// applied names (a TOUCH that came in time must find its lease). Costs O(the expired leases), not O(all
    /// leases), in `LMDBTaskStore`.
    /// - Parameter spare: Called with the id and holder of each expired lease; `true` keeps it.
    /// - Returns: The changed records, by lease deadline then id.
    mutating func expireLeases(now: Int64, sparing spare: (_ id: String, _ holder: UInt64) -> Bool)
        throws(StoreError) -> [TaskRecord]

    /// Puts every leased task back in the schedule without counting the attempt (daemon start-up: the
    /// previous run's leases are void). `LMDBTaskStore` keeps leases in memory, so a store object just opened
    /// has none; a store whose leases outlive the process (a shared one) releases them here.
    /// - Returns: How many leases were released.
    mutating func releaseAllLeases() throws(StoreError) -> Int

    /// Puts the selected dead-lettered tasks back in the schedule, due at `now`, with attempt 0 (`lastError` is
    /// kept for reference).
    /// - Returns: How many dead tasks were retried.
    mutating func retryDead(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int

    /// Removes the selected dead-lettered tasks.
    /// - Returns: How many were removed.
    mutating func purgeDead(_ selector: TaskSelector) throws(StoreError) -> Int

    /// The deliveries that this batch's operations ended so far, in order: each ACK (`succeeded`), FAIL
    /// (`failed`), RELEASE (`released`), lease ended by `releaseHolder` (`workerDisconnected`, or the reason's
    /// outcome) or `expireLeases` (`leaseExpired`), and each calendar occurrence a claim skipped (`skipped`).
    /// `releaseAllLeases` (start-up) records nothing: those deliveries were voided, not ended.
    var endedRuns: [EndedRun] { get }

    /// Appends `runs` to the store's run history in this transaction (numbering them with new `seq`s) and
    /// drops what the store's `HistoryLimits` no longer keep, oldest first. Does nothing when the limits record
    /// no history. A store that is full still records (the reserve covers it, as it covers the acks).
    mutating func recordRuns(_ runs: [RunEntry], now: Int64) throws(StoreError)

    /// Reads tasks inside the write transaction (sees the batch's earlier changes), as `TaskStore.fetch`.
    /// - Throws: `invalidArgument` naming `selector.kind` for `.all`.
    func fetch(_ selector: TaskSelector) throws(StoreError) -> [TaskRecord]
}

/// A durable task store: the daemon's datastore. `LMDBTaskStore` implements it; a shared store (PostgreSQL)
/// could implement it later.
///
/// - Important: The API is synchronous. The daemon calls it from its single loop thread.
public protocol TaskStore: AnyObject {
    /// The write-transaction view handed to `write`.
    associatedtype WriteBatch: TaskStoreWriteBatch

    /// Runs `body` in one durable write transaction and commits it (group commit).
    ///
    /// With `isolatingRequests`, an operation that throws a request error (invalid argument, unknown task,
    /// lost lease, task exists, store full) has changed nothing and the body may catch the error and continue
    /// with other requests, so many independent requests share one commit while each gets its own result. A
    /// storage failure part-way through an operation (an I/O error, a corrupt record) poisons the batch: the
    /// whole transaction is aborted and `write` throws that error. Without `isolatingRequests`, any operation
    /// that throws poisons the batch.
    /// - Important: `body` may run more than once (the store reruns the whole batch after growing a full
    ///   map), so it must only compute its result and have no other effects. Do not call the store from
    ///   inside `body`; use the batch.
    /// - Returns: What `body` returned on the run that committed.
    /// - Throws: What `body` throws (the transaction is aborted); `storeFull`; `internalError`.
    func write<R>(isolatingRequests: Bool, _ body: (inout WriteBatch) throws(StoreError) -> R) throws(StoreError) -> R

    /// Tasks by ids (in the given order, each once, unknown ids skipped) or by group (by `runAt`, then id).
    /// - Throws: `invalidArgument` naming `selector.kind` for `.all` (use `list`).
    func fetch(_ selector: TaskSelector) throws(StoreError) -> [TaskRecord]

    /// One page of tasks matching `filter`, ordered by (`runAt`, id). Pass the previous page's `nextCursor` to
    /// continue.
    /// - Throws: `invalidArgument` for `limit < 1` or a cursor that no page returned.
    func list(filter: TaskFilter, limit: Int, cursor: [UInt8]?, now: Int64) throws(StoreError) -> TaskPage

    /// Run history, newest first (see `HistoryQuery`). Entries older than the limits' age are not returned,
    /// even before they are dropped.
    /// - Throws: `invalidArgument` naming `limit` for a limit of 0.
    func history(_ query: HistoryQuery, now: Int64) throws(StoreError) -> HistoryPage

    /// The earliest `runAt` of an unpaused scheduled task (the daemon's next wake-up), if any.
    func earliestRunAt() throws(StoreError) -> Int64?

    /// The earliest `runAt` of an unpaused scheduled task of `callback`, if any.
    func earliestRunAt(callback: String) throws(StoreError) -> Int64?

    /// The earliest lease deadline, if any task is leased.
    func earliestLeaseDeadline() throws(StoreError) -> Int64?

    /// Counts by state and callback, earliest run time and sizes.
    func stats(now: Int64) throws(StoreError) -> StoreStats

    /// Releases the store (files, locks, connections). Later calls fail with `internalError`.
    func close()
}

/// One lease to acknowledge in `TaskStoreWriteBatch.ack(_:now:)`.
public struct LeaseAck: Sendable, Hashable {
    /// The task.
    public var id: String
    /// The delivery's attempt.
    public var attempt: UInt32
    /// The lease holder.
    public var holder: UInt64

    /// Creates a reference.
    public init(id: String, attempt: UInt32, holder: UInt64) {
        self.id = id
        self.attempt = attempt
        self.holder = holder
    }
}

/// One request of `TaskStoreWriteBatch.add(requests:now:)`.
public struct AddRequest: Sendable {
    /// The tasks.
    public var specs: [TaskSpec]
    /// What to do with existing ids.
    public var onConflict: ConflictPolicy

    /// Creates a request.
    public init(specs: [TaskSpec], onConflict: ConflictPolicy) {
        self.specs = specs
        self.onConflict = onConflict
    }
}

extension TaskStoreWriteBatch {
    /// Several `ack`s, each with the result `ack` would give it, in order, as if applied one after another (a
    /// group commit's acks). The default applies them one by one; a store whose every operation is a round
    /// trip (`PostgresWriteBatch`) does them in one statement.
    public mutating func ack(_ leases: [LeaseAck], now: Int64) -> [Result<TaskRecord?, StoreError>] {
        leases.map { lease in
            Result { () throws(StoreError) in try ack(id: lease.id, attempt: lease.attempt, holder: lease.holder, now: now) }
        }
    }

    /// Several independent `add` requests (a group commit's adds), each with the result `add` would give it,
    /// in order, as if applied one after another. The default applies them one by one; a store may merge them.
    public mutating func add(requests: [AddRequest], now: Int64) -> [Result<[AddResult], StoreError>] {
        requests.map { request in
            Result { () throws(StoreError) in try add(request.specs, onConflict: request.onConflict, now: now) }
        }
    }

    /// `claim` of the tasks due by `now` (`dueBy: now`): `lastRunAt` is `now`.
    /// - Returns: The claimed records, in the leased state.
    /// - Throws: As the requirement.
    public mutating func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, now: Int64)
        throws(StoreError) -> [TaskRecord]
    {
        try claim(callbacks: callbacks, max: max, holder: holder, leaseDeadline: leaseDeadline, dueBy: now, now: now)
    }

    /// `release` of a delivery that never reached a worker (`now: nil`): nothing is recorded.
    /// - Returns: The record after the change.
    /// - Throws: As the requirement.
    public mutating func release(id: String, attempt: UInt32, holder: UInt64) throws(StoreError) -> TaskRecord {
        try release(id: id, attempt: attempt, holder: holder, now: nil)
    }

    /// `expireLeases` sparing none: every lease whose deadline is `<= now` ends.
    /// - Returns: The changed records, by lease deadline then id.
    /// - Throws: As the requirement.
    public mutating func expireLeases(now: Int64) throws(StoreError) -> [TaskRecord] {
        try expireLeases(now: now, sparing: { _, _ in false })
    }
}

extension TaskStore {
    /// Group commit with per-request isolation: `write(isolatingRequests: true, body)`.
    public func write<R>(_ body: (inout WriteBatch) throws(StoreError) -> R) throws(StoreError) -> R {
        try write(isolatingRequests: true, body)
    }

    /// One `add` in its own durable transaction. See `TaskStoreWriteBatch.add`.
    public func add(_ specs: [TaskSpec], onConflict: ConflictPolicy = .replace, now: Int64) throws(StoreError)
        -> [AddResult]
    {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.add(specs, onConflict: onConflict, now: now)
        }
    }

    /// One `pause` in its own durable transaction. See `TaskStoreWriteBatch.pause`.
    public func pause(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.pause(selector, now: now) }
    }

    /// One `resume` in its own durable transaction. See `TaskStoreWriteBatch.resume`.
    public func resume(_ selector: TaskSelector) throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.resume(selector) }
    }

    /// One `remove` in its own durable transaction. See `TaskStoreWriteBatch.remove`.
    public func remove(_ selector: TaskSelector) throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.remove(selector) }
    }

    /// One `updateRunTimes` in its own durable transaction. See `TaskStoreWriteBatch.updateRunTimes`.
    public func updateRunTimes(_ updates: [RunTimeUpdate]) throws(StoreError) {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.updateRunTimes(updates) }
    }

    /// One `claim` of the tasks due by `now`, in its own durable transaction. See `TaskStoreWriteBatch.claim`.
    public func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, now: Int64)
        throws(StoreError) -> [TaskRecord]
    {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.claim(callbacks: callbacks, max: max, holder: holder, leaseDeadline: leaseDeadline, now: now)
        }
    }

    /// One `ack` in its own durable transaction. See `TaskStoreWriteBatch.ack`.
    @discardableResult
    public func ack(id: String, attempt: UInt32, holder: UInt64, now: Int64) throws(StoreError) -> TaskRecord? {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.ack(id: id, attempt: attempt, holder: holder, now: now)
        }
    }

    /// One `fail` in its own durable transaction. See `TaskStoreWriteBatch.fail`.
    @discardableResult
    public func fail(id: String, attempt: UInt32, holder: UInt64, error: String, retry: Bool, now: Int64)
        throws(StoreError) -> TaskRecord
    {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.fail(id: id, attempt: attempt, holder: holder, error: error, retry: retry, now: now)
        }
    }

    /// One `touch` in its own durable transaction. See `TaskStoreWriteBatch.touch`.
    @discardableResult
    public func touch(id: String, attempt: UInt32, holder: UInt64, leaseDeadline: Int64) throws(StoreError) -> Int64 {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.touch(id: id, attempt: attempt, holder: holder, leaseDeadline: leaseDeadline)
        }
    }

    /// One `release` in its own durable transaction. See `TaskStoreWriteBatch.release`.
    @discardableResult
    public func release(id: String, attempt: UInt32, holder: UInt64) throws(StoreError) -> TaskRecord {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.release(id: id, attempt: attempt, holder: holder)
        }
    }

    /// One `releaseHolder` in its own durable transaction. See `TaskStoreWriteBatch.releaseHolder`.
    @discardableResult
    public func releaseHolder(_ holder: UInt64, reason: String, now: Int64) throws(StoreError) -> [TaskRecord] {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in
            try b.releaseHolder(holder, reason: reason, now: now)
        }
    }

    /// One `expireLeases` in its own durable transaction. See `TaskStoreWriteBatch.expireLeases`.
    @discardableResult
    public func expireLeases(now: Int64) throws(StoreError) -> [TaskRecord] {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.expireLeases(now: now) }
    }

    /// One `releaseAllLeases` in its own durable transaction. See `TaskStoreWriteBatch.releaseAllLeases`.
    @discardableResult
    public func releaseAllLeases() throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.releaseAllLeases() }
    }

    /// One `retryDead` in its own durable transaction. See `TaskStoreWriteBatch.retryDead`.
    public func retryDead(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.retryDead(selector, now: now) }
    }

    /// One `purgeDead` in its own durable transaction. See `TaskStoreWriteBatch.purgeDead`.
    public func purgeDead(_ selector: TaskSelector) throws(StoreError) -> Int {
        try write(isolatingRequests: false) { (b: inout WriteBatch) throws(StoreError) in try b.purgeDead(selector) }
    }
}
