import Foundation
import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// Random write batches (a few requests each, isolating or not, some aborted, the store sometimes reopened)
/// over a small pool of ids, checked after every batch against a scan of the tasks:
/// - every claim returns exactly the tasks a brute-force pick from the batch's own view would (so a claim
///   frontier never hides a due task, and never hands out a leased one);
/// - every read path (`list` with each filter, `fetch`, both `earliestRunAt`s, `earliestLeaseDeadline`,
///   `stats`) agrees with the scan, and `verifyIndexes()` finds nothing (LMDB);
/// - `expireLeases` and `releaseHolder` end exactly the leases that the batch's own view of the tasks (and, with
///   LMDB, the lease table) says they should, by deadline then id;
/// - an aborted batch leaves the tasks exactly as they were, and with LMDB the lease table, its frontiers and the
///   earliest deadline too.
/// The random runs go for every store kind in `behaviourKinds`. The small-map case (LMDB only) runs the
/// grow-and-rerun and nested-transaction (full map) paths with leases in flight.
@Suite("Random batches against a brute-force model: claims, leases, frontiers, rollback")
struct LeaseModelTests {
    @Test(arguments: behaviourKinds)
    func claimsAndReadsMatchAScanAfterRandomBatches(kind: StoreKind) throws {
        var problems: [String] = []
        for seed in UInt64(1)...24 {
            problems += try ModelRun(kind: kind, seed: seed, options: testOptions(), kwargsBytes: 0).run(batches: 120)
        }
        #expect(problems.prefix(20) == [])
    }

    /// LMDB only: the map's growth and a full map.
    @Test func aFullMapKeepsLeasesConsistent() throws {
        var problems: [String] = []
        for seed in UInt64(1)...8 {
            var options = testOptions()
            options.initialMapBytes = 64 << 10
            options.maxMapBytes = 256 << 10
            options.writeMap = seed % 2 == 0
            problems += try ModelRun(kind: .lmdb, seed: 1000 + seed, options: options, kwargsBytes: 30_000)
                .run(batches: 100)
        }
        #expect(problems.prefix(20) == [])
    }
}

/// One seeded run of `LeaseModelTests`.
private struct ModelRun {
    static let ids = (0..<14).map { "t\($0)" }
    static let callbacks = ["a", "b", "c"]
    static let groups: [String?] = [nil, "g1", "g2"]

    let kind: StoreKind
    let seed: UInt64
    let options: StoreOptions
    /// Up to how many bytes of padding a task's kwargs get (large ones fill a small map).
    let kwargsBytes: Int

    /// Runs `batches` random batches.
    /// - Returns: Every disagreement found, each naming the seed and batch.
    func run(batches: Int) throws -> [String] {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open(options: options, seed: seed)
        defer { store.close() }
        var random = SeededRandom(seed: seed &* 7919)
        var problems: [String] = []
        // The leases the model believes current: id -> (attempt, holder).
        var leases: [String: (UInt32, UInt64)] = [:]
        var now = t0
        for batch in 0..<batches {
            now += Int64.random(in: 0...3, using: &random) * second
            if Double.random(in: 0..<1, using: &random) < 0.04 {
                store = try fixture.reopen(store, options: options, seed: seed + UInt64(batch))
                leases = [:]
            }
            let isolating = Bool.random(using: &random)
            let requests = Int.random(in: 1...10, using: &random)
            let abort = Double.random(in: 0..<1, using: &random) < 0.12
            let batchSeed = random.next()
            let tasksBefore = try store.all(now: now)
            let lmdb = store as? LMDBTaskStore
            let tableBefore = lmdb.map(Self.describeLeaseTable)
            let label = "seed \(seed) batch \(batch)"
            let state = BatchState(leases: leases, table: lmdb?.leaseTable)
            var committed = false
            do {
                try runBatch(store, isolating: isolating, requests: requests, abort: abort, seed: batchSeed,
                             state: state, leases: leases, now: now)
                committed = true
            } catch {}
            problems += state.problems.map { "\(label): \($0)" }
            if committed {
                leases = state.leases
            } else {
                if try store.all(now: now) != tasksBefore { problems.append("\(label): an aborted batch changed tasks") }
                if let lmdb, Self.describeLeaseTable(lmdb) != tableBefore {
                    problems.append("\(label): an aborted batch changed the lease table")
                }
            }
            problems += try Self.checkReads(store, now: now).map { "\(label): \($0)" }
            if problems.count > 20 { break }
        }
        return problems
    }

    /// Runs one batch of `requests` random requests (drawn from `seed`) in one write of `store`.
    /// - Throws: What the write throws: a request's error without isolation, the test's abort.
    private func runBatch<S: TaskStore>(
        _ store: S, isolating: Bool, requests: Int, abort: Bool, seed: UInt64, state: BatchState,
        leases: [String: (UInt32, UInt64)], now: Int64
    ) throws {
        try store.write(isolatingRequests: isolating) { (b: inout S.WriteBatch) throws(StoreError) in
            // The body may run again (map growth): start from the same state each time.
            state.reset(leases: leases)
            var requestRandom = SeededRandom(seed: seed)
            for _ in 0..<requests {
                RandomRequest(state: state, now: now, kwargsBytes: kwargsBytes)
                    .run(&b, &requestRandom)
            }
            if abort { throw StoreError(code: .internalError, message: "test abort") }
        }
    }

    /// LMDB's lease table, its frontiers and its earliest deadline as text.
    static func describeLeaseTable(_ store: LMDBTaskStore) -> String {
        let leases = store.leaseTable.all()
            .map { "\($0.0.name):\($0.1.deadline)/\($0.1.holder)/\($0.1.attempt)/\($0.1.paused)" }.sorted()
        let frontiers = store.leaseTable.allFrontiers().map { (n, f) in
            "\(n):\(f.bound.runAt) \(f.bound.id) [\(f.holes.map { "\($0.runAt) \($0.id)" }.joined(separator: ","))]"
        }.sorted()
        return (leases + frontiers).joined(separator: ";") + " next \(String(describing: store.leaseTable.earliestDeadline()))"
    }

    /// Every read path against a scan of the tasks.
    static func checkReads(_ store: any TaskStore, now: Int64) throws -> [String] {
        var problems: [String] = []
        if let lmdb = store as? LMDBTaskStore {
            let verified = try lmdb.verifyIndexes()
            if !verified.isEmpty { problems.append("verifyIndexes: \(verified)") }
        }
        let scan = try store.all(now: now, pageSize: 3)
        if scan != scan.sorted(by: precedes) { problems.append("list is not in (runAt, id) order") }
        if try store.fetch(.ids(ids)).sorted(by: precedes) != scan { problems.append("fetch of every id differs from list") }
        let scheduled = scan.filter { $0.state == .scheduled && !$0.paused }
        for callback in callbacks + ["zz"] {
            let want = scheduled.filter { $0.callback == callback }.map(\.runAt).min()
            if try store.earliestRunAt(callback: callback) != want { problems.append("earliestRunAt(\(callback))") }
        }
        if try store.earliestRunAt() != scheduled.map(\.runAt).min() { problems.append("earliestRunAt()") }
        let leased = scan.filter { $0.state == .leased }
        if try store.earliestLeaseDeadline() != leased.compactMap(\.leaseDeadline).min() {
            problems.append("earliestLeaseDeadline")
        }
        let stats = try store.stats(now: now)
        let due = scheduled.filter { $0.runAt <= now }.count
        let counted = [stats.due, stats.pending, stats.paused, stats.leased, stats.dead]
        let expected = [
            due, scheduled.count - due, scan.filter { $0.state == .scheduled && $0.paused }.count, leased.count,
            scan.filter { $0.state == .dead }.count,
        ].map(UInt64.init)
        if counted != expected { problems.append("stats \(counted), a scan says \(expected)") }
        for c in stats.callbacks {
            let mine = scan.filter { $0.callback == c.callback }
            let want = [
                mine.filter { $0.state == .scheduled }.count,
                mine.filter { $0.state == .scheduled && !$0.paused && $0.runAt <= now }.count,
                mine.filter { $0.state == .leased }.count, mine.filter { $0.state == .dead }.count,
            ].map(UInt64.init)
            if [c.scheduled, c.due, c.leased, c.dead] != want { problems.append("stats of \(c.callback)") }
        }
        for state in StateFilter.allCases {
            for callback in [nil] + callbacks.map(Optional.some) {
                for group in [nil, "g1"] as [String?] {
                    let got = try store.all(now: now, filter: TaskFilter(group: group, state: state, callback: callback), pageSize: 2)
                    let want = scan.filter { r in
                        if let callback, r.callback != callback { return false }
                        if let group, r.group != group { return false }
                        switch state {
                        case .pending: return r.state == .scheduled && !r.paused && r.runAt > now
                        case .due: return r.state == .scheduled && !r.paused && r.runAt <= now
                        case .paused: return r.state == .scheduled && r.paused
                        case .leased: return r.state == .leased
                        case .dead: return r.state == .dead
                        }
                    }
                    if got != want { problems.append("list(\(state), \(callback ?? "-"), \(group ?? "-"))") }
                }
            }
        }
        return problems
    }

    static func precedes(_ a: TaskRecord, _ b: TaskRecord) -> Bool { positionPrecedes((a.runAt, a.id), (b.runAt, b.id)) }

    /// The ids of the leased tasks among `records` that `include` selects, by deadline then id (brute force).
    static func leasedIDs(_ records: [TaskRecord], where include: (TaskRecord) -> Bool) -> [String] {
        records.filter { $0.state == .leased && include($0) }.map { ($0.leaseDeadline ?? .max, $0.id) }
            .sorted { positionPrecedes($0, $1) }.map(\.1)
    }
}

/// What the requests of one batch share: the model's leases and the problems found.
private final class BatchState {
    /// The leases the model believes current: id -> (attempt, holder) of the last claim of the task. Entries of
    /// leases that ended without a request naming the task (expiry, a holder's release, a removal by group) stay,
    /// but every leased task has the entry of the claim that leased it.
    var leases: [String: (UInt32, UInt64)]
    var problems: [String] = []
    /// LMDB's lease table (`nil` for other stores): what expiry and worker-gone must end, read by the writer (the
    /// batch body).
    let table: LeaseTable?

    init(leases: [String: (UInt32, UInt64)], table: LeaseTable?) {
        self.leases = leases
        self.table = table
    }

    /// The ids of the current leases in LMDB's lease table that `include` selects, by deadline then id (brute
    /// force); `nil` without a lease table.
    func leaseIDs(where include: (Lease) -> Bool) -> [String]? {
        table.map { table in
            table.writerAll().filter { include($0.1) }.map { ($0.1.deadline, $0.0.name) }
                .sorted { positionPrecedes($0, $1) }.map(\.1)
        }
    }

    /// The holder of a leased task, from the model's claims; records a problem and returns `nil` when the model
    /// has no claim of the task with its attempt.
    func holder(of task: TaskRecord) -> UInt64? {
        guard let (attempt, holder) = leases[task.id], attempt == task.attempt else {
            problems.append("\(task.id) is leased at attempt \(task.attempt), no claim of the model gave it")
            return nil
        }
        return holder
    }

    func reset(leases: [String: (UInt32, UInt64)]) {
        self.leases = leases
        problems = []
    }
}

/// One random request in a batch; claims are checked against a brute-force pick.
private struct RandomRequest {
    let state: BatchState
    let now: Int64
    let kwargsBytes: Int

    func run<Batch: TaskStoreWriteBatch>(_ b: inout Batch, _ random: inout SeededRandom) {
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }
        func time(_ range: ClosedRange<Int64>) -> Int64 { now + Int64.random(in: range, using: &random) * second }
        func selector() -> TaskSelector {
            chance(0.6) ? .ids((0..<Int.random(in: 1...3, using: &random)).map { _ in pick(ModelRun.ids) })
                : .group(pick(["g1", "g2"]))
        }
        func lease() -> (String, UInt32, UInt64) {
            if !state.leases.isEmpty && chance(0.8) {
                let id = pick(state.leases.keys.sorted())
                var (attempt, holder) = state.leases[id]!
                if chance(0.1) { attempt &+= 1 }
                if chance(0.1) { holder &+= 1 }
                return (id, attempt, holder)
            }
            return (pick(ModelRun.ids), UInt32.random(in: 1...2, using: &random), UInt64.random(in: 1...3, using: &random))
        }
        /// Runs a request; `true` when it succeeded.
        func attempt<T>(_ body: () throws(StoreError) -> T) -> T? { try? body() }

        if chance(0.15), let current = try? b.fetch(.ids(ModelRun.ids)), !current.isEmpty {
            // A replace that keeps callback, runAt and paused (its index entries may stay or only lose a group).
            let t = pick(current)
            let replacement = spec(
                t.id, callback: t.callback, runAt: t.runAt, schedule: chance(0.3) ? .interval(micros: 2 * second) : .once,
                group: pick(ModelRun.groups), paused: t.paused, maxAttempts: UInt32.random(in: 1...3, using: &random))
            if attempt({ () throws(StoreError) in try b.add([replacement], onConflict: .replace, now: now) }) != nil {
                state.leases[t.id] = nil
            }
            return
        }
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<20:
            var specs: [TaskSpec] = []
            var seen = Set<String>()
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let id = pick(ModelRun.ids)
                guard seen.insert(id).inserted else { continue }
                let kwargs = kwargsBytes > 0
                    ? "{\"k\":\"" + String(repeating: "x", count: Int.random(in: 0...kwargsBytes, using: &random)) + "\"}" : ""
                specs.append(spec(
                    id, callback: pick(ModelRun.callbacks), runAt: time(-5...10),
                    schedule: chance(0.3) ? .interval(micros: Int64.random(in: 1...5, using: &random) * second) : .once,
                    group: pick(ModelRun.groups), paused: chance(0.15), coalesce: chance(0.5),
                    maxAttempts: UInt32.random(in: 1...3, using: &random), kwargs: kwargs))
            }
            let policy: ConflictPolicy = chance(0.75) ? .replace : (chance(0.5) ? .keep : .fail)
            if attempt({ () throws(StoreError) in try b.add(specs, onConflict: policy, now: now) }) != nil, policy == .replace {
                for s in specs { state.leases[s.id!] = nil }
            }
        case 20..<45:
            var callbacks = ModelRun.callbacks.filter { _ in chance(0.6) }
            if callbacks.isEmpty { callbacks = [pick(ModelRun.callbacks)] }
            if chance(0.1) { callbacks.append("zz") }
            let max = Int.random(in: 1...4, using: &random)
            let holder = UInt64.random(in: 1...3, using: &random)
            let deadline = time(1...10)
            let dueBy = time(-3...5)
            // The brute-force pick, from the batch's own view.
            // (`nil` after a request of the batch ran out of map: the fetch throws and the batch is rerun.)
            let before = try? b.fetch(.ids(ModelRun.ids))
            let expected = before?.filter {
                $0.state == .scheduled && !$0.paused && callbacks.contains($0.callback) && $0.runAt <= dueBy
            }.sorted(by: ModelRun.precedes).prefix(max).map(\.id)
            guard let claimed = attempt({ () throws(StoreError) in
                try b.claim(callbacks: callbacks, max: max, holder: holder, leaseDeadline: deadline, dueBy: dueBy, now: now)
            }) else { return }
            if let expected, claimed.map(\.id) != expected {
                state.problems.append("claim returned \(claimed.map(\.id)), a scan picks \(expected)")
            }
            for t in claimed {
                if let old = before?.first(where: { $0.id == t.id }), old.attempt &+ 1 != t.attempt || t.state != .leased {
                    state.problems.append("claimed \(t.id) as \(t.state) attempt \(t.attempt), from attempt \(old.attempt)")
                }
                state.leases[t.id] = (t.attempt, holder)
            }
        case 45..<57:
            let (id, n, holder) = lease()
            if attempt({ () throws(StoreError) in try b.ack(id: id, attempt: n, holder: holder, now: now) }) != nil {
                state.leases[id] = nil
            }
        case 57..<63:
            let (id, n, holder) = lease()
            let retry = chance(0.7)
            if attempt({ () throws(StoreError) in
                try b.fail(id: id, attempt: n, holder: holder, error: "e", retry: retry, now: now)
            }) != nil {
                state.leases[id] = nil
            }
        case 63..<68:
            let (id, n, holder) = lease()
            _ = attempt({ () throws(StoreError) in try b.touch(id: id, attempt: n, holder: holder, leaseDeadline: time(0...12)) })
        case 68..<73:
            let (id, n, holder) = lease()
            if attempt({ () throws(StoreError) in try b.release(id: id, attempt: n, holder: holder) }) != nil {
                state.leases[id] = nil
            }
        case 73..<77:
            let s = selector()
            _ = attempt({ () throws(StoreError) in try b.pause(s, now: now) })
        case 77..<81:
            let s = selector()
            _ = attempt({ () throws(StoreError) in try b.resume(s) })
        case 81..<85:
            let updates = (0..<Int.random(in: 1...2, using: &random)).map { _ in
                RunTimeUpdate(id: pick(ModelRun.ids), runAt: time(-5...10))
            }
            if attempt({ () throws(StoreError) in try b.updateRunTimes(updates) }) != nil {
                for u in updates { state.leases[u.id] = nil }
            }
        case 85..<90:
            let s: TaskSelector = chance(0.06) ? .all : selector()
            if attempt({ () throws(StoreError) in try b.remove(s) }) != nil, case .ids(let ids) = s {
                for id in ids { state.leases[id] = nil }
            }
        case 90..<93:
            let due = state.leaseIDs { $0.deadline <= now }
            // The brute-force pick from the batch's own view of the tasks (`nil`: as for claims).
            let expired = { (task: TaskRecord) in (task.leaseDeadline ?? .max) <= now }
            let dueByTasks = (try? b.fetch(.ids(ModelRun.ids))).map { ModelRun.leasedIDs($0, where: expired) }
            if let ended = attempt({ () throws(StoreError) in try b.expireLeases(now: now) }) {
                if let due, ended.map(\.id) != due {
                    state.problems.append("expireLeases ended \(ended.map(\.id)), not \(due)")
                }
                if let left = state.leaseIDs(where: { $0.deadline <= now }), !left.isEmpty {
                    state.problems.append("expireLeases left \(left)")
                }
                if let dueByTasks, ended.map(\.id) != dueByTasks {
                    state.problems.append("expireLeases ended \(ended.map(\.id)), the tasks say \(dueByTasks)")
                }
                if let after = try? b.fetch(.ids(ModelRun.ids)) {
                    let left = ModelRun.leasedIDs(after, where: expired)
                    if !left.isEmpty { state.problems.append("expireLeases left leased tasks \(left)") }
                }
            }
        case 93..<95:
            let holder = UInt64.random(in: 1...3, using: &random)
            let held = state.leaseIDs { $0.holder == holder }
            let heldByTasks = (try? b.fetch(.ids(ModelRun.ids))).map { tasks in
                ModelRun.leasedIDs(tasks, where: { state.holder(of: $0) == holder })
            }
            if let ended = attempt({ () throws(StoreError) in try b.releaseHolder(holder, reason: "gone", now: now) }) {
                if let held, ended.map(\.id) != held {
                    state.problems.append("releaseHolder(\(holder)) ended \(ended.map(\.id)), not \(held)")
                }
                if let left = state.leaseIDs(where: { $0.holder == holder }), !left.isEmpty {
                    state.problems.append("releaseHolder(\(holder)) left \(left)")
                }
                if let heldByTasks, ended.map(\.id) != heldByTasks {
                    state.problems.append(
                        "releaseHolder(\(holder)) ended \(ended.map(\.id)), the tasks and claims say \(heldByTasks)")
                }
                if let after = try? b.fetch(.ids(ModelRun.ids)) {
                    let left = ModelRun.leasedIDs(after, where: { state.holder(of: $0) == holder })
                    if !left.isEmpty { state.problems.append("releaseHolder(\(holder)) left leased tasks \(left)") }
                }
            }
        case 95..<97:
            let s: TaskSelector = chance(0.4) ? .all : selector()
            _ = attempt({ () throws(StoreError) in try b.retryDead(s, now: now) })
        case 97..<99:
            let s: TaskSelector = chance(0.4) ? .all : selector()
            _ = attempt({ () throws(StoreError) in try b.purgeDead(s) })
        default:
            _ = try? b.fetch(.group(pick(["g1", "g2"])))
        }
    }
}
