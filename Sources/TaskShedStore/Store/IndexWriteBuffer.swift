#if canImport(Glibc)
import Glibc
#endif
import CLMDB

/// The secondary indexes whose entries `StoreContext.save(old:new:)` changes (every database but `tasks`,
/// `meta`, `counts` and `callback_numbers`).
enum IndexKind: Int, CaseIterable {
    case callbackWake = 0
    case paused
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
/// Changes of one index are applied in (key, arrival) order, so a delete and a put of the same key within one
/// operation keep their order. A value type inside `StoreContext`: its accesses are checked statically (as a
/// class its every property access paid a runtime exclusivity check, ~8 % of a batched add).
struct IndexWriteBuffer {
    /// One pending change. The key lives in `arena` at `start`; `high`/`low`/`tail` are the key's first 24
    /// bytes (big-endian, zero padded) so that most comparisons are integer compares. Why 24: a
    /// `callback_wake` key is a callback number, a time and an id, and the generated ids of tasks due in one
    /// millisecond share their first 8 bytes (that millisecond), so keys of one callback and time tie on 20
    /// bytes. `start` grows with arrival, so it also orders equal keys.
    struct Change {
        var high: UInt64
        var low: UInt64
        var tail: UInt64
        var start: Int
        var count: UInt16
        var isPut: Bool
    }

    /// Key bytes; `arena[0..<used]` is in use (the rest is spare capacity, so that writing a key is one
    /// bounds-checked copy instead of appends).
    private var arena: [UInt8] = Array(repeating: 0, count: 4096)
    private var used = 0
    private var changes: [[Change]] = Array(repeating: [], count: IndexKind.allCases.count)
    /// Scratch copy of an index's last key while applying.
    private var lastKey: [UInt8] = []

    var isEmpty: Bool { used == 0 }

    /// Whether every pending change is a deletion (an empty buffer too). Deletions may wait past the end of
    /// their operation (see `LMDBWriteBatch`): an index entry whose deletion is pending belongs to a task whose
    /// record is already gone or changed, and every reader of an index inside a write transaction loads the
    /// record and checks it against the entry (`StoreContext.loadSelected`) before trusting it.
    private(set) var onlyDeletions = true

    /// Bytes queued (keys). `StoreContext.save` applies the queue early past
    /// `StoreContext.indexQueueLimit`, so that one huge operation does not hold all its keys in memory.
    var queuedBytes: Int { used }

    // MARK: Collecting

    /// Queues a put or delete of `time ++ id` in a time-keyed index.
    @inline(__always)
    mutating func time(_ kind: IndexKind, put: Bool, _ t: Int64, _ id: String) {
        record(kind, put: put, number: nil, group: nil, time: t, id: id)
    }

    /// Queues a put or delete of `number ++ time ++ id` in `callback_wake`.
    @inline(__always)
    mutating func callback(put: Bool, _ number: UInt32, _ t: Int64, _ id: String) {
        record(.callbackWake, put: put, number: number, group: nil, time: t, id: id)
    }

    /// Queues a put or delete of `len(group) ++ group ++ id` in `groups`.
    @inline(__always)
    mutating func group(put: Bool, _ group: String, _ id: String) {
        record(.groups, put: put, number: nil, group: group, time: nil, id: id)
    }

    private mutating func record(
        _ kind: IndexKind, put: Bool, number: UInt32?, group: String?, time: Int64?, id: String
    ) {
        var id = id
        var group = group
        let groupCount = group?.utf8.count ?? 0
        let count = (number == nil ? 0 : 4) + (group == nil ? 0 : 1 + groupCount) + (time == nil ? 0 : 8)
            + id.utf8.count
        let start = used
        if start + count > arena.count { grow(to: start + count) }
        let (high, low, tail) = arena.withUnsafeMutableBytes { a -> (UInt64, UInt64, UInt64) in
            var p = a.baseAddress! + start
            if let number {
                p.storeBytes(of: number.bigEndian, as: UInt32.self)
                p += 4
            }
            if group != nil {
                p.storeBytes(of: UInt8(truncatingIfNeeded: groupCount), as: UInt8.self)
                p += 1
                group!.withUTF8 { g in
                    if g.count > 0 { memcpy(p, g.baseAddress!, g.count) }
                }
                p += groupCount
            }
            if let time {
                p.storeBytes(of: (UInt64(bitPattern: time) ^ (1 << 63)).bigEndian, as: UInt64.self)
                p += 8
            }
            let idCount = id.withUTF8 { s in
                if s.count > 0 { memcpy(p, s.baseAddress!, s.count) }
                return s.count
            }
            p += idCount
            let key = UnsafeRawPointer(a.baseAddress! + start)
            // Whole 8-byte words load at once (a `paused` key of a generated id is 23 bytes: two words and 7
            // bytes), the rest of the first 24 bytes byte by byte.
            var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
            let whole = min(count / 8, 3)
            if whole >= 1 { words.0 = UInt64(bigEndian: key.loadUnaligned(as: UInt64.self)) }
            if whole >= 2 { words.1 = UInt64(bigEndian: key.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
            if whole >= 3 { words.2 = UInt64(bigEndian: key.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) }
            for i in (whole * 8)..<min(count, 24) {
                let b = UInt64(key.load(fromByteOffset: i, as: UInt8.self)) << (56 - 8 * UInt64(i % 8))
                switch i / 8 {
                case 0: words.0 |= b
                case 1: words.1 |= b
                default: words.2 |= b
                }
            }
            return words
        }
        used = start + count
        if put { onlyDeletions = false }
        changes[kind.rawValue].append(
            Change(high: high, low: low, tail: tail, start: start, count: UInt16(count), isPut: put))
    }

    /// Makes room for about `bytes` more key bytes and `changes` more changes of `kind` (a batch knows its
    /// size: growing step by step copied the arena a dozen times for 100k tasks).
    mutating func reserve(bytes: Int, changes count: Int, of kinds: [IndexKind]) {
        if used + bytes > arena.count { grow(to: used + bytes) }
        for kind in kinds { changes[kind.rawValue].reserveCapacity(changes[kind.rawValue].count + count) }
    }

    /// Grows the arena to at least `needed` bytes (at least doubling), copying what is in use.
    private mutating func grow(to needed: Int) {
        let capacity = max(needed, arena.count * 2)
        let old = arena
        let used = self.used
        arena = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            old.withUnsafeBytes { o in
                if used > 0 { memcpy(buffer.baseAddress!, o.baseAddress!, used) }
            }
            memset(buffer.baseAddress! + used, 0, capacity - used)
            initialized = capacity
        }
    }

    /// Forgets every pending change (the transaction is being aborted, or the indexes were emptied).
    mutating func discard() {
        for i in changes.indices where !changes[i].isEmpty { changes[i].removeAll(keepingCapacity: true) }
        used = 0
        onlyDeletions = true
    }

    // MARK: Applying

    /// Applies the pending changes in key order per index and empties the buffer.
    ///
    /// - Throws: `LMDBError` from LMDB (`MDB_MAP_FULL`, ...); the buffer is emptied either way (the caller then
    ///   aborts the transaction, or poisons the batch).
    mutating func apply(_ txn: LMDBTransaction, _ dbs: StoreDatabases) throws(LMDBError) {
        guard !isEmpty else { return }
        defer { discard() }
        for kind in IndexKind.allCases where !changes[kind.rawValue].isEmpty {
            var list = changes[kind.rawValue]
            changes[kind.rawValue] = []
            let db = dbs.index(kind)
            var scratch = lastKey
            lastKey = []
            let result: Result<Void, LMDBError> = arena.withUnsafeBytes { a in
                Self.order(&list, kind, a)
                return Result { () throws(LMDBError) in try Self.applySorted(list, a, txn, db, &scratch) }
            }
            list.removeAll(keepingCapacity: true)
            changes[kind.rawValue] = list
            lastKey = scratch
            try result.get()
        }
    }

    /// The pending changes of `kind` (key and whether it is a put) in the order `apply` would apply them (for
    /// tests of the sort).
    func applyOrder(_ kind: IndexKind) -> [(key: [UInt8], isPut: Bool)] {
        var list = changes[kind.rawValue]
        return arena.withUnsafeBytes { a in
            Self.order(&list, kind, a)
            return list.map { (Array(Self.key(a, $0)), $0.isPut) }
        }
    }

    /// Puts `list` in `precedes` order, unless it arrived so.
    private static func order(_ list: inout [Change], _ kind: IndexKind, _ a: UnsafeRawBufferPointer) {
        guard !isSorted(list[...], a) else { return }
        if kind == .callbackWake {
            sortByCallback(&list, a)
        } else {
            list.sort { x, y in precedes(x, y, a) }
        }
    }

    /// (key, arrival) order; keys in LMDB's default order (bytes, then length).
    @inline(__always)
    private static func precedes(_ x: Change, _ y: Change, _ a: UnsafeRawBufferPointer) -> Bool {
        if x.high != y.high { return x.high < y.high }
        if x.low != y.low { return x.low < y.low }
        if x.tail != y.tail { return x.tail < y.tail }
        let c = compare(a.baseAddress! + Int(x.start), Int(x.count), a.baseAddress! + Int(y.start), Int(y.count))
        return c != 0 ? c < 0 : x.start < y.start
    }

    /// Whether the changes already arrived in order (ascending times, one change): the sort is skipped.
    private static func isSorted(_ list: ArraySlice<Change>, _ a: UnsafeRawBufferPointer) -> Bool {
        var i = list.startIndex + 1
        while i < list.endIndex {
            if !precedes(list[i - 1], list[i], a) { return false }
            i += 1
        }
        return true
    }

    /// Sorts `callback_wake` changes in `precedes` order: a stable counting sort by callback number (a key's
    /// first 4 bytes, the top of `high`) when at most 16 numbers occur, then a sort of each number's changes
    /// only if they did not arrive in order; a comparison sort of the whole list otherwise.
    ///
    /// Why: the acks of a claim queue their entries' deletions in claim order, which interleaves each
    /// callback's entries, each callback's in key order. A comparison sort of the whole list cost ~400
    /// instructions per ack; this is two passes over it.
    private static func sortByCallback(_ list: inout [Change], _ a: UnsafeRawBufferPointer) {
        // Through unsafe buffers: array writes in these loops checked uniqueness about a dozen times per change.
        var numbers: [UInt64] = []
        numbers.reserveCapacity(16)
        var counts = [Int](repeating: 0, count: 16)
        var tooMany = false
        let group = list.withUnsafeBufferPointer { l in
            [UInt8](unsafeUninitializedCapacity: l.count) { g, initialized in
                counts.withUnsafeMutableBufferPointer { counts in
                    for (j, c) in l.enumerated() {
                        let n = c.high >> 32
                        let i: Int
                        if let found = numbers.firstIndex(of: n) {
                            i = found
                        } else {
                            guard numbers.count < 16 else { return tooMany = true }
                            i = numbers.count
                            numbers.append(n)
                        }
                        counts[i] += 1
                        g[j] = UInt8(i)
                    }
                }
                initialized = tooMany ? 0 : l.count
            }
        }
        guard !tooMany else { return list.sort { x, y in precedes(x, y, a) } }
        // Each number's first slot, numbers ascending; then each change into its number's next slot.
        var starts = [Int](repeating: 0, count: numbers.count)
        var next = 0
        for i in numbers.indices.sorted(by: { numbers[$0] < numbers[$1] }) {
            starts[i] = next
            next += counts[i]
        }
        let firsts = starts
        var sorted = list.withUnsafeBufferPointer { l in
            [Change](unsafeUninitializedCapacity: l.count) { out, initialized in
                starts.withUnsafeMutableBufferPointer { starts in
                    for (j, c) in l.enumerated() {
                        let i = Int(group[j])
                        (out.baseAddress! + starts[i]).initialize(to: c)
                        starts[i] += 1
                    }
                }
                initialized = l.count
            }
        }
        for i in numbers.indices where !isSorted(sorted[firsts[i]..<starts[i]], a) {
            sorted[firsts[i]..<starts[i]].sort { x, y in precedes(x, y, a) }
        }
        list = sorted
    }

    @inline(__always)
    private static func compare(_ x: UnsafeRawPointer, _ xn: Int, _ y: UnsafeRawPointer, _ yn: Int) -> Int32 {
        let n = min(xn, yn)
        let c = n == 0 ? 0 : memcmp(x, y, n)
        if c != 0 { return c }
        return xn < yn ? -1 : (xn > yn ? 1 : 0)
    }

    @inline(__always)
    private static func key(_ a: UnsafeRawBufferPointer, _ c: Change) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: a.baseAddress! + Int(c.start), count: Int(c.count))
    }

    /// The value of every index entry: none.
    private static var emptyValue: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// Few changes go through `mdb_put`/`mdb_del` (no cursor to allocate); many go through one cursor, appending
    /// while keys sort after the index's last key.
    private static func applySorted(
        _ list: [Change], _ a: UnsafeRawBufferPointer, _ txn: LMDBTransaction, _ db: LMDBDatabase,
        _ lastKey: inout [UInt8]
    ) throws(LMDBError) {
        if list.count < 8 {
            for c in list {
                if c.isPut {
                    try txn.put(db, rawKey: key(a, c), rawValue: emptyValue)
                } else {
                    _ = try txn.delete(db, rawKey: key(a, c), rawValue: nil)
                }
            }
            return
        }
        let cursor = try LMDBCursor(transaction: txn, database: db)
        defer { cursor.close() }
        // An upper bound of the index's keys: puts above it are appended. It starts as the index's last key and
        // then is the last appended key (deletions only lower the true last key, so it stays an upper bound).
        lastKey.removeAll(keepingCapacity: true)
        var hasLast = false
        if let last = try cursor.move(MDB_LAST) {
            lastKey.append(contentsOf: last.key.assumingMemoryBound(to: UInt8.self))
            hasLast = true
        }
        var appended: Change?
        var deletedLast = false
        for c in list {
            let k = key(a, c)
            if c.isPut {
                let above: Bool
                if let appended {
                    // The 24-byte prefixes decide unless equal (a compare of the bytes would be a cache miss:
                    // in key order the arena is read at random places).
                    if appended.high != c.high || appended.low != c.low || appended.tail != c.tail {
                        above = (appended.high, appended.low, appended.tail) < (c.high, c.low, c.tail)
                    } else {
                        let b = key(a, appended)
                        above = compare(b.baseAddress!, b.count, k.baseAddress!, k.count) < 0
                    }
                } else if hasLast {
                    above = lastKey.withUnsafeBytes { l in
                        compare(l.baseAddress!, l.count, k.baseAddress!, k.count) < 0
                    }
                } else {
                    above = true
                }
                if above, try cursor.append(rawKey: k, rawValue: emptyValue) {
                    appended = c
                } else {
                    try cursor.put(rawKey: k, rawValue: emptyValue)
                }
                deletedLast = false
            } else {
                // Deletions in key order are often neighbours (a claim takes the front of each
                // callback's part of `callback_wake`): after a deletion the cursor's next entry is the one that
                // followed, so compare it before searching the tree again.
                var found = false
                if deletedLast, let next = try? cursor.move(MDB_NEXT),
                    compare(next.key.baseAddress!, next.key.count, k.baseAddress!, k.count) == 0
                {
                    found = true
                } else {
                    found = try cursor.seek(exactRawKey: k) != nil
                }
                if found { try cursor.deleteCurrent() }
                deletedLast = found
            }
        }
    }
}
