import CLMDB
import TaskShedProtocol

/// The run history of `LMDBTaskStore` (LAYOUT.md, "Run history").
///
/// `history` maps `seq` (u64 big-endian, so newer entries sort last and are appended) to the entry;
/// `history_by_task` maps (id length u8, id, `seq`) to nothing, so one task's entries are a key range. An entry
/// is written and dropped with its by-task key in the same transaction.
extension StoreContext {
    /// Format byte of a stored entry.
    private static let historyFormat: UInt8 = 1
    /// Entries dropped by age or count per `recordRuns`, past the ones the new entries push out: ageing catches
    /// up over a few commits instead of one commit deleting a week of history.
    private static let ageOutPerRecord = 256

    /// Appends `runs` and drops what the limits no longer keep. See `TaskStoreWriteBatch.recordRuns`.
    mutating func recordRuns(_ runs: [RunEntry], now: Int64) throws(StoreError) {
        let limits = options.history
        guard limits.records, !runs.isEmpty else { return }
        let txn = self.txn
        let dbs = self.dbs
        writes += 1
        var seq = try lastHistorySeq()
        var value = ByteSink(capacity: 256)
        let entries = try withHistoryCursor(dbs.history) { (cursor) throws(StoreError) -> [(UInt64, RunEntry)] in
            var out: [(UInt64, RunEntry)] = []
            out.reserveCapacity(runs.count)
            for run in runs {
                seq &+= 1
                var key = ByteSink(capacity: 8)
                key.u64BE(seq)
                value.reset()
                Self.encodeHistory(run, into: &value)
                let appended = try key.withBytes { (k) throws(StoreError) -> Bool in
                    try value.withBytes { (v) throws(StoreError) -> Bool in
                        try lmdb { () throws(LMDBError) in try cursor.append(rawKey: k, rawValue: v) }
                    }
                }
                guard appended else { throw .corrupt("run history: seq \(seq) does not sort after the last entry") }
                out.append((seq, run))
            }
            return out
        }
        for (seq, run) in entries {
            let key = Self.byTaskKey(run.taskID, seq)
            try lmdb { () throws(LMDBError) in try txn.put(dbs.historyByTask, key: key, value: []) }
            try trimTask(run.taskID, keeping: limits.perTask)
        }
        try trimStore(limits, now: now, budget: runs.count + Self.ageOutPerRecord)
    }

    /// Run history, newest first. See `TaskStore.history`.
    func history(_ query: HistoryQuery, now: Int64) throws(StoreError) -> HistoryPage {
        guard query.limit > 0 else {
            throw StoreError(code: .invalidArgument, field: "limit", message: "limit must be at least 1")
        }
        let limits = options.history
        let oldest = now &- limits.maxAgeMicros
        let want = Int(query.limit)
        var runs: [RunEntry] = []
        var more = false
        // One more match than the page holds tells whether an older page exists.
        let keep: (RunEntry) -> Bool = { entry in
            guard entry.finishedAt >= oldest, query.matches(entry) else { return false }
            if runs.count == want {
                more = true
                return false
            }
            runs.append(entry)
            return true
        }
        if let taskID = query.taskID {
            try forEachTaskEntry(taskID, before: query.before) { (entry) throws(StoreError) in
                _ = keep(entry)
                return !more
            }
        } else {
            try forEachEntry(before: query.before) { (entry) throws(StoreError) in
                // Entries are appended as runs end, so `finishedAt` grows with `seq` up to clock steps: the walk
                // stops at the first entry past the age bound.
                if entry.finishedAt < oldest { return false }
                _ = keep(entry)
                return !more
            }
        }
        return HistoryPage(runs: runs, nextBefore: more ? runs.last?.seq : nil)
    }

    /// Entries in the whole store.
    func historyCount() throws(StoreError) -> Int {
        let txn = self.txn
        let db = dbs.history
        return try lmdb { () throws(LMDBError) in try txn.entryCount(db) }
    }

    // MARK: Trimming

    /// Drops the oldest entries of task `id` past `keeping`.
    private mutating func trimTask(_ id: String, keeping: Int) throws(StoreError) {
        let prefix = Self.byTaskPrefix(id)
        var seqs: [UInt64] = []
        try withHistoryCursor(dbs.historyByTask) { (cursor) throws(StoreError) in
            var entry = try lmdb { () throws(LMDBError) in try cursor.seek(prefix) }
            while let (key, _) = entry, let seq = Self.seq(ofByTaskKey: key, prefix: prefix) {
                seqs.append(seq)
                entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_NEXT) }
            }
        }
        guard seqs.count > keeping else { return }
        for seq in seqs.prefix(seqs.count - keeping) { try dropEntry(seq, taskID: id) }
    }

    /// Drops the store's oldest entries while there are more than `maxRuns` or they ended before the age
    /// bound, at most `budget` of them.
    private mutating func trimStore(_ limits: HistoryLimits, now: Int64, budget: Int) throws(StoreError) {
        var count = try historyCount()
        let oldest = now &- limits.maxAgeMicros
        var dropped = 0
        while dropped < budget, count > 0 {
            guard let (seq, entry) = try firstEntry() else { return }
            guard count > limits.maxRuns || entry.finishedAt < oldest else { return }
            try dropEntry(seq, taskID: entry.taskID)
            count -= 1
            dropped += 1
        }
    }

    private func dropEntry(_ seq: UInt64, taskID: String) throws(StoreError) {
        let txn = self.txn
        let dbs = self.dbs
        var key = ByteSink(capacity: 8)
        key.u64BE(seq)
        let k = key.bytes
        let byTask = Self.byTaskKey(taskID, seq)
        try lmdb { () throws(LMDBError) in
            _ = try txn.delete(dbs.history, key: k)
            _ = try txn.delete(dbs.historyByTask, key: byTask)
        }
    }

    // MARK: Walks

    private func lastHistorySeq() throws(StoreError) -> UInt64 {
        try withHistoryCursor(dbs.history) { (cursor) throws(StoreError) -> UInt64 in
            guard let (key, _) = try lmdb({ () throws(LMDBError) in try cursor.move(MDB_LAST) }) else { return 0 }
            return Self.seq(key)
        }
    }

    private func firstEntry() throws(StoreError) -> (UInt64, RunEntry)? {
        try withHistoryCursor(dbs.history) { (cursor) throws(StoreError) -> (UInt64, RunEntry)? in
            guard let (key, value) = try lmdb({ () throws(LMDBError) in try cursor.move(MDB_FIRST) }) else { return nil }
            let seq = Self.seq(key)
            return (seq, try Self.decodeHistory(seq, value))
        }
    }

    /// Calls `body` with the store's entries older than `before`, newest first, until it returns `false`.
    private func forEachEntry(before: UInt64?, _ body: (RunEntry) throws(StoreError) -> Bool) throws(StoreError) {
        try withHistoryCursor(dbs.history) { (cursor) throws(StoreError) in
            var entry: LMDBCursor.Entry?
            if let before {
                var key = ByteSink(capacity: 8)
                key.u64BE(before)
                let k = key.bytes
                // The first key >= `before`, then one back; none >= it: start from the last.
                if try lmdb({ () throws(LMDBError) in try cursor.seek(k) }) != nil {
                    entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_PREV) }
                } else {
                    entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_LAST) }
                }
            } else {
                entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_LAST) }
            }
            while let (key, value) = entry {
                let seq = Self.seq(key)
                guard try body(try Self.decodeHistory(seq, value)) else { return }
                entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_PREV) }
            }
        }
    }

    /// Calls `body` with task `id`'s entries older than `before`, newest first, until it returns `false`.
    private func forEachTaskEntry(_ id: String, before: UInt64?, _ body: (RunEntry) throws(StoreError) -> Bool)
        throws(StoreError)
    {
        let prefix = Self.byTaskPrefix(id)
        var seqs: [UInt64] = []
        try withHistoryCursor(dbs.historyByTask) { (cursor) throws(StoreError) in
            var entry = try lmdb { () throws(LMDBError) in try cursor.seek(prefix) }
            while let (key, _) = entry, let seq = Self.seq(ofByTaskKey: key, prefix: prefix) {
                if before.map({ seq < $0 }) ?? true { seqs.append(seq) }
                entry = try lmdb { () throws(LMDBError) in try cursor.move(MDB_NEXT) }
            }
        }
        let txn = self.txn
        let db = dbs.history
        for seq in seqs.reversed() {
            var key = ByteSink(capacity: 8)
            key.u64BE(seq)
            let k = key.bytes
            guard let value = try lmdb({ () throws(LMDBError) in try txn.get(db, key: k) }) else {
                throw .corrupt("run history: by-task entry \(seq) of \"\(id)\" without its entry")
            }
            guard try body(try Self.decodeHistory(seq, value)) else { return }
        }
    }

    /// `withCursor` for the history's databases, which have no pending index changes to wait for.
    private func withHistoryCursor<R>(_ db: LMDBDatabase, _ body: (LMDBCursor) throws(StoreError) -> R)
        throws(StoreError) -> R
    {
        let txn = self.txn
        let cursor = try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: db) }
        defer { cursor.close() }
        return try body(cursor)
    }

    // MARK: Keys and values

    private static func byTaskPrefix(_ id: String) -> [UInt8] {
        var sink = ByteSink(capacity: 1 + id.utf8.count + 8)
        sink.u8(UInt8(truncatingIfNeeded: id.utf8.count))
        sink.raw(id)
        return sink.bytes
    }

    private static func byTaskKey(_ id: String, _ seq: UInt64) -> [UInt8] {
        var key = byTaskPrefix(id)
        withUnsafeBytes(of: seq.bigEndian) { key.append(contentsOf: $0) }
        return key
    }

    /// The `seq` of a by-task key of the task `prefix` names, or `nil` for another task's key.
    private static func seq(ofByTaskKey key: UnsafeRawBufferPointer, prefix: [UInt8]) -> UInt64? {
        guard key.count == prefix.count + 8,
              prefix.withUnsafeBytes({ bytesEqual(UnsafeRawBufferPointer(rebasing: key[..<prefix.count]), $0) })
        else { return nil }
        return seq(UnsafeRawBufferPointer(rebasing: key[prefix.count...]))
    }

    private static func seq(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var v: UInt64 = 0
        for byte in key.prefix(8) { v = v << 8 | UInt64(byte) }
        return v
    }

    static func encodeHistory(_ run: RunEntry, into sink: inout ByteSink) {
        sink.u8(historyFormat)
        sink.u8(run.outcome.rawValue)
        sink.u8(run.then.rawValue)
        sink.u32LE(run.attempt)
        sink.i64LE(run.scheduledAt)
        sink.i64LE(run.deliveredAt ?? .min)
        sink.i64LE(run.finishedAt)
        sink.u32LE(run.workerPID)
        sink.u32LE(run.workerUID)
        for text in [run.taskID, run.callback, run.workerName, run.daemon] {
            sink.u16LE(UInt16(truncatingIfNeeded: text.utf8.count))
            sink.raw(text)
        }
        if let error = run.error {
            sink.u8(1)
            sink.u16LE(UInt16(truncatingIfNeeded: error.utf8.count))
            sink.raw(error)
        } else {
            sink.u8(0)
        }
    }

    static func decodeHistory(_ seq: UInt64, _ value: UnsafeRawBufferPointer) throws(StoreError) -> RunEntry {
        var s = ByteSource(value)
        guard s.u8() == historyFormat,
              let outcome = s.u8().flatMap(RunOutcome.init(rawValue:)),
              let then = s.u8().flatMap(RunFollowUp.init(rawValue:)),
              let attempt = s.u32LE(), let scheduledAt = s.i64LE(), let deliveredAt = s.i64LE(),
              let finishedAt = s.i64LE(), let pid = s.u32LE(), let uid = s.u32LE()
        else { throw .corrupt("run history entry \(seq)") }
        var texts: [String] = []
        for _ in 0..<4 {
            guard let n = s.u16LE(), let text = s.string(Int(n)) else { throw .corrupt("run history entry \(seq)") }
            texts.append(text)
        }
        var error: String?
        switch s.u8() {
        case 0: error = nil
        case 1:
            guard let n = s.u16LE(), let text = s.string(Int(n)) else { throw .corrupt("run history entry \(seq)") }
            error = text
        default: throw .corrupt("run history entry \(seq)")
        }
        return RunEntry(seq: seq, taskID: texts[0], callback: texts[1], attempt: attempt, scheduledAt: scheduledAt,
                        deliveredAt: deliveredAt == .min ? nil : deliveredAt, finishedAt: finishedAt,
                        outcome: outcome, then: then, error: error, workerName: texts[2], workerPID: pid,
                        workerUID: uid, daemon: texts[3])
    }
}
