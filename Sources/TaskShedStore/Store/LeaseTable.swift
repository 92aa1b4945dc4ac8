/// A lease: a claimed task's delivery, held in memory only (`LeaseTable`), never in the store's files.
///
/// A claim writes nothing to LMDB: the task's record and its `callback_wake` (or `paused`) entry stay as they
/// were, and the lease is laid over the record by every load (`apply(to:)`), so the rest of the store sees one
/// task in the leased state. Leases do not outlive the store object: after a restart every task a worker held
/// is due again at its `runAt`, with the delivery not counted, which is what the daemon did at start-up when
/// leases were stored (it released them all). See LAYOUT.md, "Leases".
struct Lease: Equatable {
    var deadline: Int64
    var holder: UInt64
    /// The delivery's attempt; the record keeps `attempt - 1` until the lease ends.
    var attempt: UInt32
    /// The delivery's run time (`max(runAt, claim time)`).
    var lastRunAt: Int64?
    /// The record's `lastRunAt` before the claim: written back if the record is rewritten while leased.
    var baseLastRunAt: Int64?
    /// The task's callback, paused flag, run time, group and kind, kept current by `StoreContext.save`: `stats`
    /// counts leases per callback, and the ack of a one-off task removes it and its index entries, without
    /// loading (decoding) its record.
    var callback: String
    var paused: Bool
    var runAt: Int64
    var group: String?
    var recurring: Bool

    /// Lays the lease over a task decoded from its record: leased, with this attempt, run time, deadline and
    /// holder.
    func apply(to task: inout StoredTask) {
        task.record.state = .leased
        task.record.attempt = attempt
        task.record.lastRunAt = lastRunAt
        task.record.leaseDeadline = deadline
        task.lease = self
    }
}

/// A position in one callback's part of `callback_wake` (runAt, id): see `LeaseTable`.
typealias ClaimFrontier = (runAt: Int64, id: String)

/// The leases of a store: in memory, shared by the writer (which changes them inside its write transactions)
/// and the readers.
///
/// Besides the leases by id it keeps, per callback number, a **claim frontier**: a `callback_wake` position
/// such that every entry of that callback at or before it is leased. Leased tasks keep their `callback_wake`
/// entries, so a claim (and the next wake-up of a callback) must skip them; with the frontier it starts after
/// the entries it knows are leased instead of walking every outstanding lease. A claim moves the frontier over
/// the entries it took; anything that puts an unleased entry at or before it (an add, a reschedule, a lease
/// that ends while its entry stays) drops it, and the next claim walks that callback from its first entry.
///
/// The writer changes the table in place as its operations run and logs what each change replaced: a
/// transaction that aborts (or a nested one that fails) rolls the table back to where it began
/// (`rollback(to:)`), one that commits drops its log (`commitLog()`). In place, because staging the changes
/// and applying them at the commit hashed every id twice more per delivery (BENCHMARKS.md 5.10).
///
/// - Important: The `writer…` methods, `set`, `setFrontier`, `clearAll`, `mark`, `rollback(to:)` and
///   `commitLog()` are for the writer only (under the store's writer lock); the others may be called from any
///   thread. Readers see the writer's changes as they are made, before its LMDB commit: a read racing a
///   write may pair a lease with the previous snapshot (a task acked a moment ago shows as scheduled, or a
///   task whose claim is then rolled back shows as leased for that moment), but never leaves a due task
///   hidden behind a lease that its snapshot has already ended.
final class LeaseTable: @unchecked Sendable {
    private let lock = PthreadRWLock()
    private var leases: [NameKey: Lease] = [:]
    private var frontiers: [UInt32: ClaimFrontier] = [:]
    /// (deadline, id) of every lease, as a binary min-heap; an entry whose lease has ended or moved is stale
    /// and popped when it reaches the top (`commitLog` keeps the top current).
    private var deadlines: [(Int64, NameKey)] = []

    /// What one change replaced. Writer only.
    private enum Undo {
        case lease(NameKey, Lease?)
        case frontier(UInt32, ClaimFrontier?)
        case cleared([NameKey: Lease], [UInt32: ClaimFrontier])
    }
    private var log: [Undo] = []

    // MARK: Readers (any thread)

    /// The lease of task `id`, if it is leased.
    func lease(_ id: NameKey) -> Lease? {
        lock.lockShared()
        defer { lock.unlock() }
        return leases[id]
    }

    /// The claim frontier of callback number `n`.
    func frontier(_ n: UInt32) -> ClaimFrontier? {
        lock.lockShared()
        defer { lock.unlock() }
        return frontiers[n]
    }

    /// The earliest lease deadline. O(1).
    func earliestDeadline() -> Int64? {
        lock.lockShared()
        defer { lock.unlock() }
        return deadlines.first?.0
    }

    /// Every lease, copied (O(leases)).
    func all() -> [(NameKey, Lease)] {
        lock.lockShared()
        defer { lock.unlock() }
        return leases.map { ($0.key, $0.value) }
    }

    /// Every claim frontier, copied (for `verifyIndexes`).
    func allFrontiers() -> [(UInt32, ClaimFrontier)] {
        lock.lockShared()
        defer { lock.unlock() }
        return frontiers.map { ($0.key, $0.value) }
    }

    // MARK: Writer

    /// `lease(_:)` without the lock: only the writer changes the table, so its own reads need none.
    func writerLease(_ id: NameKey) -> Lease? { leases[id] }

    /// `frontier(_:)` without the lock (writer only).
    func writerFrontier(_ n: UInt32) -> ClaimFrontier? { frontiers[n] }

    /// `all()` without the lock (writer only).
    func writerAll() -> [(NameKey, Lease)] { leases.map { ($0.key, $0.value) } }

    /// Sets or ends (`nil`) the lease of `id`, logging the old one.
    func set(_ id: NameKey, _ lease: Lease?) {
        lock.lockExclusive()
        defer { lock.unlock() }
        let old: Lease?
        if let lease {
            old = leases.updateValue(lease, forKey: id)
            if old?.deadline != lease.deadline { push((lease.deadline, id)) }
        } else {
            old = leases.removeValue(forKey: id)
        }
        log.append(.lease(id, old))
    }

    /// Sets or drops (`nil`) the claim frontier of callback number `n`, logging the old one.
    func setFrontier(_ n: UInt32, _ frontier: ClaimFrontier?) {
        lock.lockExclusive()
        defer { lock.unlock() }
        let old: ClaimFrontier?
        if let frontier {
            old = frontiers.updateValue(frontier, forKey: n)
        } else {
            old = frontiers.removeValue(forKey: n)
        }
        log.append(.frontier(n, old))
    }

    /// Drops every lease and frontier (`remove(.all)`), logging them.
    func clearAll() {
        lock.lockExclusive()
        defer { lock.unlock() }
        log.append(.cleared(leases, frontiers))
        leases = [:]
        frontiers = [:]
        deadlines = []
    }

    /// Where the log stands: what `rollback(to:)` returns to.
    var mark: Int { log.count }

    /// Undoes the changes logged after `mark`, newest first (the transaction aborted, or a nested one failed).
    func rollback(to mark: Int) {
        guard log.count > mark else { return }
        lock.lockExclusive()
        defer { lock.unlock() }
        var rebuild = false
        while log.count > mark {
            switch log.removeLast() {
            case .lease(let id, let old):
                if let old {
                    leases[id] = old
                    push((old.deadline, id))
                } else {
                    leases.removeValue(forKey: id)
                }
            case .frontier(let n, let old):
                frontiers[n] = old
            case .cleared(let oldLeases, let oldFrontiers):
                leases = oldLeases
                frontiers = oldFrontiers
                rebuild = true
            }
        }
        if rebuild { rebuildDeadlines() }
        settleDeadlines()
    }

    /// Forgets the log (the transaction committed) and settles the deadline heap.
    func commitLog() {
        log.removeAll(keepingCapacity: log.count <= 4096)
        let staleTop = deadlines.first.map { leases[$0.1]?.deadline != $0.0 } ?? false
        guard staleTop || deadlines.count > 2 * leases.count + 1024 else { return }
        lock.lockExclusive()
        defer { lock.unlock() }
        settleDeadlines()
    }

    // MARK: Deadline heap (caller holds the lock exclusively)

    /// Pops stale entries off the top, so that `earliestDeadline` is exact, and rebuilds the heap when stale
    /// entries make up most of it (each ended lease leaves one behind until it reaches the top).
    private func settleDeadlines() {
        while let top = deadlines.first, leases[top.1]?.deadline != top.0 { popTop() }
        if deadlines.count > 2 * leases.count + 1024 { rebuildDeadlines() }
    }

    private func rebuildDeadlines() {
        deadlines = leases.map { ($0.value.deadline, $0.key) }
        guard deadlines.count > 1 else { return }
        for i in stride(from: deadlines.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    private func push(_ entry: (Int64, NameKey)) {
        deadlines.append(entry)
        var i = deadlines.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard entry.0 < deadlines[parent].0 else { break }
            deadlines.swapAt(i, parent)
            i = parent
        }
    }

    private func popTop() {
        let last = deadlines.removeLast()
        guard !deadlines.isEmpty else { return }
        deadlines[0] = last
        siftDown(0)
    }

    private func siftDown(_ start: Int) {
        var i = start
        let n = deadlines.count
        while true {
            let l = 2 * i + 1
            guard l < n else { return }
            var least = l
            if l + 1 < n && deadlines[l + 1].0 < deadlines[l].0 { least = l + 1 }
            guard deadlines[least].0 < deadlines[i].0 else { return }
            deadlines.swapAt(i, least)
            i = least
        }
    }
}
