import Testing
@testable import TaskShedStore

/// `LeaseTable` alone (deadline and holder buckets, deadline heap, undo log) against a brute-force dictionary:
/// random sets, touches (deadline moves), holder moves, ends, conditional takes (the one-off ack), clearAll,
/// nested marks with rollback, commits; many leases per deadline, a holder that never runs dry (compaction),
/// enough distinct deadlines to rebuild the heap. After every step `writerExpired` and `writerHeld` must equal
/// the brute-force answers (by deadline then id), `indexProblems` must be empty, the table must equal the model,
/// and after a commit `earliestDeadline` must be the model's minimum. (Adapted from the review of the buckets.)
@Suite("LeaseTable against a brute-force model: buckets, heap, rollback")
struct LeaseTableModelTests {
    struct M: Equatable {
        var deadline: Int64
        var holder: UInt64
    }

    /// The callback and paused flag a model lease stands for (derived, so that counts per callback vary).
    static func callback(_ m: M) -> String { "c\(m.holder % 2)" }
    static func paused(_ m: M) -> Bool { m.deadline % 3 == 0 }

    /// What `leaseCounts(asOfTransaction:)` should answer for `model`.
    static func counts(_ model: [String: M]) -> [String: [Int64]] {
        var out: [String: [Int64]] = [:]
        for m in model.values { out[callback(m), default: [0, 0]][paused(m) ? 1 : 0] += 1 }
        return out
    }

    static func lease(_ m: M) -> Lease {
        Lease(deadline: m.deadline, holder: m.holder, attempt: 1, lastRunAt: nil, baseLastRunAt: nil,
              callback: callback(m), paused: paused(m), runAt: 0, group: nil, recurring: false)
    }

    static func expected(_ model: [String: M], _ include: (M) -> Bool) -> [String] {
        model.filter { include($0.value) }.map { ($0.value.deadline, $0.key) }
            .sorted { positionPrecedes($0, $1) }.map(\.1)
    }

    func check(_ t: LeaseTable, _ model: [String: M], _ now: Int64, committed: Bool, _ label: String) -> [String] {
        var p: [String] = []
        let got = t.writerExpired(now: now).map(\.id)
        let want = Self.expected(model) { $0.deadline <= now }
        if got != want { p.append("\(label): expired(\(now)) \(got.count) ids != \(want.count) (\(got.prefix(5)) vs \(want.prefix(5)))") }
        for h in UInt64(0)...4 {
            let g = t.writerHeld(by: h), w = Self.expected(model) { $0.holder == h }
            if g != w { p.append("\(label): held(\(h)) \(g.count) != \(w.count)") }
        }
        let ip = t.indexProblems()
        if !ip.isEmpty { p.append("\(label): indexProblems \(ip.prefix(3))") }
        let all = Dictionary(uniqueKeysWithValues: t.all().map { ($0.0.name, M(deadline: $0.1.deadline, holder: $0.1.holder)) })
        if all != model { p.append("\(label): table != model") }
        if committed && t.earliestDeadline() != model.values.map(\.deadline).min() {
            p.append("\(label): earliestDeadline \(String(describing: t.earliestDeadline())) != \(String(describing: model.values.map(\.deadline).min()))")
        }
        return p
    }

    func run(seed: UInt64, steps: Int, ids: Int, deadlines: ClosedRange<Int64>) -> [String] {
        var rng = SeededRandom(seed: seed)
        let t = LeaseTable()
        var model: [String: M] = [:]
        var marks: [(Int, [String: M], Bool)] = []
        // The model as of the last commit: what `leaseCounts(asOfTransaction:)` must count for a reader
        // meanwhile, unless the write in flight cleared the table (then it answers nil).
        var committedModel: [String: M] = [:]
        var clearedInWrite = false
        var problems: [String] = []
        func r(_ n: Int) -> Int { Int.random(in: 0..<n, using: &rng) }
        for step in 0..<steps {
            let id = "t\(r(ids))"
            let k = NameKey(id)
            switch r(100) {
            case 0..<35: // new lease or replace: holder 1 gets most (never runs dry), same deadline often
                let m = M(deadline: r(3) == 0 ? deadlines.lowerBound : Int64.random(in: deadlines, using: &rng),
                          holder: r(2) == 0 ? 1 : UInt64(r(5)))
                t.set(k, Self.lease(m))
                model[id] = m
            case 35..<50: // touch: same holder, new deadline
                if var m = model[id] {
                    m.deadline = Int64.random(in: deadlines, using: &rng)
                    t.set(k, Self.lease(m))
                    model[id] = m
                }
            case 50..<55: // holder change only
                if var m = model[id] {
                    m.holder = UInt64(r(5))
                    t.set(k, Self.lease(m))
                    model[id] = m
                }
            case 55..<75: // end
                t.set(k, nil)
                model[id] = nil
            case 75..<80: // expire everything due, as expireLeases does
                let now = Int64.random(in: deadlines, using: &rng)
                for e in t.writerExpired(now: now) {
                    if model[e.id]?.holder != e.holder { problems.append("seed \(seed) step \(step): expired holder of \(e.id)") }
                    t.set(NameKey(e.id), nil)
                    model[e.id] = nil
                }
            case 80..<83: // releaseHolder
                let h = UInt64(r(5))
                for e in t.writerHeld(by: h) {
                    t.set(NameKey(e), nil)
                    model[e] = nil
                }
            case 83..<84:
                t.clearAll()
                model = [:]
                clearedInWrite = true
            case 84..<88: // take if the holder matches (the one-off ack)
                let h = UInt64(r(5))
                let taken = t.take(k) { $0.holder == h }
                if let m = model[id], m.holder == h {
                    if taken.map({ M(deadline: $0.deadline, holder: $0.holder) }) != m {
                        problems.append("seed \(seed) step \(step): take(\(id)) returned \(String(describing: taken))")
                    }
                    model[id] = nil
                } else if taken != nil {
                    problems.append("seed \(seed) step \(step): take(\(id)) took a lease it should not")
                }
            case 88..<92:
                marks.append((t.mark, model, clearedInWrite))
            case 92..<96:
                if !marks.isEmpty {
                    let i = r(marks.count)
                    t.rollback(to: marks[i].0)
                    model = marks[i].1
                    clearedInWrite = marks[i].2
                    marks.removeSubrange(i...)
                }
            default:
                t.commitLog(transactionID: 0)
                marks = []
                committedModel = model
                clearedInWrite = false
            }
            let now = Int64.random(in: deadlines, using: &rng)
            problems += check(t, model, now, committed: marks.isEmpty && t.mark == 0, "seed \(seed) step \(step)")
            let asOfCommit = t.leaseCounts(asOfTransaction: 0).map { counts in
                Dictionary(uniqueKeysWithValues: counts.map { ($0.key.name, [$0.value.unpaused, $0.value.paused]) })
            }
            let expected = clearedInWrite ? nil : Self.counts(committedModel)
            if asOfCommit != expected {
                problems.append("seed \(seed) step \(step): counts as of the commit \(String(describing: asOfCommit)), not \(String(describing: expected))")
            }
            if t.leaseCounts(asOfTransaction: 1) != nil {
                problems.append("seed \(seed) step \(step): another snapshot was answered")
            }
            if problems.count > 10 { break }
        }
        return problems
    }

    @Test func smallPool() {
        var p: [String] = []
        for s in UInt64(1)...8 { p += run(seed: s, steps: 1500, ids: 40, deadlines: 0...20) }
        #expect(p.prefix(10) == [])
    }

    @Test func largePoolManyDeadlines() {
        var p: [String] = []
        for s in UInt64(100)...101 { p += run(seed: s, steps: 4000, ids: 600, deadlines: 0...5000) }
        #expect(p.prefix(10) == [])
    }

    @Test func fewDeadlinesManyLeases() {
        var p: [String] = []
        for s in UInt64(200)...202 { p += run(seed: s, steps: 2000, ids: 300, deadlines: 0...2) }
        #expect(p.prefix(10) == [])
    }

    /// A claim's bucket that only shrinks: the kept ids follow the live count down (compaction on removal).
    @Test func aShrinkingBucketStaysCompact() {
        let t = LeaseTable()
        for i in 0..<10_000 { t.set(NameKey("c\(i)"), Self.lease(M(deadline: 5, holder: 3))) }
        t.commitLog(transactionID: 0)
        for i in 10..<10_000 { t.set(NameKey("c\(i)"), nil) }
        t.commitLog(transactionID: 0)
        #expect(t.writerExpired(now: 5).map(\.id) == (0..<10).map { "c\($0)" }.sorted())
        #expect(t.keptCount(deadline: 5) <= 2 * 10 + 4096)
        #expect(t.keptCount(holder: 3) <= 2 * 10 + 4096)
        #expect(t.indexProblems() == [])
    }

    /// A holder that never runs dry: the kept ids stay bounded by compaction.
    @Test func busyHolderStaysCompact() {
        let t = LeaseTable()
        for i in 0..<10 { t.set(NameKey("keep\(i)"), Self.lease(M(deadline: 1_000_000, holder: 7))) }
        for i in 0..<50_000 {
            let k = NameKey("x\(i % 1000)")
            t.set(k, Self.lease(M(deadline: Int64(i), holder: 7)))
            t.set(k, nil)
            if i % 100 == 0 { t.commitLog(transactionID: 0) }
        }
        t.commitLog(transactionID: 0)
        #expect(t.writerHeld(by: 7).count == 10)
        #expect(t.keptCount(holder: 7) <= 2 * 10 + 32)
        #expect(t.indexProblems() == [])
    }
}

extension LeaseTableModelTests {
    /// Stale heap entries past 2 * deadlines + 1024 rebuild the heap; rollback across it, and duplicates of a
    /// deadline whose bucket went and came back.
    @Test func heapRebuildAndDuplicates() {
        let t = LeaseTable()
        var model: [String: M] = [:]
        var p: [String] = []
        func put(_ id: String, _ m: M?) {
            t.set(NameKey(id), m.map(Self.lease))
            model[id] = m
        }
        put("pin", M(deadline: 0, holder: 9))
        t.commitLog(transactionID: 0)
        for i in 1...5000 { put("x\(i)", M(deadline: Int64(i), holder: UInt64(i % 3))) }
        t.commitLog(transactionID: 0)
        for i in 1...5000 where i % 1000 != 0 { put("x\(i)", nil) }
        t.commitLog(transactionID: 0)
        p += check(t, model, 100_000, committed: true, "after rebuild")
        let mark = t.mark
        for _ in 0..<3000 {  // 777 pushed 3000 times
            put("y", M(deadline: 777, holder: 1))
            put("y", nil)
        }
        for i in 1...5000 { put("x\(i)", M(deadline: Int64(i) + 1, holder: 2)) }
        p += check(t, model, 3000, committed: false, "in txn")
        t.clearAll()
        model = [:]
        put("z", M(deadline: 5, holder: 1))
        p += check(t, model, 10, committed: false, "after clear")
        t.rollback(to: mark)
        model = ["pin": M(deadline: 0, holder: 9)]
        for i in stride(from: 1000, through: 5000, by: 1000) { model["x\(i)"] = M(deadline: Int64(i), holder: UInt64(i % 3)) }
        p += check(t, model, 100_000, committed: true, "after rollback")
        #expect(p == [])
    }
}
