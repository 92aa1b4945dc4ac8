#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import TaskShedProtocol

/// A sorted stream of (runAt, id) positions from one index, for merging indexes in `list`.
private final class PositionStream {
    enum Source {
        /// A time-keyed index (`time ++ id` keys).
        case index(LMDBCursor)
        /// The entries of one callback number in `callback_wake`.
        case callback(LMDBCursor, UInt32)
        /// Positions already collected and sorted.
        case memory([(Int64, String)], Int)
    }

    var source: Source
    var head: (Int64, String)?

    init(source: Source) { self.source = source }

    func close() {
        switch source {
        case .index(let c), .callback(let c, _): c.close()
        case .memory: break
        }
    }

    func set(_ entry: LMDBCursor.Entry?) throws(StoreError) {
        guard let entry else {
            head = nil
            return
        }
        guard let p = StoreContext.decodeTimeID(entry.key) else { throw .corrupt("index key") }
        head = p
    }

    func advance() throws(StoreError) {
        switch source {
        case .index(let c): try set(try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) })
        case .callback(let c, let n):
            let next = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            head = try StoreContext.decodeCallbackEntry(next, n)
        case .memory(let items, let i):
            source = .memory(items, i + 1)
            head = i + 1 < items.count ? items[i + 1] : nil
        }
    }
}

extension StoreContext {
    // MARK: Fetch

    /// Tasks by ids (in the ids' order, each once) or by group (by `runAt`, then id, as `list` orders them).
    /// - Parameter maxGroupTasks: The most tasks a group may have (the daemon's `max_batch`): a larger group
    ///   is refused after reading `maxGroupTasks + 1` of its tasks, not all of them.
    /// - Throws: `invalidArgument` naming `selector.kind` for `.all`, or `selector.group` for a group larger
    ///   than `maxGroupTasks`.
    func fetch(_ selector: TaskSelector, maxGroupTasks: Int = .max) throws(StoreError) -> [TaskRecord] {
        var out: [TaskRecord] = []
        switch selector {
        case .all:
            throw .invalid("selector.kind", "fetch needs ids or a group; page through every task with list")
        case .ids:
            for id in try selectedIDs(selector) {
                if let task = try loadSelected(id, selector) { out.append(task.record) }
            }
        case .group(let group):
            try forEachGroupID(group) { (id) throws(StoreError) in
                if let task = try loadSelected(id, selector) { out.append(task.record) }
                return out.count <= maxGroupTasks
            }
            if out.count > maxGroupTasks {
                throw .invalid("selector.group", "group \"\(group)\" has more than \(maxGroupTasks) tasks, the most one "
                    + "fetch returns; page through it with list and a group filter")
            }
            out.sort { positionPrecedes(($0.runAt, $0.id), ($1.runAt, $1.id)) }
        }
        return out
    }

    // MARK: List

    func list(filter: TaskFilter, limit: Int, cursor: [UInt8]?, now: Int64) throws(StoreError) -> TaskPage {
        guard limit > 0 else { throw .invalid("limit", "limit must be at least 1") }
        precondition(pending.isEmpty, "an index was read while index changes were pending")
        let after = try cursor.map { (c) throws(StoreError) in try ListCursor.decode(c) }
        var lower = filter.dueAfter ?? .min
        var upper: Int64? = filter.dueBefore
        let nowPlusOne = now == .max ? now : now + 1
        switch filter.state {
        case .due?: upper = min(upper ?? .max, nowPlusOne)
        case .pending?: lower = max(lower, nowPlusOne)
        default: break
        }

        func inRange(_ p: (Int64, String)) -> Bool {
            if p.0 < lower { return false }
            if let upper, p.0 >= upper { return false }
            if let after, !positionPrecedes(after, p) { return false }
            return true
        }
        func matches(_ r: TaskRecord) -> Bool {
            if let g = filter.group, !sameBytes(r.group, g) { return false }
            if let c = filter.callback, !sameBytes(r.callback, c) { return false }
            if let state = filter.state {
                switch state {
                case .pending: if !(r.state == .scheduled && !r.paused && r.runAt > now) { return false }
                case .due: if !(r.state == .scheduled && !r.paused && r.runAt <= now) { return false }
                case .paused: if !(r.state == .scheduled && r.paused) { return false }
                case .leased: if r.state != .leased { return false }
                case .dead: if r.state != .dead { return false }
                }
            }
            return inRange((r.runAt, r.id))
        }
        func page(_ records: [TaskRecord]) -> TaskPage {
            guard records.count > limit else { return TaskPage(tasks: records, nextCursor: nil) }
            let tasks = Array(records.prefix(limit))
            let last = tasks[tasks.count - 1]
            return TaskPage(tasks: tasks, nextCursor: ListCursor.encode((last.runAt, last.id)))
        }

        // A group is read whole and sorted: O(group size).
        if let group = filter.group {
            var records: [TaskRecord] = []
            for id in try groupIDs(group) {
                if let t = try load(id), matches(t.record) { records.append(t.record) }
            }
            records.sort { positionPrecedes(($0.runAt, $0.id), ($1.runAt, $1.id)) }
            return page(Array(records.prefix(limit + 1)))
        }

        // Otherwise merge the indexes that can hold matching tasks, each already in (runAt, id) order.
        var streams: [PositionStream] = []
        defer { for s in streams { s.close() } }
        let txn = self.txn
        var startKey = ByteSink(capacity: 264)
        if let after, after.0 >= lower {
            startKey.timeKey(after.0)
            startKey.raw(after.1)
        } else {
            startKey.timeKey(lower)
        }
        let start = startKey.bytes

        func openIndex(_ db: LMDBDatabase) throws(StoreError) {
            let c = try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: db) }
            let s = PositionStream(source: .index(c))
            streams.append(s)
            try s.set(try lmdb { () throws(LMDBError) in try c.seek(start) })
        }

        func openCallback(_ n: UInt32) throws(StoreError) {
            let c = try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: dbs.callbackWake) }
            let s = PositionStream(source: .callback(c, n))
            streams.append(s)
            let first: (Int64, String) = if let after, after.0 >= lower { after } else { (lower, "") }
            s.head = try Self.callbackEntry(c, n, after: first)
        }

        let state = filter.state
        if let callback = filter.callback, state == .due || state == .pending {
            // A callback that was never numbered has no scheduled task: no stream, an empty page.
            if let n = try lookUpCallbackNumber(callback) { try openCallback(n) }
        } else {
            if state == nil || state == .due || state == .pending {
                // Unpaused scheduled tasks have no all-callback time index: one stream per callback that has any
                // (O(callbacks) cursors per page), or only the filter's callback (no state filter here).
                if let callback = filter.callback {
                    if let n = try lookUpCallbackNumber(callback) { try openCallback(n) }
                } else {
                    var numbers: [UInt32] = []
                    try withCursor(dbs.callbackWake) { (c) throws(StoreError) in
                        try Self.forEachCallbackHead(c) { (n, _) throws(StoreError) in numbers.append(n) }
                    }
                    for n in numbers { try openCallback(n) }
                }
            }
            // Leased tasks keep their `callback_wake` or `paused` entries, so those streams hold them.
            if state == nil || state == .paused { try openIndex(dbs.paused) }
            if state == nil || state == .dead { try openIndex(dbs.dead) }
            if state == .leased {
                // Leases are in memory, not in runAt order: collect and sort them (O(leased tasks)).
                var positions: [(Int64, String)] = []
                for (id, _) in allLeases() {
                    // A reader may see the lease of a task that a write in flight added and claimed: its
                    // snapshot does not have the task yet.
                    guard let t = try load(id) else { continue }
                    let p = (t.record.runAt, t.record.id)
                    if inRange(p) { positions.append(p) }
                }
                positions.sort { positionPrecedes($0, $1) }
                let s = PositionStream(source: .memory(positions, 0))
                s.head = positions.first
                streams.append(s)
            }
        }

        var records: [TaskRecord] = []
        while records.count <= limit {
            var best: PositionStream?
            for s in streams {
                guard let h = s.head else { continue }
                if let b = best?.head, !positionPrecedes(h, b) { continue }
                best = s
            }
            guard let s = best, let head = s.head else { break }
            if let upper, head.0 >= upper { break }
            try s.advance()
            guard inRange(head), let task = try load(head.1) else { continue }
            if matches(task.record) { records.append(task.record) }
        }
        return page(records)
    }

    // MARK: Statistics

    func stats(now: Int64, environment: LMDBEnvironment) throws(StoreError) -> StoreStats {
        var perCallback: [(String, CallbackCounts)] = []
        try withCursor(dbs.counts) { (c) throws(StoreError) in
            var entry = try lmdb { () throws(LMDBError) in try c.move(MDB_FIRST) }
            while let e = entry {
                guard let counts = CallbackCounts.decode(e.value) else { throw .corrupt("counter") }
                perCallback.append((String(decoding: e.key, as: UTF8.self), counts))
                entry = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            }
        }
        // The counters count leased tasks as scheduled or paused (as their records say): the leases are taken
        // out, each as the snapshot's record has it. Usually the lease table counts them as of this snapshot
        // (O(leases), in memory). When a commit came between the snapshot and the table's answer, each lease
        // is looked up in the snapshot instead (O(leases) lookups: ~2 µs each, 200 ms at 100k leases): a lease
        // may then name a task the snapshot does not have yet (added and claimed by a later write), which is
        // not counted.
        var leasedUnpaused: [NameKey: Int64] = [:]
        var leasedPaused: [NameKey: Int64] = [:]
        if let counts = leaseTable.leaseCounts(asOfTransaction: txn.id) {
            for (callback, count) in counts {
                leasedUnpaused[callback] = count.unpaused
                leasedPaused[callback] = count.paused
            }
        } else {
            for (id, _) in allLeases() {
                guard let task = try load(id) else { continue }
                if task.record.paused {
                    leasedPaused[NameKey(task.record.callback), default: 0] += 1
                } else {
                    leasedUnpaused[NameKey(task.record.callback), default: 0] += 1
                }
            }
        }
        var totals = CallbackCounts()
        var leasedTotal: Int64 = 0
        var dueTotal: UInt64 = 0
        var callbacks: [StoreCallbackStats] = []
        try withCursor(dbs.callbackWake) { (c) throws(StoreError) in
            for (name, var counts) in perCallback {
                let leased = (leasedUnpaused[NameKey(name)] ?? 0, leasedPaused[NameKey(name)] ?? 0)
                counts.scheduled -= leased.0
                counts.paused -= leased.1
                totals.add(counts)
                leasedTotal += leased.0 + leased.1
                // Due tasks are counted by walking the callback's part of `callback_wake` up to now, past the
                // leased entries: O(due and leased tasks).
                var due: UInt64 = 0
                if counts.scheduled > 0 {
                    guard let n = try lookUpCallbackNumber(name) else {
                        throw .corrupt("no number for callback \"\(name)\" with scheduled tasks")
                    }
                    var entries = try UnleasedEntries(c, n, leaseView)
                    while let t = entries.head?.runAt, t <= now {
                        due += 1
                        try entries.advance()
                    }
                }
                dueTotal += due
                callbacks.append(
                    StoreCallbackStats(
                        callback: name, scheduled: UInt64(max(0, counts.scheduled + counts.paused)), due: due,
                        leased: UInt64(max(0, leased.0 + leased.1)), dead: UInt64(max(0, counts.dead))))
            }
        }
        let info = environment.info()
        var fileBytes: UInt64 = 0
        if let fd = environment.fileDescriptor {
            var st = stat()
            if fstat(fd, &st) == 0 { fileBytes = UInt64(st.st_size) }
        }
        let scheduled = UInt64(max(0, totals.scheduled))
        return StoreStats(
            pending: scheduled >= dueTotal ? scheduled - dueTotal : 0, due: dueTotal,
            paused: UInt64(max(0, totals.paused)), leased: UInt64(max(0, leasedTotal)),
            dead: UInt64(max(0, totals.dead)), callbacks: callbacks, earliestRunAt: try earliestRunAt(),
            fileBytes: fileBytes, mapBytes: UInt64(info.mapSize), usedBytes: UInt64(info.usedBytes))
    }
}
