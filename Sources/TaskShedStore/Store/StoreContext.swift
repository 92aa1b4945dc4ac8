import CLMDB
import TaskShedProtocol

/// The named databases of a store (see LAYOUT.md).
struct StoreDatabases {
    let meta: LMDBDatabase
    let tasks: LMDBDatabase
    let callbackWake: LMDBDatabase
    let callbackNumbers: LMDBDatabase
    let paused: LMDBDatabase
    let dead: LMDBDatabase
    let groups: LMDBDatabase
    let counts: LMDBDatabase
    /// Run history: `seq` (u64 big-endian) → entry (`StoreContext+History`).
    let history: LMDBDatabase
    /// Run history by task: id length (u8), id, `seq` (u64 big-endian) → empty.
    let historyByTask: LMDBDatabase

    /// Every database holding tasks or indexes (all but `meta` and the history, which outlives the tasks).
    var taskDatabases: [LMDBDatabase] {
        [tasks, callbackWake, callbackNumbers, paused, dead, groups, counts]
    }

    /// The database of a secondary index.
    @inline(__always)
    func index(_ kind: IndexKind) -> LMDBDatabase {
        switch kind {
        case .callbackWake: return callbackWake
        case .paused: return paused
        case .dead: return dead
        case .groups: return groups
        }
    }
}

/// Per-callback counters, stored in the `counts` database and adjusted in the transaction that changes tasks.
/// They count records: a leased task counts as scheduled (or paused), as its record says; `stats` subtracts
/// the leases (`LeaseTable`).
struct CallbackCounts: Equatable {
    /// Scheduled (or leased) and not paused.
    var scheduled: Int64 = 0
    /// Scheduled (or leased) and paused.
    var paused: Int64 = 0
    var dead: Int64 = 0

    var isZero: Bool { self == CallbackCounts() }

    /// Which counter a task adds to: 0 scheduled, 1 paused, 2 dead.
    static func category(_ task: StoredTask) -> Int {
        switch task.record.state {
        case .scheduled, .leased: return task.record.paused ? 1 : 0
        case .dead: return 2
        }
    }

    mutating func add(_ task: StoredTask, _ sign: Int64) {
        add(category: Self.category(task), sign)
    }

    mutating func add(category: Int, _ sign: Int64) {
        switch category {
        case 0: scheduled += sign
        case 1: paused += sign
        default: dead += sign
        }
    }

    mutating func add(_ other: CallbackCounts) {
        scheduled += other.scheduled
        paused += other.paused
        dead += other.dead
    }

    func encode(into sink: inout ByteSink) {
        sink.i64LE(scheduled)
        sink.i64LE(paused)
        sink.i64LE(dead)
    }

    static func decode(_ buffer: UnsafeRawBufferPointer) -> CallbackCounts? {
        var s = ByteSource(buffer)
        guard let a = s.i64LE(), let b = s.i64LE(), let c = s.i64LE(), s.isAtEnd else { return nil }
        return CallbackCounts(scheduled: a, paused: b, dead: c)
    }
}

/// Counter changes per callback within one transaction. A batch usually touches few callbacks, so a short
/// array searched from the last hit beats hashing the name for every task; past 16 names it switches to a
/// dictionary so that batches over many callbacks stay linear.
struct CountDeltas {
    private var list: [(String, CallbackCounts)] = []
    private var map: [NameKey: CallbackCounts]?
    private var last = 0

    var isEmpty: Bool { list.isEmpty && (map?.isEmpty ?? true) }

    var entries: [(String, CallbackCounts)] {
        if let map { return map.map { ($0.key.name, $0.value) } }
        return list
    }

    mutating func add(_ callback: String, category: Int, _ sign: Int64) {
        if map != nil {
            map![NameKey(callback), default: CallbackCounts()].add(category: category, sign)
            return
        }
        if last < list.count && sameBytes(list[last].0, callback) {
            list[last].1.add(category: category, sign)
            return
        }
        if let i = indexOfName(callback, in: list) {
            last = i
            list[i].1.add(category: category, sign)
            return
        }
        var counts = CallbackCounts()
        counts.add(category: category, sign)
        if list.count < 16 {
            list.append((callback, counts))
            last = list.count - 1
        } else {
            var m = [NameKey: CallbackCounts](minimumCapacity: 64)
            for (k, v) in list { m[NameKey(k)] = v }
            m[NameKey(callback)] = counts
            map = m
            list = []
        }
    }

    mutating func removeAll() {
        list.removeAll(keepingCapacity: true)
        map = nil
        last = 0
    }
}

/// The random source for generated ids and retry jitter, shared by the store's transactions, plus the
/// sequence that orders generated ids of one millisecond.
package final class RandomSource {
    var generator: any RandomNumberGenerator
    /// Counts generated ids (the middle 30 bits of an id), so ids generated for one run time (one millisecond)
    /// ascend in creation order. `add` stores it in `meta` with the ids it generated and the store resumes
    /// from it at open (`resume(after:)`), so the order holds across reopens: ties of run time are claimed in id
    /// order. A new store starts at a random value below 2^29, so the 30-bit field wraps after 2^29 to 2^30
    /// generated ids; ids of one millisecond drawn across the wrap sort out of creation order, nothing else.
    private(set) var sequence: UInt32

    package init(_ generator: any RandomNumberGenerator) {
        self.generator = generator
        sequence = UInt32(truncatingIfNeeded: self.generator.next()) & 0x1FFF_FFFF
    }

    func next() -> UInt64 { generator.next() }

    /// Goes on from `last`, the sequence an earlier opening of the store committed with its last generated id.
    func resume(after last: UInt32) { sequence = last & 0x3FFF_FFFF }

    /// A uniform draw in 0...1.
    package func unit() -> Double { Double(next() >> 11) / Double((UInt64(1) << 53) - 1) }

    /// A new task id for a task first due at `runAt` (see `GeneratedID`), as the string `add` stores.
    package func taskID(runAt: Int64) -> String { nextID(runAt: runAt).string }

    /// The numbers of a new task id for a task first due at `runAt`: the run time in milliseconds, this
    /// source's next sequence number and 12 random bits.
    func nextID(runAt: Int64) -> GeneratedID {
        sequence &+= 1
        // Clamped into the 47 bits the id has for it: a time before 1970 or after the year 6429 loses only
        // its place in the order.
        let millis = UInt64(Swift.min(Swift.max(runAt / 1000, 0), (1 << 47) - 1)) | 1 << 47
        return GeneratedID(time: millis, low: UInt64(sequence & 0x3FFF_FFFF) << 12 | (next() & 0xFFF))
    }
}

/// A generated task id as its two numbers, which sort as the id's string does.
///
/// The string is 15 characters of the URL-safe base64 alphabet in ASCII order (`-`, digits, upper case, `_`,
/// lower case): 8 characters of `time` (the task's first run time in milliseconds with bit 47 set: ids start
/// with `V` until 2109, then `W` and so on, and never with `-`, which a command line would read as an option),
/// then 7 of `low` (a per-store sequence of 30 bits and 12 random bits).
///
/// Why the run time and not the creation time (as a UUIDv7 has): a one-off task's record is read at its claim
/// and deleted at its ack, both at its run time. Keyed by run time, the tasks a claim takes are neighbours in
/// `tasks`, so a batch of claims and acks reads and dirties a few pages instead of one random page per task, and
/// pages empty from the left as time passes instead of thinning everywhere (BENCHMARKS.md 3.9). Tasks added
/// with ascending run times still append. A batch with scattered run times is written in id order (`add`).
///
/// Why 15: it is the longest string Swift stores inline, so a generated id costs no allocation here or wherever
/// it is copied, decoded or compared later (a 32-character id cost ~450 instructions to create). Uniqueness
/// within the store is checked at insert (`add` draws again on a collision).
struct GeneratedID: Comparable {
    /// Bit 47 and the run time in milliseconds (48 bits).
    var time: UInt64
    /// The sequence number (30 bits) and the random bits (12).
    var low: UInt64

    static func < (a: GeneratedID, b: GeneratedID) -> Bool { (a.time, a.low) < (b.time, b.low) }

    /// The id as stored and returned.
    var string: String {
        String(unsafeUninitializedCapacity: 15) { buffer in
            for i in 0..<8 { buffer[7 - i] = Self.symbol(time >> (UInt64(i) * 6)) }
            for i in 0..<7 { buffer[14 - i] = Self.symbol(low >> (UInt64(i) * 6)) }
            return 15
        }
    }

    /// The id alphabet's symbol for the low 6 bits of `v`: `-` (0), `0`–`9` (1–10), `A`–`Z` (11–36), `_` (37),
    /// `a`–`z` (38–63): increasing in ASCII, so ids compare like their numbers.
    @inline(__always)
    static func symbol(_ v: UInt64) -> UInt8 {
        alphabet.withUnsafeBufferPointer { $0[Int(truncatingIfNeeded: v & 0x3F)] }
    }

    private static let alphabet: [UInt8] =
        Array("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz".utf8)
}

/// xoshiro256** seeded from the system generator: the store's default random source (fast, not
/// cryptographic; ids need uniqueness, not secrecy).
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// Seeds from `SystemRandomNumberGenerator`.
    public init() {
        var system = SystemRandomNumberGenerator()
        self.init(seed: system.next())
    }

    /// Seeds deterministically (SplitMix64 expansion of `seed`).
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}

/// Wraps an LMDB call so that its error becomes a `StoreError` (keeping the LMDB code).
@inline(__always)
func lmdb<R>(_ body: () throws(LMDBError) -> R) throws(StoreError) -> R {
    do { return try body() } catch { throw StoreError.lmdb(error) }
}

/// Runs `body` over the UTF-8 bytes of `string` without copying them (native strings are contiguous).
@inline(__always)
func withUTF8Bytes<R>(_ string: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    var string = string
    return string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}

/// Compares two (runAt, id) positions the way the indexes order them (time, then id bytes).
@inline(__always)
func positionPrecedes(_ a: (Int64, String), _ b: (Int64, String)) -> Bool {
    if a.0 != b.0 { return a.0 < b.0 }
    return a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
}

/// One transaction's view of the store: record access and index maintenance. Every operation is built on
/// `load` and `save`, which keep all indexes and counters consistent with the `tasks` database.
struct StoreContext {
    let txn: LMDBTransaction
    let dbs: StoreDatabases
    let options: StoreOptions
    let random: RandomSource
    /// The store's leases, changed in place by a write transaction (see `LeaseTable`).
    let leaseTable: LeaseTable
    /// Whether this is a write transaction's context: it reads the lease table without its lock and may
    /// change it.
    let isWriter: Bool
    /// The claim frontier `noteUnleasedEntry` looked up last: a batched add asks for one callback's frontier
    /// once per task.
    private var frontierMemo: (n: UInt32, frontier: ClaimFrontier?)?
    var value = ByteSink(capacity: 512)
    /// Counter changes not yet written to `counts` (flushed once per transaction, not once per task).
    var deltas = CountDeltas()
    /// Counts writes made through this context: a request that fails after writing cannot be undone alone.
    var writes = 0
    /// Index changes of the current operation, applied at its end (`flushIndexes`).
    var pending = IndexWriteBuffer()
    /// The deliveries and calendar occurrences the operations ended so far (`TaskStoreWriteBatch.endedRuns`).
    var ended: [EndedRun] = []
    /// Callback numbers looked up or assigned in this transaction (see `callbackNumber`).
    var numbers = CallbackNumberCache()
    /// Queued index bytes past which `save` applies the queue at once: bounds the memory of one operation over
    /// millions of tasks (a removal of a huge group) at the cost of sorting in chunks.
    let indexQueueLimit: Int
    /// Whether `add` stores the id sequence in `meta` with the ids it generates. Not when the store is full
    /// (its requests isolated): one more database written could be the page that fails the batch's commit (the review of
    /// `899b154` made an isolating batch fail whole that way); ids generated then may sort out of creation
    /// order after a reopen, nothing else.
    var recordsIDSequence = true

    init(
        txn: LMDBTransaction, dbs: StoreDatabases, options: StoreOptions, random: RandomSource,
        leaseTable: LeaseTable, indexQueueLimit: Int = StoreContext.defaultIndexQueueLimit
    ) {
        self.isWriter = !txn.isReadOnly
        self.txn = txn
        self.dbs = dbs
        self.options = options
        self.random = random
        self.leaseTable = leaseTable
        self.indexQueueLimit = indexQueueLimit
    }

    /// Pages in the store's B-trees as this transaction sees them, LMDB's own (the main database and the
    /// free-page database) and the two meta pages included. Every other page of the data file is free (listed
    /// in the free-page database, or past the high-water mark), so the room a store may fill is measured in
    /// these (see `StoreOptions.reserveBytes`). Nine `mdb_stat` calls: no page is read.
    func treePages() throws(StoreError) -> Int {
        let txn = self.txn
        var pages = 2
        for db in [dbs.meta, LMDBDatabase.main, LMDBDatabase.freePages, dbs.history, dbs.historyByTask]
            + dbs.taskDatabases
        {
            pages += try lmdb { () throws(LMDBError) in try txn.pageCount(db) }
        }
        return pages
    }

    // MARK: Keys

    static func idKey(_ id: String) -> [UInt8] { Array(id.utf8) }

    /// Decodes `time ++ id` (a time-keyed index's key).
    static func decodeTimeID(_ bytes: UnsafeRawBufferPointer) -> (Int64, String)? {
        var s = ByteSource(bytes)
        guard let t = s.timeKey() else { return nil }
        return (t, s.restString())
    }

    // MARK: Records

    /// Loads a task, copying it out of the map, with its lease (if leased) laid over the record.
    func load(_ id: String) throws(StoreError) -> StoredTask? {
        let txn = self.txn
        let db = dbs.tasks
        let found = withUTF8Bytes(id) { k in
            Result { () throws(LMDBError) in try txn.get(db, rawKey: k) }
        }
        guard let raw = try lmdb({ () throws(LMDBError) in try found.get() }) else { return nil }
        guard var task = StoredTask.decode(id: id, raw) else { throw .corrupt("task \"\(id)\"") }
        applyLease(to: &task)
        return task
    }

    /// Lays the task's lease, if it has one, over a task decoded from its record. Every path that decodes a
    /// record calls it (or knows the task is not leased): only the lease table says that a task is leased.
    func applyLease(to task: inout StoredTask) {
        if let lease = lease(of: task.record.id) { lease.apply(to: &task) }
    }

    // MARK: Leases

    /// The lease of task `id` (a writer sees its own changes).
    func lease(of id: String) -> Lease? { leaseView.lease(of: id) }

    /// The lease table as this transaction reads it: a small value that the claim's cursor loop captures
    /// instead of the whole context (capturing `self` there copied the context for every claimed task).
    var leaseView: LeaseView { LeaseView(table: leaseTable, isWriter: isWriter) }

    /// Sets or ends (`nil`) the lease of task `id`; undone if the transaction aborts. Counted as a write: a
    /// request that fails after it cannot be undone alone.
    mutating func setLease(_ id: String, _ lease: Lease?) {
        precondition(isWriter, "a lease changed outside a write transaction")
        writes += 1
        leaseTable.set(NameKey(id), lease)
    }

    /// Ends the lease of task `id` if `accept` accepts it, and returns it (one lookup: see `LeaseTable.take`);
    /// undone if the transaction aborts. Counted as a write when it ends one.
    mutating func takeLease(_ id: String, if accept: (Lease) -> Bool) -> Lease? {
        precondition(isWriter, "a lease changed outside a write transaction")
        guard let lease = leaseTable.take(NameKey(id), if: accept) else { return nil }
        writes += 1
        return lease
    }

    /// Every lease, in no particular order (O(leases)).
    func allLeases() -> [(id: String, lease: Lease)] {
        (isWriter ? leaseTable.writerAll() : leaseTable.all()).map { ($0.0.name, $0.1) }
    }

    /// The claim frontier of callback number `n` (see `LeaseTable`).
    func claimFrontier(_ n: UInt32) -> ClaimFrontier? { leaseView.frontier(n) }

    /// Moves (or drops) the claim frontier of callback number `n`; undone if the transaction aborts.
    mutating func setClaimFrontier(_ n: UInt32, _ frontier: ClaimFrontier?) {
        precondition(isWriter, "a claim frontier changed outside a write transaction")
        leaseTable.setFrontier(n, frontier)
        frontierMemo = nil
    }

    /// Records that callback number `n` has an unleased `callback_wake` entry at (`t`, `id`): if it is at or
    /// before the callback's claim frontier, it becomes one of its holes (or, past `ClaimFrontier.maxHoles`,
    /// the frontier is dropped).
    mutating func noteUnleasedEntry(_ n: UInt32, _ t: Int64, _ id: String) {
        let frontier: ClaimFrontier?
        if let memo = frontierMemo, memo.n == n {
            frontier = memo.frontier
        } else {
            frontier = claimFrontier(n)
            frontierMemo = (n, frontier)
        }
        guard let frontier, frontier.covers((t, id)) else { return }
        let next = frontier.withHole((t, id))
        if let next, next.holes.count == frontier.holes.count { return }  // already a hole
        setClaimFrontier(n, next)
        frontierMemo = (n, next)
    }

    /// Opens a cursor on `tasks` for `load(_:at:)` and `replaceRecord(at:_:)` / `deleteRecord(at:)`.
    /// - Important: Close it before the transaction ends.
    func tasksCursor() throws(StoreError) -> LMDBCursor {
        let txn = self.txn
        let db = dbs.tasks
        return try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: db) }
    }

    /// Loads a task through `cursor` (on `tasks`) and leaves the cursor at it, so that the record can be replaced
    /// or deleted without a second tree search.
    ///
    /// - Parameters:
    ///   - tryNext: The cursor is at a record and `id` is probably the next one (a claim in the order of
    ///     ascending ids): check the next entry before searching the tree.
    ///   - unleased: The caller knows that the task is not leased (a claim checked its `callback_wake` entry):
    ///     skip the lease lookup.
    ///   - callback: The callback the caller expects the task to have (see `StoredTask.decode`).
    func load(
        _ id: String, at cursor: LMDBCursor, tryNext: Bool = false, unleased: Bool = false, callback: String? = nil
    ) throws(StoreError) -> StoredTask? {
        let found = withUTF8Bytes(id) { k in
            Result { () throws(LMDBError) -> LMDBCursor.Entry? in
                if tryNext, let next = try cursor.move(MDB_NEXT), bytesEqual(next.key, k) { return next }
                return try cursor.seek(exactRawKey: k)
            }
        }
        guard let entry = try lmdb({ () throws(LMDBError) in try found.get() }) else { return nil }
        guard var task = StoredTask.decode(id: id, entry.value, callback: callback) else {
            throw .corrupt("task \"\(id)\"")
        }
        if !unleased { applyLease(to: &task) }
        return task
    }

    /// Stores `task` over the record `cursor` is at (placed there by `load(_:at:)` for the same id). The
    /// caller then calls `save(old:new:writeRecord: false)` for the indexes.
    mutating func replaceRecord(at cursor: LMDBCursor, _ task: StoredTask) throws(StoreError) {
        writes += 1
        value.reset()
        task.encode(into: &value)
        let result = value.bytes.withUnsafeBytes { v in
            withUTF8Bytes(task.record.id) { k in
                Result { () throws(LMDBError) in try cursor.replaceCurrent(rawKey: k, rawValue: v) }
            }
        }
        try lmdb { () throws(LMDBError) in try result.get() }
    }

    /// Deletes the record `cursor` is at (placed there by `load(_:at:)`). The caller then calls
    /// `save(old:new: nil, writeRecord: false)` for the indexes.
    mutating func deleteRecord(at cursor: LMDBCursor) throws(StoreError) {
        writes += 1
        try lmdb { () throws(LMDBError) in try cursor.deleteCurrent() }
    }

    /// Writes `new` in place of `old` (either may be nil: insert, delete), updating every index and counter.
    ///
    /// - Parameter writeRecord: `false` when the caller already wrote the `tasks` record (the insert path, and
    ///   `replaceRecord(at:_:)` / `deleteRecord(at:)`).
    mutating func save(old: StoredTask?, new: StoredTask?, writeRecord: Bool = true) throws(StoreError) {
        guard let id = new?.record.id ?? old?.record.id else { return }
        writes += 1
        let dbs = self.dbs
        if writeRecord {
            if let new {
                value.reset()
                new.encode(into: &value)
                try putValue(dbs.tasks, key: id)
            } else {
                _ = try deleteKey(dbs.tasks, key: id)
            }
        }

        // What the indexes need of each side, read once: reaching into the optional records again and again
        // copied them (retaining every string and array) about ten times per save.
        let was = Self.indexFacts(old)
        let will = Self.indexFacts(new)

        // Unpaused scheduled (or leased) tasks: `callback_wake` (callback number, time, id).
        let oldWake = was?.slots.wake
        let newWake = will?.slots.wake
        let wakeMoved = oldWake != newWake || (oldWake != nil && !sameBytes(was?.callback, will?.callback))
        if wakeMoved {
            if let t = oldWake, let was {
                guard let n = try callbackNumber(was.callback, create: false) else {
                    throw .corrupt("no number for callback \"\(was.callback)\" of a scheduled task")
                }
                pending.callback(put: false, n, t, id)
            }
            if let t = newWake, let will {
                guard let n = try callbackNumber(will.callback, create: true) else {
                    throw .corrupt("cannot number callback \"\(will.callback)\"")
                }
                pending.callback(put: true, n, t, id)
                if will.lease == nil { noteUnleasedEntry(n, t, id) }
            }
        } else if let t = newWake, let will, will.lease == nil, was?.lease != nil {
            // The lease ended and the entry stays: it is claimable again.
            guard let n = try callbackNumber(will.callback, create: false) else {
                throw .corrupt("no number for callback \"\(will.callback)\" of a scheduled task")
            }
            noteUnleasedEntry(n, t, id)
        }

        // Paused scheduled tasks: `paused` (time, id).
        let oldPaused = was?.slots.paused
        let newPaused = will?.slots.paused
        if oldPaused != newPaused {
            if let t = oldPaused { pending.time(.paused, put: false, t, id) }
            if let t = newPaused { pending.time(.paused, put: true, t, id) }
        }

        // Dead-lettered tasks: `dead` (time, id).
        let oldDead = was?.slots.dead
        let newDead = will?.slots.dead
        if oldDead != newDead {
            if let t = oldDead { pending.time(.dead, put: false, t, id) }
            if let t = newDead { pending.time(.dead, put: true, t, id) }
        }

        // Groups: `groups` len ++ group ++ id.
        let oldGroup = was?.group
        let newGroup = will?.group
        if !sameBytes(oldGroup, newGroup) {
            if let g = oldGroup { pending.group(put: false, g, id) }
            if let g = newGroup { pending.group(put: true, g, id) }
        }

        // The lease, in memory (a touch changes only it: its caller passes `writeRecord: false`).
        if was?.lease != will?.lease { setLease(id, will?.lease) }

        // Operations read indexes only before their first save, so applying the queue early is safe.
        if pending.queuedBytes > indexQueueLimit { try flushIndexes() }

        if let was, let will, sameBytes(was.callback, will.callback), was.category == will.category { return }
        if let was { deltas.add(was.callback, category: was.category, -1) }
        if let will { deltas.add(will.callback, category: will.category, 1) }
    }

    /// `save(old: nil, new: task, writeRecord: false)` for a task just inserted by `add` (scheduled, never
    /// leased): queues its index keys and counts it, without building and comparing the index facts of two
    /// sides. `add` calls it once per new task, where the general `save` cost ~2,500 instructions.
    mutating func saveInserted(_ task: StoredTask) throws(StoreError) {
        precondition(task.record.state == .scheduled, "saveInserted is for tasks add just inserted")
        writes += 1
        let id = task.record.id
        let runAt = task.record.runAt
        let paused = task.record.paused
        if paused {
            pending.time(.paused, put: true, runAt, id)
        } else {
            guard let n = try callbackNumber(task.record.callback, create: true) else {
                throw .corrupt("cannot number callback \"\(task.record.callback)\"")
            }
            pending.callback(put: true, n, runAt, id)
            noteUnleasedEntry(n, runAt, id)
        }
        if let g = task.record.group { pending.group(put: true, g, id) }
        if pending.queuedBytes > indexQueueLimit { try flushIndexes() }
        deltas.add(task.record.callback, category: paused ? 1 : 0, 1)
    }

    /// Deletes the record of task `id`, whose lease the caller took, without reading it (the ack of a one-off
    /// task); the caller then calls `saveLeasedRemoved`.
    /// - Throws: `internalError` when there is no record (a lease of a missing task); LMDB errors.
    mutating func deleteLeasedRecord(_ id: String) throws(StoreError) {
        writes += 1
        guard try deleteKey(dbs.tasks, key: id) else { throw .corrupt("lease of missing task \"\(id)\"") }
    }

    /// `save(old: task, new: nil, writeRecord: false)` for a leased task whose lease the caller took
    /// (`takeLease`) and whose record it deleted (the ack of a one-off task), from the lease alone: queues the
    /// deletion of its `callback_wake` (or `paused`) and `groups` entries and drops the count, without the
    /// general two-sided `save`.
    mutating func saveLeasedRemoved(_ id: String, _ lease: Lease) throws(StoreError) {
        writes += 1
        let callback = lease.callback
        let paused = lease.paused
        if paused {
            pending.time(.paused, put: false, lease.runAt, id)
        } else {
            guard let n = try callbackNumber(callback, create: false) else {
                throw .corrupt("no number for callback \"\(callback)\" of a leased task")
            }
            pending.callback(put: false, n, lease.runAt, id)
        }
        if let g = lease.group { pending.group(put: false, g, id) }
        if pending.queuedBytes > indexQueueLimit { try flushIndexes() }
        deltas.add(callback, category: paused ? 1 : 0, -1)
    }

    /// Stores the bytes in `value` (encoded by the caller) under the key `key` in `db`.
    /// - Throws: LMDB errors (`MDB_MAP_FULL`, ...) as `StoreError`.
    private func putValue(_ db: LMDBDatabase, key: String) throws(StoreError) {
        let txn = self.txn
        let result = value.bytes.withUnsafeBytes { v in
            withUTF8Bytes(key) { k in Result { () throws(LMDBError) in try txn.put(db, rawKey: k, rawValue: v) } }
        }
        try lmdb { () throws(LMDBError) in try result.get() }
    }

    /// Deletes the key `key` from `db`.
    /// - Returns: Whether it was there.
    /// - Throws: LMDB errors as `StoreError`.
    private func deleteKey(_ db: LMDBDatabase, key: String) throws(StoreError) -> Bool {
        let txn = self.txn
        let result = withUTF8Bytes(key) { k in
            Result { () throws(LMDBError) in try txn.delete(db, rawKey: k, rawValue: nil) }
        }
        return try lmdb { () throws(LMDBError) in try result.get() }
    }

    /// The default of `indexQueueLimit`: about 200k tasks' keys.
    static let defaultIndexQueueLimit = 32 << 20

    /// What `save` needs of one side of a change.
    struct IndexFacts {
        var callback: String
        var group: String?
        var slots: IndexSlots
        /// `CallbackCounts.category`.
        var category: Int
        /// The lease of a leased task (`StoredTask.currentLease`).
        var lease: Lease?
    }

    @inline(__always)
    static func indexFacts(_ task: StoredTask?) -> IndexFacts? {
        switch task {
        case .none: return nil
        case .some(let t):
            return IndexFacts(
                callback: t.record.callback, group: t.record.group, slots: indexSlots(t),
                category: CallbackCounts.category(t), lease: t.currentLease)
        }
    }

    /// Applies the index changes queued by `save` (sorted by key per index). Runs at the end of every
    /// operation (`LMDBWriteBatch`), so that the next operation's index reads see them.
    /// - Throws: LMDB errors (`MDB_MAP_FULL`, ...) as `StoreError`.
    mutating func flushIndexes() throws(StoreError) {
        guard !pending.isEmpty else { return }
        // A write of the request that applies the queue (which may hold an earlier request's deletions): if it
        // fails part-way, the batch cannot go on.
        writes += 1
        do throws(LMDBError) {
            try pending.apply(txn, dbs)
        } catch {
            throw .lmdb(error)
        }
    }

    /// Where a task sits in the time-keyed indexes (`nil` = not in that index).
    /// A leased task keeps the slot its record gives it (`callback_wake` or `paused`).
    struct IndexSlots {
        /// Scheduled (or leased) and not paused: in `callback_wake` at this time.
        var wake: Int64?
        var paused: Int64?
        var dead: Int64?
    }

    /// The index slots of a task, read field by field: `Optional.flatMap` closures over the whole record
    /// copied it (retaining each of its strings and arrays) about 20 times per `save`.
    @inline(__always)
    static func indexSlots(_ task: StoredTask) -> IndexSlots {
        var slots = IndexSlots()
        let runAt = task.record.runAt
        switch task.record.state {
        case .scheduled, .leased:
            if task.record.paused { slots.paused = runAt } else { slots.wake = runAt }
        case .dead: slots.dead = runAt
        }
        return slots
    }

    /// Writes the accumulated counter changes into `counts`.
    mutating func flushCounts() throws(StoreError) {
        guard !deltas.isEmpty else { return }
        let txn = self.txn
        let db = dbs.counts
        for (callback, delta) in deltas.entries where !delta.isZero {
            let k = Array(callback.utf8)
            var current = CallbackCounts()
            if let raw = try lmdb({ () throws(LMDBError) in try txn.get(db, key: k) }) {
                guard let c = CallbackCounts.decode(raw) else { throw .corrupt("counter of \"\(callback)\"") }
                current = c
            }
            current.add(delta)
            if current.isZero {
                try lmdb { () throws(LMDBError) in _ = try txn.delete(db, key: k) }
            } else {
                value.reset()
                current.encode(into: &value)
                let v = value.bytes
                try lmdb { () throws(LMDBError) in try txn.put(db, key: k, value: v) }
            }
        }
        deltas.removeAll()
    }

    // MARK: Cursors

    /// Runs `body` with a cursor on `db`, closed before returning (cursors must not outlive the transaction).
    func withCursor<R>(_ db: LMDBDatabase, _ body: (LMDBCursor) throws(StoreError) -> R) throws(StoreError) -> R {
        // Operations read indexes before their first `save`, and every operation flushes its puts at its end;
        // deletions may wait (`IndexWriteBuffer.onlyDeletions`): the callers load each entry's record.
        precondition(pending.onlyDeletions, "an index was read while index puts were pending")
        let txn = self.txn
        let cursor = try lmdb { () throws(LMDBError) in try LMDBCursor(transaction: txn, database: db) }
        defer { cursor.close() }
        return try body(cursor)
    }

    /// Ids of a group, in id byte order.
    func groupIDs(_ group: String) throws(StoreError) -> [String] {
        var ids: [String] = []
        try forEachGroupID(group) { (id) throws(StoreError) in
            ids.append(id)
            return true
        }
        return ids
    }

    /// Calls `body` with each id of a group, in id byte order, until it returns `false`: O(the ids visited),
    /// not O(the group).
    func forEachGroupID(_ group: String, _ body: (String) throws(StoreError) -> Bool) throws(StoreError) {
        var prefix = ByteSink(capacity: 260)
        prefix.u8(UInt8(group.utf8.count))
        prefix.raw(group)
        let p = prefix.bytes
        try withCursor(dbs.groups) { (c) throws(StoreError) in
            var entry = try lmdb { () throws(LMDBError) in try c.seek(p) }
            while let e = entry, e.key.count >= p.count, e.key.starts(with: p) {
                let id = String(decoding: UnsafeRawBufferPointer(rebasing: e.key[p.count...]), as: UTF8.self)
                guard try body(id) else { return }
                entry = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            }
        }
    }

    /// Every task id, in byte order (a full scan: only for `.all` selectors).
    func allIDs() throws(StoreError) -> [String] {
        try withCursor(dbs.tasks) { (c) throws(StoreError) -> [String] in
            var ids: [String] = []
            var entry = try lmdb { () throws(LMDBError) in try c.move(MDB_FIRST) }
            while let e = entry {
                ids.append(String(decoding: e.key, as: UTF8.self))
                entry = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            }
            return ids
        }
    }

    /// The ids of a time-keyed index (`time ++ id` keys), in index order.
    func timeIndexIDs(_ db: LMDBDatabase) throws(StoreError) -> [String] {
        try withCursor(db) { (c) throws(StoreError) -> [String] in
            var out: [String] = []
            var entry = try lmdb { () throws(LMDBError) in try c.move(MDB_FIRST) }
            while let e = entry {
                guard let (_, id) = Self.decodeTimeID(e.key) else { throw .corrupt("index key") }
                out.append(id)
                entry = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            }
            return out
        }
    }

    /// Loads task `id`, found through `selector`, if it exists and the selector still selects it: a `groups`
    /// entry whose deletion is pending (`IndexWriteBuffer.onlyDeletions`: a replace that dropped the task's
    /// group) names a task that has left the group.
    func loadSelected(_ id: String, _ selector: TaskSelector) throws(StoreError) -> StoredTask? {
        guard let task = try load(id) else { return nil }
        if case .group(let g) = selector, !sameBytes(task.record.group, g) { return nil }
        return task
    }

    /// The ids a selector names, without duplicates. Ids of a group come from the `groups` index: load them
    /// with `loadSelected`.
    func selectedIDs(_ selector: TaskSelector) throws(StoreError) -> [String] {
        switch selector {
        case .ids(let ids):
            var seen = Set<NameKey>()
            var out: [String] = []
            for id in ids where seen.insert(NameKey(id)).inserted { out.append(id) }
            return out
        case .group(let g): return try groupIDs(g)
        case .all: return try allIDs()
        }
    }

    /// The earliest `runAt` of an unpaused scheduled task of `callback` (leased tasks excluded).
    func earliestRunAt(callback: String) throws(StoreError) -> Int64? {
        guard let n = try lookUpCallbackNumber(callback) else { return nil }
        return try withCursor(dbs.callbackWake) { (c) throws(StoreError) -> Int64? in
            try firstUnleasedEntry(c, n)?.0
        }
    }

    /// The earliest `runAt` of any unpaused scheduled task (leased tasks excluded): the least of the
    /// callbacks' first unleased `callback_wake` entries. One seek per callback that has such an entry (see
    /// `forEachCallbackHead`), plus a walk over the leases past its claim frontier.
    func earliestRunAt() throws(StoreError) -> Int64? {
        try withCursor(dbs.callbackWake) { (c) throws(StoreError) -> Int64? in
            var earliest: Int64?
            try Self.forEachCallbackHead(c) { (n, t) throws(StoreError) in
                // The first unleased entry is at or after the first entry.
                if let e = earliest, e <= t { return }
                guard let (u, _) = try firstUnleasedEntry(c, n) else { return }
                if let e = earliest, e <= u { return }
                earliest = u
            }
            return earliest
        }
    }

    /// The first unleased entry of callback number `n` (see `UnleasedEntries`).
    func firstUnleasedEntry(_ cursor: LMDBCursor, _ n: UInt32) throws(StoreError) -> WakePosition? {
        try UnleasedEntries(cursor, n, leaseView).head
    }

    /// Calls `body` with the number and the first time of every callback that has entries in `callback_wake`,
    /// in number order. A seek to the key prefix `n + 1` after callback `n` lands on the next callback that has
    /// entries, so callback numbers without scheduled tasks cost nothing: O(callbacks with scheduled tasks)
    /// seeks, however many names the store has numbered.
    /// - Throws: LMDB errors; `internalError` for a malformed key.
    static func forEachCallbackHead(
        _ cursor: LMDBCursor, _ body: (UInt32, Int64) throws(StoreError) -> Void
    ) throws(StoreError) {
        var next: UInt32 = 0
        while true {
            var key = ByteSink(capacity: 4)
            key.u32BE(next)
            let k = key.bytes
            let found = k.withUnsafeBytes { kb in
                Result { () throws(LMDBError) in try cursor.seek(atLeastRawKey: kb) }
            }
            guard let entry = try lmdb({ () throws(LMDBError) in try found.get() }) else { return }
            var s = ByteSource(entry.key)
            guard let n = s.u32BE(), let t = s.timeKey() else { throw .corrupt("callback index key") }
            try body(n, t)
            guard n < UInt32.max else { return }
            next = n + 1
        }
    }

    /// Positions `cursor` (on `callback_wake`) at the first entry of callback number `n`.
    /// - Returns: That entry's (runAt, id), or `nil` when the callback has none.
    static func firstCallbackEntry(_ cursor: LMDBCursor, _ n: UInt32) throws(StoreError) -> (Int64, String)? {
        try callbackEntry(cursor, n, after: nil)
    }

    /// Positions `cursor` (on `callback_wake`) at the first entry of callback number `n` at or after
    /// `(time, id)` (`after` = nil: the first).
    static func callbackEntry(_ cursor: LMDBCursor, _ n: UInt32, after: (Int64, String)?) throws(StoreError)
        -> (Int64, String)?
    {
        var key = ByteSink(capacity: 12 + (after?.1.utf8.count ?? 0))
        key.u32BE(n)
        if let after {
            key.timeKey(after.0)
            key.raw(after.1)
        }
        let k = key.bytes
        let found = k.withUnsafeBytes { kb in
            Result { () throws(LMDBError) in try cursor.seek(atLeastRawKey: kb) }
        }
        let entry = try lmdb { () throws(LMDBError) in try found.get() }
        return try decodeCallbackEntry(entry, n)
    }

    /// Decodes a `callback_wake` entry of callback number `n` (`nil`: no entry, or one of another callback).
    @inline(__always)
    static func decodeCallbackEntry(_ entry: LMDBCursor.Entry?, _ n: UInt32) throws(StoreError) -> (Int64, String)? {
        guard let entry else { return nil }
        var s = ByteSource(entry.key)
        guard let number = s.u32BE() else { throw .corrupt("callback index key") }
        guard number == n else { return nil }
        guard let t = s.timeKey() else { throw .corrupt("callback index key") }
        return (t, s.restString())
    }
}

/// The unleased entries of one callback's part of `callback_wake`, in (runAt, id) order, found through the
/// callback's claim frontier: first its holes that are unleased entries (one seek each), then a walk from its
/// bound past the leased entries. Without a frontier, the walk starts at the callback's first entry.
///
/// - Important: Uses `cursor` (on `callback_wake`) for the life of the value.
struct UnleasedEntries {
    private let n: UInt32
    private let cursor: LMDBCursor
    private let leases: LeaseView
    private let frontier: ClaimFrontier?
    /// The holes not yet taken or found to be leased or gone; the first is `head` while `headIsHole`.
    private(set) var holes: ArraySlice<WakePosition>
    private var walking = false
    private var headIsHole = false
    /// The last entry after the bound that the walk passed (skipped as leased, or taken by `advance()`).
    private(set) var passed: WakePosition?
    /// The first unleased entry not taken yet; `nil` when there is none.
    private(set) var head: WakePosition?

    init(_ cursor: LMDBCursor, _ n: UInt32, _ leases: LeaseView) throws(StoreError) {
        self.n = n
        self.cursor = cursor
        self.leases = leases
        frontier = leases.frontier(n)
        holes = frontier?.holes[...] ?? []
        try settleHead(walkEntry: nil)
    }

    /// Takes the head (the caller leases it, or counts it) and finds the next unleased entry.
    mutating func advance() throws(StoreError) {
        guard let h = head else { return }
        if headIsHole {
            holes.removeFirst()
            try settleHead(walkEntry: nil)
        } else {
            passed = h
            let next = try lmdb { () throws(LMDBError) in try cursor.move(MDB_NEXT) }
            try settleHead(walkEntry: try StoreContext.decodeCallbackEntry(next, n))
        }
    }

    /// The frontier after a claim that took the entries it advanced over: the bound moves over what the walk
    /// passed, the holes taken or found leased or gone are dropped. `nil` when it is unchanged.
    var movedFrontier: ClaimFrontier? {
        let bound = passed ?? frontier?.bound
        guard let bound else { return nil }
        if passed == nil, let frontier, frontier.holes.count == holes.count { return nil }
        return ClaimFrontier(bound: bound, holes: Array(holes))
    }

    /// Sets `head`: the first hole that is an unleased entry, else (the holes done) the walk's next unleased
    /// entry from `walkEntry` (where the cursor is) or, when the walk has not begun, from the bound.
    private mutating func settleHead(walkEntry: WakePosition?) throws(StoreError) {
        if !walking {
            while let hole = holes.first {
                if try isUnleasedEntry(hole) {
                    head = hole
                    headIsHole = true
                    return
                }
                holes.removeFirst()
            }
            walking = true
            headIsHole = false
            var first = try StoreContext.callbackEntry(cursor, n, after: frontier?.bound)
            // The walk is strictly after the bound: an entry at the bound is leased or one of the holes (which
            // this claim may have just taken, unleased until the claim leases what it took).
            if let f = first, let bound = frontier?.bound, f.0 == bound.runAt, sameBytes(f.1, bound.id) {
                let next = try lmdb { () throws(LMDBError) in try cursor.move(MDB_NEXT) }
                first = try StoreContext.decodeCallbackEntry(next, n)
            }
            head = try skipLeased(from: first)
            return
        }
        head = try skipLeased(from: walkEntry)
    }

    /// Whether callback `n` has an entry at `position` that is not leased.
    private func isUnleasedEntry(_ position: WakePosition) throws(StoreError) -> Bool {
        var key = ByteSink(capacity: 12 + position.id.utf8.count)
        key.u32BE(n)
        key.timeKey(position.runAt)
        key.raw(position.id)
        let k = key.bytes
        let cursor = self.cursor
        let found = k.withUnsafeBytes { kb in
            Result { () throws(LMDBError) in try cursor.seek(exactRawKey: kb) != nil }
        }
        return try lmdb { () throws(LMDBError) in try found.get() } && !leases.isLeased(position.id)
    }

    /// Moves the cursor (at `entry`) past leased entries, noting the last one in `passed`.
    private mutating func skipLeased(from entry: WakePosition?) throws(StoreError) -> WakePosition? {
        var entry = entry
        while let e = entry, leases.isLeased(e.id) {
            passed = e
            let next = try lmdb { () throws(LMDBError) in try cursor.move(MDB_NEXT) }
            entry = try StoreContext.decodeCallbackEntry(next, n)
        }
        return entry
    }
}
