import TaskShedProtocol

/// The write operations of `LMDBTaskStore` inside one write transaction (see `TaskStoreWriteBatch` for what
/// each operation does and throws).
///
/// - Important: Only valid inside the `write` body it was passed to; it must not escape.
public struct LMDBWriteBatch: TaskStoreWriteBatch {
    /// What a request does to the store's room (see `StoreOptions.reserveBytes`).
    enum RequestKind {
        /// Adds data (add, pause, resume, run-time updates, retries of dead tasks): fails with `storeFull` once
        /// the store's trees would pass the room less the reserve.
        case grows
        /// Finishes or removes tasks, or writes nothing to LMDB (claims, touches): may use the reserve.
        case settles
    }

    /// The room one run of the batch may use.
    struct Room {
        /// Most pages the store's trees may have after a request that grows them; `nil` while the map is too
        /// small to get there (LMDB's `MDB_MAP_FULL` comes first), so that no request pays for counting.
        var growthLimitPages: Int?
        /// The room, the maximum and the reserve, for the errors (built only when one is thrown: a write that
        /// fits pays for no message).
        var roomBytes: Int
        var maxBytes: Int
        var reserveBytes: Int
        /// Whether a request that runs out of map has the store commit a bump and rerun the batch (once per
        /// write: see `LMDBTaskStore.write`).
        var mayRerunAfterBump: Bool

        /// The error of a request that grows the store and does not fit.
        var full: StoreError { .full(roomBytes: roomBytes, maxBytes: maxBytes, reserveBytes: reserveBytes) }
        /// The error of a request that settles or removes tasks and does not fit even in the reserve.
        var settlingFull: StoreError { .fullEvenForSettling(reserveBytes: reserveBytes) }
    }

    let environment: LMDBEnvironment
    let top: LMDBTransaction
    let isolating: Bool
    let mode: LMDBTaskStore.FullMode
    let room: Room
    /// The top-level transaction's context (used directly when not isolating, and for reads).
    var context: StoreContext

    /// An operation hit `MDB_MAP_FULL` and the batch is to be rerun (after the map grew, or after a bump).
    var mapFullHit = false
    /// The operation that hit `MDB_MAP_FULL` in normal mode settles or removes tasks (for the error of a write
    /// that cannot be isolated: see `LMDBTaskStore.write`).
    var settlingHitMapFull = false
    /// A request that grows the store passed `room.growthLimitPages` in normal mode: the store reruns the batch
    /// with each request isolated, so that such requests fail alone.
    var overLimit = false
    /// A failed operation when not isolating: the transaction is aborted.
    var poisoned: StoreError?

    init(environment: LMDBEnvironment, top: LMDBTransaction, isolating: Bool, mode: LMDBTaskStore.FullMode,
         room: Room, context: StoreContext) {
        self.environment = environment
        self.top = top
        self.isolating = isolating
        self.mode = mode
        self.room = room
        self.context = context
    }

    /// Whether this run is only waiting to be aborted and rerun.
    private var needsRerun: Bool { mapFullHit || overLimit }

    /// Whether the trees of `context`'s transaction passed the room a growing request may use.
    private func passesGrowthLimit(_ context: StoreContext) throws(StoreError) -> Bool {
        guard let limit = room.growthLimitPages else { return false }
        return try context.treePages() > limit
    }

    /// Runs one request.
    ///
    /// Every operation finds its request errors (validation, unknown task, lost lease) before its first write,
    /// so in normal mode a request runs directly in the top transaction: one that fails without having written
    /// fails alone. A failure after a write (an LMDB error, a corrupt record) cannot be undone alone and poisons
    /// the batch: the whole transaction is aborted and `write` throws it. When the store is full (`full` mode),
    /// requests run in nested transactions (`mdb_txn_begin` with a parent) so that one that runs out of room
    /// part-way, or that grows the store into its reserve, is rolled back alone.
    private mutating func run<T>(_ kind: RequestKind, _ op: (inout StoreContext) throws(StoreError) -> T)
        throws(StoreError) -> T
    {
        if let poisoned { throw poisoned }
        if needsRerun { throw room.full }
        let leaseMark = context.leaseTable.mark
        guard isolating && mode != .normal else {
            let writesBefore = context.writes
            let result: T
            let over: Bool
            do throws(StoreError) {
                result = try op(&context)
                // Deletions alone wait for the next request that puts or claims, or for the commit, so that a
                // run of acks deletes its `callback_wake` entries in key order through one cursor (neighbours,
                // found by the cursor's next entry) instead of one tree search each.
                if !context.pending.onlyDeletions { try context.flushIndexes() }
                over = kind == .grows ? try passesGrowthLimit(context) : false
            } catch {
                if error.isMapFull {
                    mapFullHit = true
                    settlingHitMapFull = kind == .settles
                    throw room.full
                }
                if !isolating || context.writes != writesBefore { poisoned = error }
                throw error
            }
            if over {
                overLimit = true
                throw room.full
            }
            return result
        }
        let parent = top
        let env = environment
        let child = try lmdb { () throws(LMDBError) in
            try LMDBTransaction(environment: env, parent: parent, readOnly: false)
        }
        var ctx = StoreContext(
            txn: child, dbs: context.dbs, options: context.options, random: context.random,
            leaseTable: context.leaseTable, indexQueueLimit: context.indexQueueLimit)
        ctx.recordsIDSequence = context.recordsIDSequence
        do throws(StoreError) {
            let result = try op(&ctx)
            try ctx.flushIndexes()
            try ctx.flushCounts()
            if kind == .grows, try passesGrowthLimit(ctx) { throw room.full }
            try lmdb { () throws(LMDBError) in try child.commit() }
            context.ended += ctx.ended
            return result
        } catch {
            if child.handle != nil { child.abort() }
            // The leases the child changed go with it.
            context.leaseTable.rollback(to: leaseMark)
            if error.isMapFull {
                // Pages the last commit freed may become usable after one more commit (see `write`).
                if room.mayRerunAfterBump { mapFullHit = true }
                throw kind == .settles ? room.settlingFull : room.full
            }
            throw error
        }
    }

    /// See `TaskStoreWriteBatch.add`.
    public mutating func add(_ specs: [TaskSpec], onConflict: ConflictPolicy, now: Int64) throws(StoreError)
        -> [AddResult]
    {
        try run(.grows) { (c) throws(StoreError) in try c.add(specs, onConflict: onConflict, now: now) }
    }

    /// See `TaskStoreWriteBatch.pause`.
    public mutating func pause(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        try run(.grows) { (c) throws(StoreError) in try c.setPaused(selector, paused: true, now: now) }
    }

    /// See `TaskStoreWriteBatch.resume`.
    public mutating func resume(_ selector: TaskSelector) throws(StoreError) -> Int {
        try run(.grows) { (c) throws(StoreError) in try c.setPaused(selector, paused: false, now: 0) }
    }

    /// See `TaskStoreWriteBatch.remove`.
    public mutating func remove(_ selector: TaskSelector) throws(StoreError) -> Int {
        try run(.settles) { (c) throws(StoreError) in try c.remove(selector) }
    }

    /// See `TaskStoreWriteBatch.updateRunTimes`.
    public mutating func updateRunTimes(_ updates: [RunTimeUpdate]) throws(StoreError) {
        try run(.grows) { (c) throws(StoreError) in try c.updateRunTimes(updates) }
    }

    /// See `TaskStoreWriteBatch.claim`.
    public mutating func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, dueBy: Int64,
                               now: Int64) throws(StoreError) -> [TaskRecord]
    {
        try run(.settles) { (c) throws(StoreError) in
            try c.claim(callbacks: callbacks, max: max, holder: holder, leaseDeadline: leaseDeadline, dueBy: dueBy,
                        now: now)
        }
    }

    /// See `TaskStoreWriteBatch.ack`.
    public mutating func ack(id: String, attempt: UInt32, holder: UInt64, now: Int64) throws(StoreError) -> TaskRecord? {
        try run(.settles) { (c) throws(StoreError) in try c.ack(id: id, attempt: attempt, holder: holder, now: now) }
    }

    /// See `TaskStoreWriteBatch.fail`.
    public mutating func fail(id: String, attempt: UInt32, holder: UInt64, error: String, retry: Bool, now: Int64)
        throws(StoreError) -> TaskRecord
    {
        try run(.settles) { (c) throws(StoreError) in
            try c.fail(id: id, attempt: attempt, holder: holder, error: error, retry: retry, now: now)
        }
    }

    /// See `TaskStoreWriteBatch.touch`.
    public mutating func touch(id: String, attempt: UInt32, holder: UInt64, leaseDeadline: Int64) throws(StoreError)
        -> Int64
    {
        try run(.settles) { (c) throws(StoreError) in
            try c.touch(id: id, attempt: attempt, holder: holder, newDeadline: leaseDeadline)
        }
    }

    /// See `TaskStoreWriteBatch.release`.
    public mutating func release(id: String, attempt: UInt32, holder: UInt64, now: Int64?) throws(StoreError)
        -> TaskRecord
    {
        try run(.settles) { (c) throws(StoreError) in try c.release(id: id, attempt: attempt, holder: holder, now: now) }
    }

    /// See `TaskStoreWriteBatch.releaseHolder`.
    public mutating func releaseHolder(_ holder: UInt64, reason: String, now: Int64) throws(StoreError) -> [TaskRecord] {
        try run(.settles) { (c) throws(StoreError) in try c.releaseHolder(holder, reason: reason, now: now) }
    }

    /// See `TaskStoreWriteBatch.expireLeases`.
    public mutating func expireLeases(now: Int64, sparing spare: (_ id: String, _ holder: UInt64) -> Bool)
        throws(StoreError) -> [TaskRecord]
    {
        try run(.settles) { (c) throws(StoreError) in
            try c.expireLeases(now: now, reason: "lease expired", sparing: spare)
        }
    }

    /// See `TaskStoreWriteBatch.releaseAllLeases`.
    public mutating func releaseAllLeases() throws(StoreError) -> Int {
        try run(.settles) { (c) throws(StoreError) in try c.releaseAllLeases() }
    }

    /// See `TaskStoreWriteBatch.retryDead`.
    public mutating func retryDead(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        try run(.grows) { (c) throws(StoreError) in try c.retryDead(selector, now: now) }
    }

    /// See `TaskStoreWriteBatch.purgeDead`.
    public mutating func purgeDead(_ selector: TaskSelector) throws(StoreError) -> Int {
        try run(.settles) { (c) throws(StoreError) in try c.purgeDead(selector) }
    }

    /// See `TaskStoreWriteBatch.endedRuns`.
    public var endedRuns: [EndedRun] { context.ended }

    /// See `TaskStoreWriteBatch.recordRuns`.
    public mutating func recordRuns(_ runs: [RunEntry], now: Int64) throws(StoreError) {
        guard !runs.isEmpty, context.options.history.records else { return }
        try run(.settles) { (c) throws(StoreError) in try c.recordRuns(runs, now: now) }
    }

    /// See `TaskStoreWriteBatch.fetch`.
    public func fetch(_ selector: TaskSelector) throws(StoreError) -> [TaskRecord] {
        if let poisoned { throw poisoned }
        // After a request ran out of room the transaction is only waiting to be rerun, and may hold index
        // changes that were never written: nothing in it can be read.
        if needsRerun { throw room.full }
        return try context.fetch(selector)
    }
}
