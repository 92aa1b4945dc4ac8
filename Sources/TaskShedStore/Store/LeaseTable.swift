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
    /// The task's callback and paused flag, kept current by `StoreContext.save` so that `stats` can count
    /// leases per callback without loading records.
    var callback: String
    var paused: Bool

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

/// Lease changes made inside one write transaction, applied to the `LeaseTable` when the transaction commits
/// and dropped when it aborts (a nested transaction works on a copy that replaces its parent's on commit).
struct LeaseChanges {
    /// Set or ended (`nil`) leases by task id.
    var leases: [NameKey: Lease?] = [:]
    /// Set or dropped (`nil`) claim frontiers by callback number.
    var frontiers: [UInt32: ClaimFrontier?] = [:]
    /// Every lease and frontier of the table was dropped first (`remove(.all)`).
    var clearedAll = false

    var isEmpty: Bool { leases.isEmpty && frontiers.isEmpty && !clearedAll }
}

/// A position in one callback's part of `callback_wake` (runAt, id): see `LeaseTable`.
typealias ClaimFrontier = (runAt: Int64, id: String)

/// The leases of a store: in memory, shared by the writer (which changes them only when a write transaction
/// commits) and the readers.
///
/// Besides the leases by id it keeps, per callback number, a **claim frontier**: a `callback_wake` position
/// such that every entry of that callback at or before it is leased. Leased tasks keep their `callback_wake`
/// entries, so a claim (and the next wake-up of a callback) must skip them; with the frontier it starts after
/// the entries it knows are leased instead of walking every outstanding lease. A claim moves the frontier over
/// the entries it took; anything that puts an unleased entry at or below it (an add, a reschedule, a lease
/// that ends while its entry stays) drops it, and the next claim walks that callback from its first entry.
///
/// - Important: `apply` and `revert` are called by the writer only (under the store's writer lock); every
///   other method may be called from any thread. Readers see the table as of the last `apply`, which runs
///   just before the LMDB commit: a read racing a commit may pair the new leases with the previous snapshot
///   (a task acked a moment ago then shows as scheduled) but never leaves a due task hidden behind a lease
///   that the snapshot has already ended.
final class LeaseTable: @unchecked Sendable {
    private let lock = PthreadRWLock()
    private var leases: [NameKey: Lease] = [:]
    private var frontiers: [UInt32: ClaimFrontier] = [:]
    /// (deadline, id) of every lease, as a binary min-heap; an entry whose lease has ended or moved is stale
    /// and popped when it reaches the top (`apply` keeps the top current).
    private var deadlines: [(Int64, NameKey)] = []

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

    /// How many tasks are leased.
    var count: Int {
        lock.lockShared()
        defer { lock.unlock() }
        return leases.count
    }

    /// Every claim frontier, copied (for `verifyIndexes`).
    func allFrontiers() -> [(UInt32, ClaimFrontier)] {
        lock.lockShared()
        defer { lock.unlock() }
        return frontiers.map { ($0.key, $0.value) }
    }

    /// What `apply` replaced, for `revert`.
    struct Undo {
        fileprivate var cleared: (leases: [NameKey: Lease], frontiers: [UInt32: ClaimFrontier])?
        fileprivate var leases: [NameKey: Lease?] = [:]
        fileprivate var frontiers: [UInt32: ClaimFrontier?] = [:]
    }

    /// Applies a committing transaction's changes. Writer only.
    /// - Returns: What to give to `revert` if the LMDB commit then fails.
    func apply(_ changes: LeaseChanges) -> Undo {
        var undo = Undo()
        guard !changes.isEmpty else { return undo }
        lock.lockExclusive()
        defer { lock.unlock() }
        if changes.clearedAll {
            undo.cleared = (leases, frontiers)
            leases = [:]
            frontiers = [:]
            deadlines = []
        }
        for (id, lease) in changes.leases {
            let old: Lease?
            if let lease {
                old = leases.updateValue(lease, forKey: id)
                if old?.deadline != lease.deadline { push((lease.deadline, id)) }
            } else {
                old = leases.removeValue(forKey: id)
            }
            if undo.cleared == nil, undo.leases[id] == nil { undo.leases[id] = .some(old) }
        }
        for (n, key) in changes.frontiers {
            let old: ClaimFrontier?
            if let key { old = frontiers.updateValue(key, forKey: n) } else { old = frontiers.removeValue(forKey: n) }
            if undo.cleared == nil, undo.frontiers[n] == nil { undo.frontiers[n] = .some(old) }
        }
        settleDeadlines()
        return undo
    }

    /// Puts back what `apply` changed (the LMDB commit failed). Writer only.
    func revert(_ undo: Undo) {
        lock.lockExclusive()
        defer { lock.unlock() }
        if let cleared = undo.cleared {
            leases = cleared.leases
            frontiers = cleared.frontiers
            rebuildDeadlines()
            return
        }
        for (id, old) in undo.leases {
            if let old {
                leases[id] = old
                push((old.deadline, id))
            } else {
                leases.removeValue(forKey: id)
            }
        }
        for (n, old) in undo.frontiers { frontiers[n] = old }
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
