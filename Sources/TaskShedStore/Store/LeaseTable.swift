import TaskShedProtocol

/// A lease: a claimed task's delivery, held in memory only (`LeaseTable`), never in the store's files.
///
/// A claim writes nothing to LMDB: the task's record and its `callback_wake` (or `paused`) entry stay as they
/// were, and the lease is laid over the record by every load (`apply(to:)`), so the rest of the store sees one
/// task in the leased state. Leases do not outlive the store object: after a restart every task a worker held
/// is due again at its `runAt`, with the delivery not counted, which is what the daemon did at start-up when
/// leases were stored (it released them all). See LAYOUT.md, "Leases".
struct Lease: Equatable {
    // The fields are ordered by size and the two optional times are stored as plain integers (`none` for
    // absent): 80 bytes instead of 112, and the table's dictionary moves and keeps an entry per slot
    // (LAYOUT.md, "Leases": memory per lease).
    var deadline: Int64
    var holder: UInt64
    var runAt: Int64
    private var lastRunAtStorage: Int64
    private var baseLastRunAtStorage: Int64
    /// The task's callback, group, paused flag, run time and kind, kept current by `StoreContext.save`: the ack
    /// of a one-off task removes it and its index entries from these, without decoding its record.
    var callback: String
    var group: String?
    /// The delivery's attempt; the record keeps `attempt - 1` until the lease ends.
    var attempt: UInt32
    var paused: Bool
    var recurring: Bool

    /// Stands for an absent time (instants are never negative: PROTOCOL.md, section 9).
    private static let none = Int64.min

    /// The delivery's run time (`max(runAt, claim time)`).
    var lastRunAt: Int64? {
        get { lastRunAtStorage == Self.none ? nil : lastRunAtStorage }
        set { lastRunAtStorage = newValue ?? Self.none }
    }

    /// The record's `lastRunAt` before the claim: written back if the record is rewritten while leased.
    var baseLastRunAt: Int64? {
        get { baseLastRunAtStorage == Self.none ? nil : baseLastRunAtStorage }
        set { baseLastRunAtStorage = newValue ?? Self.none }
    }

    /// Creates a lease (the arguments as the properties of the same names).
    init(
        deadline: Int64, holder: UInt64, attempt: UInt32, lastRunAt: Int64?, baseLastRunAt: Int64?, callback: String,
        paused: Bool, runAt: Int64, group: String?, recurring: Bool
    ) {
        self.deadline = deadline
        self.holder = holder
        self.runAt = runAt
        lastRunAtStorage = lastRunAt ?? Self.none
        baseLastRunAtStorage = baseLastRunAt ?? Self.none
        self.callback = callback
        self.group = group
        self.attempt = attempt
        self.paused = paused
        self.recurring = recurring
    }

    /// Lays the lease over a task decoded from its record: leased, with this attempt, run time, deadline and
    /// holder.
    func apply(to task: inout StoredTask) {
        apply(to: &task.record)
        task.lease = self
    }

    /// Lays the lease over a record alone: leased, with this attempt, run time and deadline (a claim, which
    /// returns the record and keeps the lease only in the table).
    func apply(to record: inout TaskRecord) {
        record.state = .leased
        record.attempt = attempt
        record.lastRunAt = lastRunAt
        record.leaseDeadline = deadline
    }
}

/// How a transaction reads the lease table: a writer without the lock (it is the only one that changes the
/// table), a reader with it.
struct LeaseView {
    let table: LeaseTable
    let isWriter: Bool

    /// The lease of task `id`.
    func lease(of id: String) -> Lease? {
        isWriter ? table.writerLease(NameKey(id)) : table.lease(NameKey(id))
    }

    /// Whether task `id` is leased: `lease(of:) != nil` without copying the lease out (retaining its strings),
    /// for the claim's walk past leased entries.
    func isLeased(_ id: String) -> Bool {
        isWriter ? table.writerIsLeased(NameKey(id)) : table.isLeased(NameKey(id))
    }

    /// The claim frontier of callback number `n`.
    func frontier(_ n: UInt32) -> ClaimFrontier? {
        isWriter ? table.writerFrontier(n) : table.frontier(n)
    }
}

/// A position in one callback's part of `callback_wake`: (runAt, id).
typealias WakePosition = (runAt: Int64, id: String)

/// What a claim may skip of one callback's part of `callback_wake`: every entry at or before `bound` is
/// leased, except perhaps those at `holes`.
///
/// An unleased entry that appears at or before the bound (an add or a reschedule behind it, a lease that ends
/// while its entry stays) becomes a hole instead of dropping the frontier: the next claim checks the holes
/// (one seek each) and then walks on from the bound, instead of walking every leased entry from the callback's
/// first. A claim removes the holes it took or found to be leased or gone. Past `maxHoles` the frontier is
/// dropped, and the next claim walks the callback from its first entry and sets a new one.
struct ClaimFrontier {
    var bound: WakePosition
    /// In (runAt, id) order, each at or before `bound`; a hole may name an entry that is gone or leased by
    /// now (a claim checks).
    var holes: [WakePosition] = []

    static let maxHoles = 256

    /// Whether `position` is at or before the bound.
    func covers(_ position: WakePosition) -> Bool { !positionPrecedes(bound, position) }

    /// The frontier with `position` (at or before the bound) as a hole; `nil` when there are too many holes.
    func withHole(_ position: WakePosition) -> ClaimFrontier? {
        var lower = 0
        var upper = holes.count
        while lower < upper {
            let mid = (lower + upper) / 2
            if positionPrecedes(holes[mid], position) { lower = mid + 1 } else { upper = mid }
        }
        if lower < holes.count && holes[lower].runAt == position.runAt && sameBytes(holes[lower].id, position.id) {
            return self
        }
        guard holes.count < Self.maxHoles else { return nil }
        var next = self
        next.holes.insert(position, at: lower)
        return next
    }
}

/// The leases of a store: in memory, shared by the writer (which changes them inside its write transactions)
/// and the readers.
///
/// Besides the leases by id it keeps, per callback number, a **claim frontier** (`ClaimFrontier`: a
/// `callback_wake` position up to which every entry of that callback is leased, but for its holes). Leased
/// tasks keep their `callback_wake` entries, so a claim (and the next wake-up of a callback) must skip them;
/// with the frontier it checks the holes and starts after the bound instead of walking every outstanding
/// lease.
///
/// The writer changes the table in place as its operations run and logs what each change replaced: a
/// transaction that aborts (or a nested one that fails) rolls the table back to where it began
/// (`rollback(to:)`), one that commits drops its log (`commitLog(transactionID:)`). In place, because staging
/// the changes and applying them at the commit hashed every id twice more per delivery
/// (`git show 4615f6e:BENCHMARKS.md`, 5.10).
///
/// - Important: The `writer…` methods, `set`, `take`, `setFrontier`, `clearAll`, `mark`, `rollback(to:)` and
///   `commitLog(transactionID:)` are for the writer only (under the store's writer lock); the others may be
///   called from any thread. Readers see the writer's changes as they are made, before its LMDB commit: a
///   read racing a write may pair a lease with the previous snapshot (a task acked a moment ago shows as
///   scheduled, or a task whose claim is then rolled back shows as leased for that moment), but never leaves
///   a due task hidden behind a lease that its snapshot has already ended. `leaseCounts(asOfTransaction:)`
///   gives a reader the leases' counts exactly as of its snapshot.
final class LeaseTable: @unchecked Sendable {
    private let lock = PthreadRWLock()
    /// Everything the lock guards, in one stored property: each method makes one (dynamically checked)
    /// access to the class's storage instead of one per field.
    private var state = State()

    // MARK: Readers (any thread)

    /// The lease of task `id`, if it is leased.
    func lease(_ id: NameKey) -> Lease? {
        lock.lockShared()
        defer { lock.unlock() }
        return state.leases[id]
    }

    /// Whether task `id` is leased.
    func isLeased(_ id: NameKey) -> Bool {
        lock.lockShared()
        defer { lock.unlock() }
        return state.leases.index(forKey: id) != nil
    }

    /// The claim frontier of callback number `n`.
    func frontier(_ n: UInt32) -> ClaimFrontier? {
        lock.lockShared()
        defer { lock.unlock() }
        return state.frontiers[n]
    }

    /// The earliest lease deadline. O(1).
    func earliestDeadline() -> Int64? {
        lock.lockShared()
        defer { lock.unlock() }
        return state.heap.first
    }

    /// Every lease, copied (O(leases)).
    func all() -> [(NameKey, Lease)] {
        lock.lockShared()
        defer { lock.unlock() }
        return state.leases.map { ($0.key, $0.value) }
    }

    /// How many leases each callback has (unpaused and paused tasks) exactly as a reader whose snapshot is
    /// LMDB transaction `id` should count them: the table without the changes of a write in flight (each id
    /// that write changed counts with the lease its log says it had before). `nil` when a commit came between
    /// that snapshot and this call, or when the write in flight cleared the table (`remove(.all)`): the caller
    /// then checks each lease against its snapshot. The leases' cached callback and paused flag are those of
    /// the snapshot's records.
    ///
    /// O(leases + the write's changes) under the shared lock, with nothing copied: a copy of the table (or a
    /// dictionary shared with it, which the writer's next change would then copy under the exclusive lock)
    /// cost up to ~200 ms beside a large write in flight.
    func leaseCounts(asOfTransaction id: Int) -> [NameKey: (unpaused: Int64, paused: Int64)]? {
        lock.lockShared()
        defer { lock.unlock() }
        guard state.committedTransactionID == id else { return nil }
        // The lease each id changed by the write in flight had before it: its oldest logged value.
        var before: [NameKey: Lease?] = [:]
        for entry in state.log {
            switch entry {
            case .lease(let key, let old):
                if before.index(forKey: key) == nil { before[key] = .some(old) }
            case .frontier:
                continue
            case .cleared:
                return nil
            }
        }
        var counts: [NameKey: (unpaused: Int64, paused: Int64)] = [:]
        func count(_ lease: Lease) {
            let key = NameKey(lease.callback)
            if lease.paused { counts[key, default: (0, 0)].paused += 1 } else { counts[key, default: (0, 0)].unpaused += 1 }
        }
        for (key, lease) in state.leases where before.isEmpty || before.index(forKey: key) == nil { count(lease) }
        for case let old? in before.values { count(old) }
        return counts
    }

    /// What is wrong with the deadline and holder buckets and the deadline heap, checked against the leases
    /// (for `verifyIndexes`; O(leases)).
    func indexProblems() -> [String] {
        lock.lockShared()
        defer { lock.unlock() }
        var problems = state.byDeadline.mismatches(state.leases, name: "deadline") { $0.deadline }
            + state.byHolder.mismatches(state.leases, name: "holder") { $0.holder }
        let heaped = Set(state.heap)
        for d in state.byDeadline.keys where !heaped.contains(d) {
            problems.append("leases: deadline \(d) is missing from the deadline heap")
        }
        return problems
    }

    /// Every claim frontier, copied (for `verifyIndexes`).
    func allFrontiers() -> [(UInt32, ClaimFrontier)] {
        lock.lockShared()
        defer { lock.unlock() }
        return state.frontiers.map { ($0.key, $0.value) }
    }

    // MARK: Writer

    /// `lease(_:)` without the lock: only the writer changes the table, so its own reads need none.
    func writerLease(_ id: NameKey) -> Lease? { state.leases[id] }

    /// `isLeased(_:)` without the lock (writer only).
    func writerIsLeased(_ id: NameKey) -> Bool { state.leases.index(forKey: id) != nil }

    /// `frontier(_:)` without the lock (writer only).
    func writerFrontier(_ n: UInt32) -> ClaimFrontier? { state.frontiers[n] }

    /// `all()` without the lock (writer only).
    func writerAll() -> [(NameKey, Lease)] { state.leases.map { ($0.key, $0.value) } }

    /// How many ids the bucket of `deadline` keeps, stale ones included (writer only; tests of compaction).
    func keptCount(deadline: Int64) -> Int { state.byDeadline.keptCount(at: deadline) }

    /// How many ids the bucket of `holder` keeps, stale ones included (writer only; tests of compaction).
    func keptCount(holder: UInt64) -> Int { state.byHolder.keptCount(at: holder) }

    /// The ids and holders of the leases whose deadline is at or before `now`, by deadline then id (writer
    /// only). O(expired + stale ids kept for their deadlines), not O(leases).
    func writerExpired(now: Int64) -> [(id: String, holder: UInt64)] { state.expired(now: now) }

    /// The ids of the leases held by `holder`, by deadline then id (writer only). O(its leases + stale ids).
    func writerHeld(by holder: UInt64) -> [String] { state.held(by: holder) }

    /// Sets or ends (`nil`) the lease of `id`, logging the old one.
    func set(_ id: NameKey, _ lease: Lease?) {
        lock.lockExclusive()
        defer { lock.unlock() }
        state.set(id, lease)
    }

    /// Ends the lease of `id` if `accept` accepts it, logging it; returns it. One hash lookup, where a
    /// `writerLease` followed by `set(id, nil)` took two (the ack of a one-off task).
    func take(_ id: NameKey, if accept: (Lease) -> Bool) -> Lease? {
        lock.lockExclusive()
        defer { lock.unlock() }
        return state.take(id, if: accept)
    }

    /// Sets or drops (`nil`) the claim frontier of callback number `n`, logging the old one.
    func setFrontier(_ n: UInt32, _ frontier: ClaimFrontier?) {
        lock.lockExclusive()
        defer { lock.unlock() }
        state.setFrontier(n, frontier)
    }

    /// Drops every lease and frontier (`remove(.all)`), logging them.
    func clearAll() {
        lock.lockExclusive()
        defer { lock.unlock() }
        state.clearAll()
    }

    /// Where the log stands: what `rollback(to:)` returns to.
    var mark: Int { state.log.count }

    /// Undoes the changes logged after `mark`, newest first (the transaction aborted, or a nested one failed).
    func rollback(to mark: Int) {
        guard state.log.count > mark else { return }
        lock.lockExclusive()
        defer { lock.unlock() }
        state.rollback(to: mark)
    }

    /// Forgets the log (the transaction committed) and pops ended deadlines off the heap; records that the
    /// table now goes with LMDB's committed transaction `transactionID` (for `leaseCounts(asOfTransaction:)`).
    /// Under the lock: it changes `state`, which readers read (once per commit, so the lock costs nothing that
    /// matters).
    func commitLog(transactionID: Int) {
        lock.lockExclusive()
        defer { lock.unlock() }
        state.committedTransactionID = transactionID
        state.log.removeAll(keepingCapacity: state.log.count <= 4096)
        if state.needsSettling { state.settle() }
    }
}

extension LeaseTable {
    /// What one change replaced.
    private enum Undo {
        case lease(NameKey, Lease?)
        case frontier(UInt32, ClaimFrontier?)
        case cleared([NameKey: Lease], [UInt32: ClaimFrontier], LeaseBuckets<Int64>, LeaseBuckets<UInt64>)
    }

    /// The table's data.
    ///
    /// Deadlines: `byDeadline` keeps the leases of each deadline (`LeaseBuckets`), and `heap` is a binary
    /// min-heap of deadline values: a value is pushed when its bucket is made, and a heap entry without a
    /// bucket is stale and popped when it reaches the top (`settle`). The leases of one claim share a
    /// deadline, so a batch of them is one heap entry; and the heap holds plain integers (a heap of
    /// (deadline, id) pairs retained and released an id string at every swap, and cost ~700 instructions per
    /// lease). `byHolder` keeps the leases of each holder, for `releaseHolder`.
    private struct State {
        var leases: [NameKey: Lease] = [:]
        var frontiers: [UInt32: ClaimFrontier] = [:]
        var heap: [Int64] = []
        var byDeadline = LeaseBuckets<Int64>()
        var byHolder = LeaseBuckets<UInt64>()
        var log: [Undo] = []
        /// The LMDB transaction the table (without `log`) goes with: the last commit that wrote when the
        /// table's last change committed.
        var committedTransactionID = 0

        mutating func set(_ id: NameKey, _ lease: Lease?) {
            let old = lease.map { leases.updateValue($0, forKey: id) } ?? leases.removeValue(forKey: id)
            reindex(id, from: BucketKeys(old), to: BucketKeys(lease))
            log.append(.lease(id, old))
        }

        mutating func take(_ id: NameKey, if accept: (Lease) -> Bool) -> Lease? {
            guard let index = leases.index(forKey: id), accept(leases.values[index]) else { return nil }
            let old = leases.remove(at: index).value
            reindex(id, from: BucketKeys(old), to: nil)
            log.append(.lease(id, old))
            return old
        }

        /// A lease's deadline and holder. `reindex` takes these plain values rather than the leases: optional
        /// chaining through a `Lease?` (and closures capturing one) copied the whole lease, retaining its
        /// strings, six times per change.
        private struct BucketKeys {
            var deadline: Int64
            var holder: UInt64

            init?(_ lease: Lease?) {
                guard let lease else { return nil }
                deadline = lease.deadline
                holder = lease.holder
            }
        }

        /// Moves `id` between the deadline and holder buckets: it had a lease with keys `old` and has one
        /// with `new` now (already in `leases`, which compaction reads).
        private mutating func reindex(_ id: NameKey, from old: BucketKeys?, to new: BucketKeys?) {
            if byDeadline.move(id, from: old?.deadline, to: new?.deadline, leases: leases, key: { $0.deadline }) {
                push(new!.deadline)
            }
            byHolder.move(id, from: old?.holder, to: new?.holder, leases: leases, key: { $0.holder })
        }

        /// See `LeaseTable.writerExpired(now:)`.
        func expired(now: Int64) -> [(id: String, holder: UInt64)] {
            // The heap's entries at or before `now` form a subtree at its root: walk only that.
            var deadlines: [Int64] = []
            var stack = heap.isEmpty ? [] : [0]
            while let i = stack.popLast() {
                guard heap[i] <= now else { continue }
                if byDeadline.contains(heap[i]) { deadlines.append(heap[i]) }
                if 2 * i + 1 < heap.count { stack.append(2 * i + 1) }
                if 2 * i + 2 < heap.count { stack.append(2 * i + 2) }
            }
            // A deadline pushed again after its bucket went and came back sits in the heap twice.
            deadlines.sort()
            var out: [(id: String, holder: UInt64)] = []
            var previous: Int64?
            for d in deadlines where d != previous {
                previous = d
                out += byDeadline.liveIDs(at: d) { leases[$0]?.deadline == d }
                    .map { (id: $0.name, holder: leases[$0]!.holder) }
                    .sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
            }
            return out
        }

        /// See `LeaseTable.writerHeld(by:)`.
        func held(by holder: UInt64) -> [String] {
            byHolder.liveIDs(at: holder) { leases[$0]?.holder == holder }
                .map { (deadline: leases[$0]!.deadline, id: $0.name) }
                .sorted { positionPrecedes($0, $1) }
                .map(\.id)
        }

        mutating func setFrontier(_ n: UInt32, _ frontier: ClaimFrontier?) {
            let old: ClaimFrontier?
            if let frontier {
                old = frontiers.updateValue(frontier, forKey: n)
            } else {
                old = frontiers.removeValue(forKey: n)
            }
            log.append(.frontier(n, old))
        }

        mutating func clearAll() {
            log.append(.cleared(leases, frontiers, byDeadline, byHolder))
            leases = [:]
            frontiers = [:]
            byDeadline = LeaseBuckets()
            byHolder = LeaseBuckets()
            heap = []
        }

        mutating func rollback(to mark: Int) {
            while log.count > mark {
                switch log.removeLast() {
                case .lease(let id, let old):
                    // The inverse of `set`: put the old lease back (or end the new one).
                    let current = old.map { leases.updateValue($0, forKey: id) } ?? leases.removeValue(forKey: id)
                    reindex(id, from: BucketKeys(current), to: BucketKeys(old))
                case .frontier(let n, let old):
                    frontiers[n] = old
                case .cleared(let oldLeases, let oldFrontiers, let oldByDeadline, let oldByHolder):
                    leases = oldLeases
                    frontiers = oldFrontiers
                    byDeadline = oldByDeadline
                    byHolder = oldByHolder
                    heap = []
                    for d in byDeadline.keys { push(d) }
                }
            }
            settle()
        }

        /// Whether the heap's top is stale, or stale entries make up most of it.
        var needsSettling: Bool {
            guard let top = heap.first else { return false }
            return !byDeadline.contains(top) || heap.count > 2 * byDeadline.count + 1024
        }

        /// Pops stale entries off the top, so that the top is the earliest deadline of a lease, and rebuilds
        /// the heap when stale entries inside it make up most of it.
        mutating func settle() {
            while let top = heap.first, !byDeadline.contains(top) { popTop() }
            if heap.count > 2 * byDeadline.count + 1024 {
                heap = []
                for d in byDeadline.keys { push(d) }
            }
        }

        private mutating func push(_ deadline: Int64) {
            heap.append(deadline)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard deadline < heap[parent] else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }

        private mutating func popTop() {
            let last = heap.removeLast()
            guard !heap.isEmpty else { return }
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1
                guard l < n else { return }
                var least = l
                if l + 1 < n && heap[l + 1] < heap[l] { least = l + 1 }
                guard heap[least] < heap[i] else { return }
                heap.swapAt(i, least)
                i = least
            }
        }
    }
}

/// The leases of each key (a deadline, a holder), kept for the writer's "which leases end" questions.
///
/// The ids are kept lazily: an id is appended when a lease with that key begins, and left in place when it
/// ends or moves; `live` counts the leases that have the key, and the bucket goes when it reaches 0. So the
/// hot path (a claim, an ack) appends one id or changes one count, and never hashes the id again; a question
/// checks each id against the lease table (`liveIDs`). A bucket whose kept ids reach twice its live count
/// plus 32 on an insert, or plus 4,096 on a removal, is compacted, so a holder that never runs dry (a busy
/// worker) does not grow without end, and a 100k-lease claim acked but for one lease keeps at most ~4k ids for
/// that one. Each compaction at least halves the ids, so its cost is amortized over the changes that made
/// them stale.
struct LeaseBuckets<Key: Hashable> {
    private struct Bucket {
        var live: Int
        var ids: [NameKey]
    }

    private var buckets: [Key: Bucket] = [:]
    /// The bucket changed last and where it is in `buckets`: the leases of one claim share a deadline and a
    /// holder, so a claim's inserts and its acks' removals find their bucket here without hashing the key
    /// (four hash lookups per delivery otherwise). A dictionary index stays valid while no key is added or
    /// removed (its values may change, and copies of the dictionary keep it); every path that adds or removes
    /// a key resets this.
    private var recent: (key: Key, index: Dictionary<Key, Bucket>.Index)?

    /// The keys with at least one lease.
    var keys: [Key] { Array(buckets.keys) }

    /// How many keys have leases.
    var count: Int { buckets.count }

    /// Whether `key` has leases.
    func contains(_ key: Key) -> Bool { buckets[key] != nil }

    /// Moves the lease of task `id` from key `old` to key `new` (`nil`: it begins, or ends), compacting a
    /// bucket it leaves crowded. `leases` (the table, already changed) and `key` tell compaction which kept ids
    /// are live. Returns whether `new`'s bucket was made (its key had no lease before).
    @discardableResult
    mutating func move(
        _ id: NameKey, from old: Key?, to new: Key?, leases: [NameKey: Lease], key: (Lease) -> Key
    ) -> Bool {
        guard old != new else { return false }
        if let old, remove(at: old) { compact(at: old) { leases[$0].map(key) == old } }
        guard let new else { return false }
        let (made, crowded) = insert(id, at: new)
        if crowded { compact(at: new) { leases[$0].map(key) == new } }
        return made
    }

    /// Counts a lease that now has `key`, whose task is `id`. Returns whether the key had none before
    /// (`made`), and whether it keeps twice its live ids plus 32 (`crowded`: the caller compacts it).
    private mutating func insert(_ id: NameKey, at key: Key) -> (made: Bool, crowded: Bool) {
        if let index = index(of: key) { return Self.add(id, to: &buckets.values[index]) }
        buckets[key] = Bucket(live: 1, ids: [id])
        recent = (key, buckets.index(forKey: key)!)
        return (true, false)
    }

    /// Where `key`'s bucket is in `buckets` (`recent`, or one hash lookup that then becomes `recent`).
    @inline(__always)
    private mutating func index(of key: Key) -> Dictionary<Key, Bucket>.Index? {
        if let recent, recent.key == key { return recent.index }
        guard let index = buckets.index(forKey: key) else { return nil }
        recent = (key, index)
        return index
    }

    private static func add(_ id: NameKey, to bucket: inout Bucket) -> (made: Bool, crowded: Bool) {
        bucket.live += 1
        bucket.ids.append(id)
        return (bucket.live == 1, bucket.ids.count >= 2 * bucket.live + 32)
    }

    /// Drops the ids of `key` that `isLive` rejects, and repeats.
    private mutating func compact(at key: Key, live isLive: (NameKey) -> Bool) {
        guard let index = index(of: key) else { return }
        buckets.values[index].ids = Self.unique(buckets.values[index].ids.filter(isLive))
    }

    /// Uncounts a lease that had `key` (its id stays until a question or a compaction drops it). Returns
    /// whether the key keeps more than twice its live ids plus 4,096 (`crowded`: the caller compacts it).
    /// The slack is wider than an insert's: the acks of a claim empty its buckets one removal at a time, and
    /// compacting them on the way cost ~1,900 instructions per delivery (`git show 4615f6e:BENCHMARKS.md`, 5.11).
    private mutating func remove(at key: Key) -> Bool {
        guard let index = index(of: key) else { return false }
        let (emptied, crowded) = Self.drop(&buckets.values[index])
        if emptied {
            buckets.remove(at: index)
            recent = nil
        }
        return crowded
    }

    /// `remove` on the bucket in place (one access): whether its last lease went, and whether it is crowded.
    private static func drop(_ bucket: inout Bucket) -> (emptied: Bool, crowded: Bool) {
        bucket.live -= 1
        return (bucket.live == 0, bucket.ids.count >= 2 * bucket.live + 4096)
    }

    /// How many ids `key` keeps, stale ones included (for tests of the compaction).
    func keptCount(at key: Key) -> Int { buckets[key]?.ids.count ?? 0 }

    /// The ids of `key`'s leases: its kept ids that `isLive` accepts, each once.
    func liveIDs(at key: Key, live isLive: (NameKey) -> Bool) -> [NameKey] {
        guard let bucket = buckets[key] else { return [] }
        return Self.unique(bucket.ids.filter(isLive))
    }

    /// What is wrong with the buckets, given the leases they should hold (`key` gives a lease's key): a live
    /// count that differs from the leases of its key, or a lease whose id is not kept under its key.
    func mismatches(_ leases: [NameKey: Lease], name: String, key: (Lease) -> Key) -> [String] {
        var problems: [String] = []
        var live: [Key: Int] = [:]
        var kept: [Key: Set<NameKey>] = [:]
        for (id, lease) in leases {
            let k = key(lease)
            live[k, default: 0] += 1
            if kept[k] == nil { kept[k] = Set(buckets[k]?.ids ?? []) }
            if !kept[k]!.contains(id) {
                problems.append("leases: the lease of \"\(id.name)\" is not kept under its \(name) \(k)")
            }
        }
        for (k, bucket) in buckets where live[k] != bucket.live {
            problems.append("leases: \(name) \(k) counts \(bucket.live) leases, not \(live[k] ?? 0)")
        }
        for k in live.keys where buckets[k] == nil {
            problems.append("leases: \(name) \(k) has leases but no bucket")
        }
        return problems
    }

    private static func unique(_ ids: [NameKey]) -> [NameKey] {
        var seen = Set<NameKey>(minimumCapacity: ids.count)
        return ids.filter { seen.insert($0).inserted }
    }
}
