import CLMDB
import TaskShedProtocol

extension StoreContext {
    // MARK: Add

    mutating func add(_ specs: [TaskSpec], onConflict: ConflictPolicy, now: Int64) throws(StoreError) -> [AddResult] {
        let prepared = try TaskValidation.prepare(
            specs, maxKwargsBytes: options.maxKwargsBytes, checksKwargsJSON: options.checksKwargsJSON)
        // Every error is found before the first write, so a failing add leaves nothing behind even without a
        // nested transaction.
        if onConflict == .fail {
            for (i, spec) in specs.enumerated() {
                if let id = spec.id, try load(id) != nil {
                    throw StoreError(code: .taskExists, field: "tasks[\(i)].id", message: "task \"\(id)\" already exists")
                }
            }
        }
        // Each result goes to its request's place: the tasks are not written in request order (below).
        var results = [AddResult](repeating: AddResult(id: "", outcome: .kept), count: specs.count)
        // Each new task queues a `callback_wake` key of about 12 + 8 + id bytes (and a `groups` key if grouped).
        pending.reserve(bytes: prepared.count * 100, changes: prepared.count, of: [.callbackWake])
        let txn = self.txn
        let tasksDB = dbs.tasks
        // Generated ids follow the tasks' run times (`GeneratedID`), so tasks with scattered run times get ids
        // out of request order. They are written in id order, in the places of the request's tasks without an
        // id (tasks with a caller's id keep theirs): appended to `tasks` (no search, full pages) while they sort
        // after its last key, then inserted left to right, so that consecutive inserts land on the page the one
        // before touched (LMDB copies a page once per transaction whatever the order; the order buys locality).
        let (generated, inRequestOrder) = generatedIDs(specs, now: now)
        var nextGenerated = 0
        let records = try tasksCursor()
        defer { records.close() }
        var appendGenerated = true
        for slot in specs.indices {
            let i: Int
            var id: String
            if specs[slot].id == nil {
                i = generated[nextGenerated].index
                id = generated[nextGenerated].id.string
                nextGenerated += 1
            } else {
                i = slot
                id = specs[slot].id!
            }
            if !inRequestOrder && nextGenerated + 8 < generated.count {
                Self.prefetch(
                    specs, prepared, results, task: generated[nextGenerated + 8].index,
                    kwargsOf: generated[nextGenerated + 4].index)
            }
            let spec = specs[i]
            let p = prepared[i]
            var task = StoredTask(
                record: TaskRecord(
                    id: id, callback: spec.callback, runAt: TaskValidation.firstRun(spec, id: id, now: now),
                    schedule: spec.schedule,
                    kwargs: p.kwargs, group: spec.group, paused: spec.paused, pausedAt: spec.paused ? now : nil,
                    coalesce: spec.coalesce, state: .scheduled, attempt: 0, maxAttempts: p.maxAttempts,
                    leaseDeadline: nil, lastError: nil, createdAt: now, lastRunAt: nil, lastFailureAt: nil))
            value.reset()
            task.encode(into: &value)
            var old: StoredTask?
            while true {
                if spec.id == nil && appendGenerated {
                    writes += 1
                    let result = value.bytes.withUnsafeBytes { v in
                        withUTF8Bytes(id) { k in
                            Result { () throws(LMDBError) in try records.append(rawKey: k, rawValue: v) }
                        }
                    }
                    // Appended: the key is above every key, so the id is new.
                    if try lmdb({ () throws(LMDBError) in try result.get() }) { break }
                    writes -= 1
                    appendGenerated = false
                }
                let k = Self.idKey(id)
                let v = value.bytes
                old = try lmdb { () throws(LMDBError) -> StoredTask? in
                    switch try txn.insert(tasksDB, key: k, value: v) {
                    case .inserted: return nil
                    case .exists(let raw):
                        guard let old = StoredTask.decode(id: id, raw) else {
                            throw LMDBError(MDB_CORRUPTED, "decode task")
                        }
                        return old
                    }
                }
                if var existing = old {
                    applyLease(to: &existing)
                    old = existing
                }
                // A generated id never replaces a task: draw another on the (practically impossible) collision.
                guard spec.id == nil, old != nil else { break }
                id = random.taskID(runAt: task.record.runAt)
                task.record.id = id
            }
            guard let old else {
                try saveInserted(task)
                results[i] = AddResult(id: id, outcome: .inserted)
                continue
            }
            switch onConflict {
            case .keep:
                results[i] = AddResult(id: id, outcome: .kept)
            case .fail:
                throw StoreError(code: .taskExists, field: "tasks[\(i)].id", message: "task \"\(id)\" already exists")
            case .replace:
                task.record.createdAt = old.record.createdAt
                if spec.paused, old.record.paused, let kept = old.record.pausedAt { task.record.pausedAt = kept }
                try save(old: old, new: task)
                results[i] = AddResult(id: id, outcome: .replaced)
            }
        }
        if !generated.isEmpty && recordsIDSequence { try storeIDSequence() }
        return results
    }

    /// The `meta` key of the id sequence (`RandomSource.sequence`) as of the last add that generated ids.
    static let idSequenceKey: [UInt8] = Array("id_sequence".utf8)

    /// The id sequence the last add that generated ids committed, if any (u32 LE).
    func storedIDSequence() throws(StoreError) -> UInt32? {
        let txn = self.txn
        let meta = dbs.meta
        guard let raw = try lmdb({ () throws(LMDBError) in try txn.get(meta, key: Self.idSequenceKey) }) else {
            return nil
        }
        var s = ByteSource(raw)
        return s.u32LE()
    }

    /// Stores the id sequence with the ids this transaction generated, for the next opening to resume from.
    private mutating func storeIDSequence() throws(StoreError) {
        var sink = ByteSink(capacity: 4)
        sink.u32LE(random.sequence)
        let value = sink.bytes
        let txn = self.txn
        let meta = dbs.meta
        writes += 1
        try lmdb { () throws(LMDBError) in try txn.put(meta, key: Self.idSequenceKey, value: value) }
    }

    /// Asks the CPU for what `add` will read of task `i` (its spec, its prepared kwargs, its result's slot) and
    /// for the kwargs bytes of task `k`, whose spec it asked for earlier. `add` reads the tasks without an id in
    /// id order, which for scattered run times is a random walk through the request: with these hints eight
    /// tasks ahead, a batch of 100k random run times spent what one in request order does in that loop (82–90 ms
    /// against 81–87), and ~30 ms more without them (`git show 4615f6e:BENCHMARKS.md`, 5.15).
    @inline(__always)
    private static func prefetch(
        _ specs: [TaskSpec], _ prepared: [PreparedTask], _ results: [AddResult], task i: Int, kwargsOf k: Int
    ) {
        specs.withUnsafeBufferPointer { s in
            // Every cache line of the spec (96 bytes: two lines, or three when it starts late in one).
            let spec = UnsafeRawPointer(s.baseAddress! + i)
            clmdb_prefetch(spec)
            clmdb_prefetch(spec + 64)
            clmdb_prefetch(spec + MemoryLayout<TaskSpec>.stride - 1)
        }
        prepared.withUnsafeBufferPointer { p in
            clmdb_prefetch(p.baseAddress! + i)
            // The kwargs' bytes, found without copying the array (a retain and a release, both atomic): an
            // array is one reference to its storage, whose elements follow a 32-byte header. A hint only, so a
            // layout that differed would cost a useless prefetch, never a wrong read.
            let storage = UnsafeRawPointer(p.baseAddress! + k).load(as: UnsafeRawPointer?.self)
            if let storage { clmdb_prefetch(storage + 32) }
        }
        results.withUnsafeBufferPointer { clmdb_prefetch_for_write($0.baseAddress! + i) }
    }

    /// New ids for the tasks of `specs` without one, in id order, each with its task's index: drawn in request
    /// order (so ids of one millisecond ascend with it) and sorted only when the run times were not ascending.
    /// - Returns: The ids, and whether they were drawn in id order already.
    private func generatedIDs(_ specs: [TaskSpec], now: Int64)
        -> (ids: [(id: GeneratedID, index: Int)], inRequestOrder: Bool)
    {
        var generated: [(id: GeneratedID, index: Int)] = []
        generated.reserveCapacity(specs.count)
        var sorted = true
        for (i, spec) in specs.enumerated() where spec.id == nil {
            let id = random.nextID(runAt: spec.runAt ?? now)
            if let last = generated.last, id < last.id { sorted = false }
            generated.append((id, i))
        }
        if !sorted { generated.sort { $0.id < $1.id } }
        return (generated, sorted)
    }

    // MARK: Pause, resume, remove, reschedule

    /// Pauses or resumes the selected tasks that are not dead (PROTOCOL.md 6.7): a dead task waits for
    /// RETRY_DEAD or PURGE_DEAD, and pausing it would leave it paused once retried. Returns how many it applied
    /// to.
    mutating func setPaused(_ selector: TaskSelector, paused: Bool, now: Int64) throws(StoreError) -> Int {
        var count = 0
        for id in try selectedIDs(selector) {
            guard let old = try loadSelected(id, selector), old.record.state != .dead else { continue }
            count += 1
            var new = old
            new.record.paused = paused
            if paused {
                if !old.record.paused { new.record.pausedAt = now }
            } else {
                new.record.pausedAt = nil
            }
            if new.record != old.record { try save(old: old, new: new) }
        }
        return count
    }

    mutating func remove(_ selector: TaskSelector) throws(StoreError) -> Int {
        if case .all = selector {
            let txn = self.txn
            let count = try lmdb { () throws(LMDBError) in try txn.entryCount(dbs.tasks) }
            writes += 1
            pending.discard()
            for db in dbs.taskDatabases {
                try lmdb { () throws(LMDBError) in try txn.empty(db) }
            }
            numbers.removeAll()
            deltas.removeAll()
            leaseTable.clearAll()
            return count
        }
        var count = 0
        for id in try selectedIDs(selector) {
            guard let old = try loadSelected(id, selector) else { continue }
            try save(old: old, new: nil)
            count += 1
        }
        return count
    }

    mutating func updateRunTimes(_ updates: [RunTimeUpdate]) throws(StoreError) {
        var loaded: [StoredTask] = []
        loaded.reserveCapacity(updates.count)
        for (i, u) in updates.enumerated() {
            guard let task = try load(u.id) else { throw .notFound(u.id, field: "updates[\(i)].id") }
            loaded.append(task)
        }
        for u in updates {
            // Reload: the same id may appear twice, and the last update wins.
            guard let old = try load(u.id) else { continue }
            // A reschedule is the operator's word on when the task runs next, whatever it is doing now
            // (PROTOCOL.md, section 8): a lease is dropped (the holder's ack then gets LEASE_LOST, so the task
            // runs at the new time rather than being removed by that ack) and a dead task is revived.
            var new = Self.unleased(old, state: .scheduled)
            new.record.runAt = u.runAt
            new.record.attempt = 0
            if new.record != old.record { try save(old: old, new: new) }
        }
    }

    // MARK: Claim and leases

    mutating func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, dueBy: Int64, now: Int64)
        throws(StoreError) -> [TaskRecord]
    {
        guard max > 0, !callbacks.isEmpty else { return [] }
        // The walk trusts `callback_wake` (an entry without its record is corruption): apply the deletions
        // earlier requests of the batch left pending first.
        try flushIndexes()
        var unique: [String] = []
        var seen = Set<NameKey>()
        for c in callbacks where seen.insert(NameKey(c)).inserted { unique.append(c) }

        // A callback without a number has never had a scheduled task: nothing to claim.
        var numbers: [UInt32] = []
        var names: [String] = []
        numbers.reserveCapacity(unique.count)
        names.reserveCapacity(unique.count)
        for name in unique {
            if let n = try callbackNumber(name, create: false) {
                numbers.append(n)
                names.append(name)
            }
        }
        guard !numbers.isEmpty else { return [] }

        // Phase 1: merge the callbacks' due lists (each sorted by time, id) and pick the earliest `max` that are
        // due and not leased. Phase 2 leases them; nothing changes while cursors walk the index. Each list is
        // read through its claim frontier (`UnleasedEntries`), and the frontier then moves over what this claim
        // took and skipped.
        let leases = leaseView
        let (picked, moved) = try withCursor(dbs.callbackWake) {
            (cursor) throws(StoreError) -> ([(id: String, list: Int)], [ClaimFrontier?]) in
            let txn = self.txn
            let db = dbs.callbackWake
            var cursors: [LMDBCursor] = [cursor]
            defer { for c in cursors.dropFirst() { c.close() } }
            var lists: [UnleasedEntries] = []
            lists.reserveCapacity(numbers.count)
            for (i, n) in numbers.enumerated() {
                let c: LMDBCursor
                if i == 0 {
                    c = cursor
                } else {
                    c = try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: db) }
                    cursors.append(c)
                }
                lists.append(try UnleasedEntries(c, n, leases))
            }
            var out: [(id: String, list: Int)] = []
            out.reserveCapacity(Swift.min(max, 1024))
            while out.count < max {
                // The earliest head; ids are compared only on a time tie.
                var best = -1
                var bestTime: Int64 = 0
                for i in lists.indices {
                    guard let t = lists[i].head?.runAt else { continue }
                    if best < 0 || t < bestTime
                        || (t == bestTime && lists[i].head!.id.utf8.lexicographicallyPrecedes(lists[best].head!.id.utf8))
                    {
                        best = i
                        bestTime = t
                    }
                }
                guard best >= 0, bestTime <= dueBy, let id = lists[best].head?.id else { break }
                out.append((id, best))
                try lists[best].advance()
            }
            return (out, lists.map(\.movedFrontier))
        }
        // The frontiers move once the entries they pass are leased: a reader on another thread never sees a
        // frontier past an unleased entry.
        defer {
            for (i, frontier) in moved.enumerated() {
                if let frontier { setClaimFrontier(numbers[i], frontier) }
            }
        }

        var claimed: [TaskRecord] = []
        claimed.reserveCapacity(picked.count)
        guard !picked.isEmpty else { return claimed }
        // The record is read, not rewritten: the lease lives in memory (see `Lease`), so a claim writes
        // nothing to LMDB.
        let records = try tasksCursor()
        defer { records.close() }
        for (i, (id, list)) in picked.enumerated() {
            guard var task = try load(id, at: records, tryNext: i > 0, unleased: true, callback: names[list]) else {
                throw .corrupt("due index entry for missing task \"\(id)\"")
            }
            guard task.record.state == .scheduled, !task.record.paused else {
                throw .corrupt("due index entry for task \"\(id)\" that is not due")
            }
            if case .calendar(let calendar) = task.record.schedule {
                // Catch-up after downtime is decided here, where a missed occurrence is first seen: run the
                // stored one, a later one, or none (the task moves to its next occurrence, unclaimed).
                guard let caughtUp = try catchUp(task, calendar, at: records, now: now) else { continue }
                task = caughtUp
            }
            let lease = Lease(
                deadline: leaseDeadline, holder: holder, attempt: task.record.attempt &+ 1,
                // A task claimed ahead of its due time runs at its due time.
                lastRunAt: Swift.max(task.record.runAt, now), baseLastRunAt: task.record.lastRunAt,
                callback: task.record.callback, paused: false, runAt: task.record.runAt, group: task.record.group,
                recurring: task.record.schedule.isRecurring)
            // Only the record is returned: the lease goes into the table, not into `task` too (a copy).
            lease.apply(to: &task.record)
            setLease(task.record.id, lease)
            claimed.append(task.record)
        }
        return claimed
    }

    /// Loads a task through `cursor` (on `tasks`, left at the record) and checks that the lease
    /// `(holder, attempt)` is current.
    func leased(_ id: String, attempt: UInt32, holder: UInt64, at cursor: LMDBCursor) throws(StoreError)
        -> StoredTask
    {
        guard let task = try load(id, at: cursor) else { throw .notFound(id, field: "id") }
        guard task.record.state == .leased, task.holder == holder, task.record.attempt == attempt else {
            throw .leaseLost(id, attempt: attempt)
        }
        return task
    }

    /// The task back in the schedule after its current occurrence ran (or was given up on): the next
    /// occurrence, attempt 0, no lease. A pause made meanwhile stays. `nil`: a calendar rule with no occurrence
    /// left, so the task is finished and removed like a one-off task.
    static func advanced(_ task: StoredTask, now: Int64) -> StoredTask? {
        var next = task
        switch task.record.schedule {
        case .once:
            preconditionFailure("a one-off task does not advance")
        case .interval(let interval):
            next.record.runAt = nextRun(runAt: task.record.runAt, interval: interval, coalesce: task.record.coalesce,
                                        now: now)
        case .calendar(let calendar):
            switch TaskValidation.calendarStep(after: task.record, calendar, now: now) {
            case .next(let runAt, let skipped, let reason):
                next.record.applySkips(runAt: runAt, skipped: skipped, reason: reason)
            case .finished:
                return nil
            case .broken(let message):
                var dead = unleased(task, state: .dead)
                dead.record.lastError = message
                dead.record.lastFailureAt = now
                return dead
            }
        }
        next.record.state = .scheduled
        next.record.attempt = 0
        next.record.leaseDeadline = nil
        next.lease = nil
        return next
    }

    /// A due calendar task at a claim: the task to lease (its stored occurrence, the later one catch-up picked,
    /// rewritten with the skip counters, or, with overlap `allow`, the run's own one-off task), or `nil` when
    /// catch-up runs nothing now and the task moved to its next occurrence (or, with none left, was removed).
    private mutating func catchUp(_ task: StoredTask, _ calendar: CalendarSchedule, at records: LMDBCursor,
                                  now: Int64) throws(StoreError) -> StoredTask? {
        var new = task
        switch TaskValidation.calendarClaim(task.record, calendar, now: now) {
        case .decided(.run):
            return task
        case .decided(.runInstead(let occurrence, let skipped, let reason)):
            new.record.applySkips(runAt: occurrence, skipped: skipped, reason: reason)
            noteSkips(task, new, now: now)
            try replaceRecord(at: records, new)
            try save(old: task, new: new, writeRecord: false)
            return new
        case .decided(.skip(let nextRunAt, let skipped, let reason)):
            guard let nextRunAt else {
                try save(old: task, new: nil)
                return nil
            }
            new.record.applySkips(runAt: nextRunAt, skipped: skipped, reason: reason)
            noteSkips(task, new, now: now)
        case .runSeparately(let run, let nextRunAt, let skipped, let reason):
            // The run is a one-off task of its own; an existing one of that id (the same occurrence, run again
            // by a reschedule while the first still runs) is left alone and nothing is claimed.
            let exists = try load(run.id) != nil
            if let nextRunAt {
                new.record.applySkips(runAt: nextRunAt, skipped: skipped, reason: reason)
                noteSkips(task, new, now: now)
                try replaceRecord(at: records, new)
                try save(old: task, new: new, writeRecord: false)
            } else {
                try save(old: task, new: nil)
            }
            guard !exists else { return nil }
            let separate = StoredTask(record: run)
            try save(old: nil, new: separate)
            return separate
        case .broken(let message):
            new.record.state = .dead
            new.record.lastError = message
            new.record.lastFailureAt = now
        }
        try replaceRecord(at: records, new)
        try save(old: task, new: new, writeRecord: false)
        return nil
    }

    /// Records the calendar occurrences a claim's catch-up skipped between `old` and `new`.
    private mutating func noteSkips(_ old: StoredTask, _ new: StoredTask, now: Int64) {
        if let skips = EndedRun.skips(from: old.record, to: new.record, now: now) { ended.append(skips) }
    }

    /// The task without its lease, in `state`; attempt and `lastRunAt` stay those of the delivery (it counts).
    static func unleased(_ task: StoredTask, state: TaskState) -> StoredTask {
        var next = task
        next.record.state = state
        next.record.leaseDeadline = nil
        next.lease = nil
        return next
    }

    /// The task as it was before its claim (the delivery does not count): what its record still says.
    static func released(_ task: StoredTask) -> StoredTask {
        var next = unleased(task, state: .scheduled)
        next.record.attempt = task.record.attempt &- 1
        next.record.lastRunAt = task.lease?.baseLastRunAt
        return next
    }

    mutating func ack(id: String, attempt: UInt32, holder: UInt64, now: Int64) throws(StoreError) -> TaskRecord? {
        // A one-off task: the lease says where its index entries are, so the record is deleted without being
        // read (decoding it was a quarter of an ack).
        if let lease = takeLease(id, if: { $0.holder == holder && $0.attempt == attempt && !$0.recurring }) {
            try deleteLeasedRecord(id)
            try saveLeasedRemoved(id, lease)
            ended.append(.ending(id: id, callback: lease.callback, attempt: attempt, runAt: lease.runAt,
                                 lastRunAt: lease.lastRunAt, holder: holder, outcome: .succeeded, error: nil,
                                 then: .finished, now: now))
            return nil
        }
        // One cursor finds the record and deletes or rewrites it: one tree search instead of two (likewise in
        // fail, touch and release).
        let records = try tasksCursor()
        defer { records.close() }
        let old = try leased(id, attempt: attempt, holder: holder, at: records)
        precondition(old.record.schedule.isRecurring, "a one-off lease is acked above")
        let advanced = Self.advanced(old, now: now)
        noteEnd(old, holder: holder, .succeeded, error: nil, after: advanced, now: now)
        guard let new = advanced else {
            // A calendar rule with no occurrence left: finished, like a one-off task.
            try save(old: old, new: nil)
            return nil
        }
        try replaceRecord(at: records, new)
        try save(old: old, new: new, writeRecord: false)
        return new.record
    }

    mutating func fail(id: String, attempt: UInt32, holder: UInt64, error: String, retry: Bool, now: Int64)
        throws(StoreError) -> TaskRecord
    {
        let records = try tasksCursor()
        defer { records.close() }
        let old = try leased(id, attempt: attempt, holder: holder, at: records)
        let message = truncateUTF8(error, limit: ProtocolLimits.maxErrorBytes)
        var new: StoredTask
        if old.record.schedule.isRecurring {
            guard let advanced = Self.advanced(old, now: now) else {
                noteEnd(old, holder: holder, .failed, error: message, after: nil, now: now)
                try save(old: old, new: nil)
                return old.record.failed(message, at: now)
            }
            new = advanced
        } else if retry && old.record.attempt < old.record.maxAttempts {
            new = Self.unleased(old, state: .scheduled)
            let delay = options.retry.delay(afterAttempt: old.record.attempt, unit: random.unit())
            let (at, overflow) = now.addingReportingOverflow(delay)
            new.record.runAt = overflow ? .max : at
        } else {
            new = Self.unleased(old, state: .dead)
        }
        new.record.lastError = message
        new.record.lastFailureAt = now
        noteEnd(old, holder: holder, .failed, error: message, after: new, now: now)
        try replaceRecord(at: records, new)
        try save(old: old, new: new, writeRecord: false)
        return new.record
    }

    mutating func touch(id: String, attempt: UInt32, holder: UInt64, newDeadline: Int64) throws(StoreError) -> Int64 {
        let records = try tasksCursor()
        defer { records.close() }
        let old = try leased(id, attempt: attempt, holder: holder, at: records)
        var new = old
        new.record.leaseDeadline = newDeadline
        // Only the lease changes, in memory: the record and its indexes stay.
        try save(old: old, new: new, writeRecord: false)
        return newDeadline
    }

    mutating func release(id: String, attempt: UInt32, holder: UInt64, now: Int64?) throws(StoreError) -> TaskRecord {
        let records = try tasksCursor()
        defer { records.close() }
        let old = try leased(id, attempt: attempt, holder: holder, at: records)
        let new = Self.released(old)
        if let now {
            ended.append(.ending(old.record, holder: holder, outcome: .released, error: nil, after: new.record, now: now))
        }
        // The record already says this: only the lease ends.
        try save(old: old, new: new, writeRecord: false)
        return new.record
    }

    /// A lease ended without an answer (worker gone, lease expired): counted as a failed attempt.
    private mutating func abandon(_ old: StoredTask, holder: UInt64, _ outcome: RunOutcome, reason: String,
                                  now: Int64) throws(StoreError) -> TaskRecord
    {
        var new: StoredTask
        if old.record.attempt < old.record.maxAttempts {
            new = Self.unleased(old, state: .scheduled)
        } else if old.record.schedule.isRecurring {
            guard let advanced = Self.advanced(old, now: now) else {
                noteEnd(old, holder: holder, outcome, error: reason, after: nil, now: now)
                try save(old: old, new: nil)
                return old.record.failed(reason, at: now)
            }
            new = advanced
        } else {
            new = Self.unleased(old, state: .dead)
        }
        new.record.lastError = truncateUTF8(reason, limit: ProtocolLimits.maxErrorBytes)
        new.record.lastFailureAt = now
        noteEnd(old, holder: holder, outcome, error: reason, after: new, now: now)
        try save(old: old, new: new)
        return new.record
    }

    /// Records the end of `old`'s delivery (and the calendar occurrences its step to `after` skipped) in
    /// `ended`.
    private mutating func noteEnd(_ old: StoredTask, holder: UInt64, _ outcome: RunOutcome, error: String?,
                                  after: StoredTask?, now: Int64)
    {
        ended += EndedRun.endings(old.record, holder: holder, outcome: outcome, error: error, after: after?.record,
                                  now: now)
    }

    /// The task of a lease in the table (its record must exist: a lease of a missing task is corruption).
    private func leasedTask(_ id: String) throws(StoreError) -> StoredTask {
        guard let task = try load(id) else { throw .corrupt("lease of missing task \"\(id)\"") }
        return task
    }

    mutating func releaseHolder(_ holder: UInt64, reason: String, now: Int64) throws(StoreError) -> [TaskRecord] {
        var out: [TaskRecord] = []
        for id in leaseTable.writerHeld(by: holder) {
            out.append(try abandon(try leasedTask(id), holder: holder, EndedRun.outcome(ofLeaseEnd: reason), reason: reason,
                                   now: now))
        }
        return out
    }

    mutating func expireLeases(now: Int64, reason: String, sparing spare: (String, UInt64) -> Bool)
        throws(StoreError) -> [TaskRecord]
    {
        var out: [TaskRecord] = []
        for (id, holder) in leaseTable.writerExpired(now: now) where !spare(id, holder) {
            out.append(try abandon(try leasedTask(id), holder: holder, .leaseExpired, reason: reason, now: now))
        }
        return out
    }

    mutating func releaseAllLeases() throws(StoreError) -> Int {
        var count = 0
        let byDeadline = allLeases().sorted { positionPrecedes(($0.lease.deadline, $0.id), ($1.lease.deadline, $1.id)) }
        for (id, _) in byDeadline {
            let old = try leasedTask(id)
            try save(old: old, new: Self.released(old), writeRecord: false)
            count += 1
        }
        return count
    }

    // MARK: Dead letters

    private func deadIDs(_ selector: TaskSelector) throws(StoreError) -> [String] {
        if case .all = selector { return try timeIndexIDs(dbs.dead) }
        return try selectedIDs(selector)
    }

    mutating func retryDead(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        var count = 0
        for id in try deadIDs(selector) {
            guard let old = try loadSelected(id, selector), old.record.state == .dead else { continue }
            var new = old
            new.record.state = .scheduled
            new.record.runAt = now
            new.record.attempt = 0
            try save(old: old, new: new)
            count += 1
        }
        return count
    }

    mutating func purgeDead(_ selector: TaskSelector) throws(StoreError) -> Int {
        var count = 0
        for id in try deadIDs(selector) {
            guard let old = try loadSelected(id, selector), old.record.state == .dead else { continue }
            try save(old: old, new: nil)
            count += 1
        }
        return count
    }
}
