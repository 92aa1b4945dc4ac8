#if canImport(Glibc)
import Glibc
#endif
import CLMDB

/// The secondary indexes whose entries `StoreContext.save(old:new:)` changes (every database but `tasks`,
/// `meta`, `counts` and `callback_numbers`).
enum IndexKind: Int, CaseIterable {
    case wake = 0
    case callbackWake
    case paused
    case leases
    case dead
    case groups
}

/// Index changes of one operation, collected by `StoreContext.save(old:new:)` and applied at the end of the
/// operation (`StoreContext.flushIndexes()`), sorted by key per index.
///
/// Why: a batch of tasks with random run times inserts at random places of the time-keyed indexes; in key
/// order the same inserts walk each B-tree once from left to right, and those above the index's last key are
/// appended (`MDB_APPEND`: no search, full pages). Adding 100k random-time tasks to an empty store then costs
/// what ascending times cost.
///
/// Entries of one index are applied in (key, arrival) order, so a delete and a put of the same key within one
/// operation keep their order.
final class IndexWriteBuffer {
    /// One pending change: the key lives in `arena`; `high`/`low` are its first 16 bytes (big-endian, zero
    /// padded) so that most comparisons are two integer compares.
    struct Change {
        var high: UInt64
        var low: UInt64
        var start: Int32
        var count: Int32
        var sequence: Int32
        var isPut: Bool
        /// Bytes of the put's value, stored in `arena` right after the key (`leases`: the holder; 0 bytes for
        /// the other indexes).
        var valueCount: Int32
    }

    private(set) var arena: [UInt8] = []
    private var changes: [[Change]] = Array(repeating: [], count: IndexKind.allCases.count)
    private var sequence: Int32 = 0
    /// Scratch for the last key of an index while appending.
    private var lastKey: [UInt8] = []

    var isEmpty: Bool { sequence == 0 }

    /// Starts a key: the caller appends its bytes with the `append` methods, then calls `finish`.
    @inline(__always)
    func begin() -> Int { arena.count }

    @inline(__always)
    func appendTime(_ t: Int64) {
        let ordered = (UInt64(bitPattern: t) ^ (1 << 63)).bigEndian
        withUnsafeBytes(of: ordered) { arena.append(contentsOf: $0.assumingMemoryBound(to: UInt8.self)) }
    }

    @inline(__always)
    func appendU32BE(_ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { arena.append(contentsOf: $0.assumingMemoryBound(to: UInt8.self)) }
    }

    @inline(__always)
    func appendU8(_ v: UInt8) { arena.append(v) }

    @inline(__always)
    func appendString(_ s: String) {
        var s = s
        s.withUTF8 { arena.append(contentsOf: $0) }
    }

    /// Records the key begun at `start` as a put (with an optional 8-byte little-endian value) or a delete.
    func finish(_ index: IndexKind, start: Int, isPut: Bool, value: UInt64? = nil) {
        let count = arena.count - start
        var high: UInt64 = 0
        var low: UInt64 = 0
        arena.withUnsafeBytes { a in
            for i in 0..<min(count, 16) {
                let b = UInt64(a[start + i])
                if i < 8 { high |= b << (56 - 8 * UInt64(i)) } else { low |= b << (56 - 8 * UInt64(i - 8)) }
            }
        }
        var valueCount: Int32 = 0
        if let value {
            withUnsafeBytes(of: value.littleEndian) { arena.append(contentsOf: $0.assumingMemoryBound(to: UInt8.self)) }
            valueCount = 8
        }
        changes[index.rawValue].append(
            Change(
                high: high, low: low, start: Int32(start), count: Int32(count), sequence: sequence, isPut: isPut,
                valueCount: valueCount))
        sequence += 1
    }

    /// Forgets every pending change (the transaction is being aborted, or the indexes were emptied).
    func discard() {
        for i in changes.indices { changes[i].removeAll(keepingCapacity: true) }
        arena.removeAll(keepingCapacity: true)
        sequence = 0
    }

    /// Applies the pending changes in key order per index and empties the buffer.
    ///
    /// - Throws: `LMDBError` from LMDB (`MDB_MAP_FULL`, ...); the buffer is emptied either way (the caller then
    ///   aborts the transaction, or poisons the batch).
    func apply(_ txn: LMDBTransaction, _ dbs: StoreDatabases) throws(LMDBError) {
        guard !isEmpty else { return }
        defer { discard() }
        for kind in IndexKind.allCases where !changes[kind.rawValue].isEmpty {
            var list = changes[kind.rawValue]
            changes[kind.rawValue] = []
            defer {
                list.removeAll(keepingCapacity: true)
                changes[kind.rawValue] = list
            }
            let db = dbs.index(kind)
            let result: Result<Void, LMDBError> = arena.withUnsafeBytes { a in
                if list.count > 1 {
                    list.sort { x, y in
                        if x.high != y.high { return x.high < y.high }
                        if x.low != y.low { return x.low < y.low }
                        let c = Self.compare(a, x, y)
                        return c != 0 ? c < 0 : x.sequence < y.sequence
                    }
                }
                return Result { () throws(LMDBError) in try applySorted(list, a, txn, db) }
            }
            try result.get()
        }
    }

    /// LMDB's default key order: bytes, then length.
    @inline(__always)
    private static func compare(_ a: UnsafeRawBufferPointer, _ x: Change, _ y: Change) -> Int32 {
        let n = Int(min(x.count, y.count))
        let c = memcmp(a.baseAddress! + Int(x.start), a.baseAddress! + Int(y.start), n)
        if c != 0 { return c }
        return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
    }

    /// Few changes go through `mdb_put`/`mdb_del` (no cursor to allocate); many go through one cursor, appending
    /// while keys sort after the index's last key.
    private func applySorted(
        _ list: [Change], _ a: UnsafeRawBufferPointer, _ txn: LMDBTransaction, _ db: LMDBDatabase
    ) throws(LMDBError) {
        if list.count < 8 {
            for c in list {
                let key = UnsafeRawBufferPointer(rebasing: a[Int(c.start)..<Int(c.start + c.count)])
                if c.isPut {
                    try txn.put(db, rawKey: key, rawValue: Self.value(a, c))
                } else {
                    _ = try txn.delete(db, rawKey: key, rawValue: nil)
                }
            }
            return
        }
        let cursor = try LMDBCursor(transaction: txn, database: db)
        defer { cursor.close() }
        // The index's last key: puts above it are appended.
        lastKey.removeAll(keepingCapacity: true)
        var hasLast = false
        if let last = try cursor.move(MDB_LAST) {
            lastKey.append(contentsOf: last.key.assumingMemoryBound(to: UInt8.self))
            hasLast = true
        }
        for c in list {
            let key = UnsafeRawBufferPointer(rebasing: a[Int(c.start)..<Int(c.start + c.count)])
            if c.isPut {
                let value = Self.value(a, c)
                let above = !hasLast || lastKey.withUnsafeBytes { Self.precedes($0, key) }
                if above, try cursor.append(rawKey: key, rawValue: value) {
                    lastKey.removeAll(keepingCapacity: true)
                    lastKey.append(contentsOf: key.assumingMemoryBound(to: UInt8.self))
                    hasLast = true
                } else {
                    try cursor.put(rawKey: key, rawValue: value)
                }
            } else if try cursor.seek(exactRawKey: key) != nil {
                try cursor.deleteCurrent()
                // The last key may have been the one deleted; appending needs it exact only as an upper bound
                // of what is stored, which a deletion keeps true.
            }
        }
    }

    @inline(__always)
    private static func value(_ a: UnsafeRawBufferPointer, _ c: Change) -> UnsafeRawBufferPointer {
        let start = Int(c.start + c.count)
        return UnsafeRawBufferPointer(rebasing: a[start..<start + Int(c.valueCount)])
    }

    /// Whether `x` sorts before `y` in LMDB's default order.
    @inline(__always)
    private static func precedes(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Bool {
        let n = min(x.count, y.count)
        let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
        return c != 0 ? c < 0 : x.count < y.count
    }
}
