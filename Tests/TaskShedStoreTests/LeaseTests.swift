import CLMDB
import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// Claims, acks, failures and leases for every store kind in `behaviourKinds`; where a test also checks LMDB's
/// indexes or records, that part runs for LMDB only.
@Suite("Claims, acks, failures and leases")
struct LeaseTests {
    @Test(arguments: behaviourKinds)
    func claimAheadTakesTasksDueByItsHorizonAndRecordsWhenEachRuns(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [
                spec("overdue", callback: "a", runAt: t0 - 50), spec("soon", callback: "a", runAt: t0 + 30),
                spec("later", callback: "a", runAt: t0 + 101),
            ], now: t0 - 100)
        func claimAhead<S: TaskStore>(_ store: S) throws -> [TaskRecord] {
            try store.write { (b: inout S.WriteBatch) throws(StoreError) in
                try b.claim(callbacks: ["a"], max: 10, holder: 3, leaseDeadline: t0 + 500, dueBy: t0 + 100, now: t0)
            }
        }
        let claimed = try claimAhead(store)
        #expect(claimed.map(\.id) == ["overdue", "soon"])
        // The overdue task runs now; the one claimed ahead runs at its due time.
        #expect(claimed.map(\.lastRunAt) == [t0, t0 + 30])
        #expect(try store.one("soon")?.lastRunAt == t0 + 30)
        #expect(try store.one("later")?.state == .scheduled)
    }

    @Test(arguments: behaviourKinds)
    func claimTakesOnlyDueUnpausedTasksOfTheCallbacksEarliestFirst(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [
                spec("a3", callback: "a", runAt: t0 - 3), spec("a1", callback: "a", runAt: t0 - 10),
                spec("b2", callback: "b", runAt: t0 - 5), spec("c1", callback: "c", runAt: t0 - 20),
                spec("late", callback: "a", runAt: t0 + 1), spec("paused", callback: "b", runAt: t0 - 30, paused: true),
                spec("b-now", callback: "b", runAt: t0),
            ], now: t0 - 100)
        let claimed = try store.claim(callbacks: ["a", "b", "a"], max: 3, holder: 7, leaseDeadline: t0 + 99, now: t0)
        #expect(claimed.map(\.id) == ["a1", "b2", "a3"])
        for r in claimed {
            #expect(r.state == .leased && r.attempt == 1 && r.lastRunAt == t0 && r.leaseDeadline == t0 + 99)
        }
        #expect(try store.one("a1")?.state == .leased)
        let rest = try store.claim(callbacks: ["a", "b"], max: 10, holder: 7, leaseDeadline: t0 + 99, now: t0)
        #expect(rest.map(\.id) == ["b-now"])
        #expect(try store.claim(callbacks: ["a", "b"], max: 10, holder: 7, leaseDeadline: t0 + 99, now: t0).isEmpty)
        #expect(try store.earliestRunAt() == t0 - 20)
        #expect(try store.earliestRunAt(callback: "a") == t0 + 1)
        #expect(try store.earliestRunAt(callback: "b") == nil)
        #expect(try store.earliestLeaseDeadline() == t0 + 99)
        #expect(try store.claim(callbacks: [], max: 5, holder: 1, leaseDeadline: t0, now: t0).isEmpty)
        #expect(try store.claim(callbacks: ["c"], max: 0, holder: 1, leaseDeadline: t0, now: t0).isEmpty)
    }

    @Test(arguments: behaviourKinds)
    func claimMergesCallbacksInTimeThenIdOrderOnTies(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [
                spec("m", callback: "a", runAt: t0 - 5), spec("k", callback: "b", runAt: t0 - 5),
                spec("z", callback: "c", runAt: t0 - 5), spec("b", callback: "a", runAt: t0 - 4),
                spec("a", callback: "c", runAt: t0 - 4), spec("q", callback: "b", runAt: t0 - 6),
            ], now: t0 - 100)
        let first = try store.claim(callbacks: ["a", "b", "c"], max: 4, holder: 1, leaseDeadline: t0 + 9, now: t0)
        #expect(first.map(\.id) == ["q", "k", "m", "z"])
        let second = try store.claim(callbacks: ["c", "a"], max: 4, holder: 1, leaseDeadline: t0 + 9, now: t0)
        #expect(second.map(\.id) == ["a", "b"])
    }

    @Test(arguments: behaviourKinds)
    func ackRemovesAOneOffTask(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", group: "g")], now: t0)
        let c = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 10, now: t0)
        #expect(try store.ack(id: "a", attempt: c[0].attempt, holder: 1, now: t0 + 1) == nil)
        #expect(try store.one("a") == nil)
        #expect(try store.fetch(.group("g")).isEmpty)
        #expect(try store.earliestLeaseDeadline() == nil)
        let s = try store.stats(now: t0)
        #expect(s.leased == 0 && s.due == 0 && s.callbacks.isEmpty)
    }

    @Test(arguments: behaviourKinds)
    func ackWithAStaleLeaseIsLeaseLostAndUnknownIsNotFound(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a")], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 10, now: t0)
        #expect(storeError { _ = try store.ack(id: "a", attempt: 1, holder: 2, now: t0) }?.code == .leaseLost)
        #expect(storeError { _ = try store.ack(id: "a", attempt: 2, holder: 1, now: t0) }?.code == .leaseLost)
        #expect(storeError { _ = try store.fail(id: "a", attempt: 1, holder: 2, error: "x", retry: true, now: t0) }?.code == .leaseLost)
        #expect(storeError { _ = try store.touch(id: "a", attempt: 2, holder: 1, leaseDeadline: t0) }?.code == .leaseLost)
        #expect(storeError { _ = try store.release(id: "a", attempt: 1, holder: 3) }?.code == .leaseLost)
        let notFound = storeError { _ = try store.ack(id: "zz", attempt: 1, holder: 1, now: t0) }
        #expect(notFound?.code == .taskNotFound)
        #expect(notFound?.message.contains("zz") == true)
        // Not leased at all.
        _ = try store.add([spec("b", runAt: t0 + 100)], now: t0)
        #expect(storeError { _ = try store.ack(id: "b", attempt: 0, holder: 0, now: t0) }?.code == .leaseLost)
        #expect(try store.one("a")?.state == .leased)
    }

    /// (runAt offset, interval, now offset, coalesce) -> expected next offset. Times in seconds from t0.
    static let coalesceTable: [(Int64, Int64, Int64, Bool, Int64)] = [
        (0, 10, 1, true, 10),  // on time
        (0, 10, 1, false, 10),
        (0, 10, 10, true, 20),  // exactly one interval late: next (10) is not after now
        (0, 10, 10, false, 10),
        (0, 10, 35, true, 40),  // behind by 3 intervals
        (0, 10, 35, false, 10),  // one run per missed interval
        (0, 10, 100, true, 110),
        (0, 10, 9, true, 10),
        (-5, 10, 0, true, 5),
    ]

    @Test(arguments: behaviourKinds, coalesceTable)
    func ackOfARecurringTaskComputesTheNextRun(kind: StoreKind, _ row: (Int64, Int64, Int64, Bool, Int64)) throws {
        let (runAt, interval, now, coalesce, expected) = row
        #expect(nextRun(runAt: runAt * second, interval: interval * second, coalesce: coalesce, now: now * second) == expected * second)

        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [spec("r", runAt: t0 + runAt * second, schedule: .interval(micros: interval * second), coalesce: coalesce)],
            now: t0 + runAt * second)
        let c = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0 + now * second)
        #expect(c.count == 1)
        let next = try #require(try store.ack(id: "r", attempt: 1, holder: 1, now: t0 + now * second))
        #expect(next.runAt == t0 + expected * second)
        #expect(next.state == .scheduled && next.attempt == 0 && next.leaseDeadline == nil)
        #expect(try store.earliestRunAt() == t0 + expected * second)
    }

    @Test func nextRunSaturatesInsteadOfOverflowing() {
        #expect(nextRun(runAt: .max - 5, interval: 10, coalesce: true, now: 0) == .max)
        #expect(nextRun(runAt: .min, interval: .max, coalesce: true, now: .max) == .max)
    }

    @Test(arguments: behaviourKinds)
    func recurringTaskIsOutOfTheDueIndexWhileLeasedAndStaysPausedAfterAck(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("r", schedule: .interval(micros: 10 * second))], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 60 * second, now: t0)
        #expect(try store.earliestRunAt() == nil)
        #expect(try store.claim(callbacks: ["cb"], max: 5, holder: 2, leaseDeadline: t0, now: t0 + 100 * second).isEmpty)
        #expect(try store.pause(.ids(["r"]), now: t0 + 1) == 1)
        let next = try #require(try store.ack(id: "r", attempt: 1, holder: 1, now: t0 + 2))
        #expect(next.paused && next.pausedAt == t0 + 1 && next.runAt == t0 + 10 * second)
        #expect(try store.earliestRunAt() == nil)
        #expect(try store.resume(.ids(["r"])) == 1)
        #expect(try store.earliestRunAt() == t0 + 10 * second)
    }

    @Test(arguments: behaviourKinds)
    func failRetriesOneOffTasksWithBackoffThenDeadLetters(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()  // jitter disabled: delays are exact
        _ = try store.add([spec("a")], now: t0)
        var now = t0
        for attempt in 1...3 {
            let c = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: now + second, now: now)
            #expect(c.first?.attempt == UInt32(attempt))
            let after = try store.fail(id: "a", attempt: UInt32(attempt), holder: 1, error: "boom \(attempt)", retry: true, now: now)
            #expect(after.lastError == "boom \(attempt)" && after.lastFailureAt == now)
            if attempt < 3 {
                let delay = second << (attempt - 1)
                #expect(after.state == .scheduled && after.runAt == now + delay)
                #expect(try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: 0, now: now + delay - 1).isEmpty)
                now += delay
            } else {
                #expect(after.state == .dead)
            }
        }
        #expect(try store.earliestRunAt() == nil)
        let dead = try store.all(filter: TaskFilter(state: .dead))
        #expect(dead.map(\.id) == ["a"])
        #expect(dead.first?.lastError == "boom 3")
        #expect(try store.stats(now: now).dead == 1)
    }

    @Test(arguments: behaviourKinds)
    func failWithoutRetryDeadLettersAtOnce(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", maxAttempts: 10)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 1, now: t0)
        let after = try store.fail(id: "a", attempt: 1, holder: 1, error: "unknown callback", retry: false, now: t0)
        #expect(after.state == .dead && after.attempt == 1)
    }

    @Test(arguments: behaviourKinds)
    func backoffJitterStaysInRangeAndIsCapped(kind: StoreKind) throws {
        let policy = RetryPolicy(baseMicros: second, maxMicros: 300 * second, minJitter: 0.5)
        #expect(policy.delay(afterAttempt: 1, unit: 1) == second)
        #expect(policy.delay(afterAttempt: 1, unit: 0) == second / 2)
        #expect(policy.delay(afterAttempt: 4, unit: 1) == 8 * second)
        #expect(policy.delay(afterAttempt: 30, unit: 1) == 300 * second)
        #expect(policy.delay(afterAttempt: 200, unit: 1) == 300 * second)

        let fixture = try StoreFixture(kind)
        let store = try fixture.open(options: testOptions(retry: policy), seed: 42)
        var delays = Set<Int64>()
        for i in 0..<20 {
            _ = try store.add([spec("j\(i)", maxAttempts: 5)], now: t0)
            _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 1, now: t0)
            let after = try store.fail(id: "j\(i)", attempt: 1, holder: 1, error: "e", retry: true, now: t0)
            let delay = after.runAt - t0
            #expect(delay >= second / 2 && delay <= second)
            delays.insert(delay)
            _ = try store.remove(.ids(["j\(i)"]))
        }
        #expect(delays.count > 1)
    }

    @Test(arguments: behaviourKinds)
    func failOfARecurringTaskRecordsItAndMovesOn(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("r", schedule: .interval(micros: 10 * second))], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 1, now: t0)
        let after = try store.fail(id: "r", attempt: 1, holder: 1, error: "e", retry: false, now: t0 + 3)
        #expect(after.state == .scheduled && after.runAt == t0 + 10 * second && after.attempt == 0)
        #expect(after.lastError == "e" && after.lastFailureAt == t0 + 3)
    }

    @Test(arguments: behaviourKinds)
    func errorTextIsTruncatedOnACharacterBoundary(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", maxAttempts: 1)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 1, now: t0)
        let long = "xy" + String(repeating: "€", count: 2000)  // 2 + 6000 bytes
        let after = try store.fail(id: "a", attempt: 1, holder: 1, error: long, retry: true, now: t0)
        let stored = try #require(after.lastError)
        #expect(stored.utf8.count == 4094)  // a cut at 4096 would split the 1365th '€'
        #expect(stored.utf8.count <= ProtocolLimits.maxErrorBytes)
        #expect(long.hasPrefix(stored))
        #expect(truncateUTF8("héllo", limit: 2) == "h")
        #expect(truncateUTF8("abc", limit: 3) == "abc")
    }

    @Test(arguments: behaviourKinds)
    func touchMovesTheDeadlineAndReleaseDoesNotCountTheAttempt(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", runAt: t0 - 5)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 4, leaseDeadline: t0 + 10, now: t0)
        #expect(try store.touch(id: "a", attempt: 1, holder: 4, leaseDeadline: t0 + 50) == t0 + 50)
        #expect(try store.earliestLeaseDeadline() == t0 + 50)
        #expect(try store.expireLeases(now: t0 + 20).isEmpty)
        let released = try store.release(id: "a", attempt: 1, holder: 4)
        #expect(released.state == .scheduled && released.attempt == 0 && released.runAt == t0 - 5)
        // The delivery's run time goes with it: the task has never run.
        #expect(released.lastRunAt == nil)
        #expect(try store.one("a")?.lastRunAt == nil)
        #expect(try store.earliestRunAt() == t0 - 5)
        #expect(try store.earliestLeaseDeadline() == nil)
    }

    @Test(arguments: behaviourKinds)
    func expiredLeasesComeBackAndCountAsAttempts(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", maxAttempts: 2), spec("b", maxAttempts: 2)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 10, now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 30, now: t0)
        let expired = try store.expireLeases(now: t0 + 10)
        #expect(expired.map(\.id) == ["a"])
        #expect(expired[0].state == .scheduled && expired[0].attempt == 1 && expired[0].lastError == "lease expired")
        #expect(try store.earliestLeaseDeadline() == t0 + 30)
        // Second delivery of "a" expires too: out of attempts -> dead.
        let again = try store.claim(callbacks: ["cb"], max: 1, holder: 2, leaseDeadline: t0 + 40, now: t0 + 11)
        #expect(again.map(\.id) == ["a"] && again[0].attempt == 2)
        let second = try store.expireLeases(now: t0 + 45)
        #expect(Set(second.map(\.id)) == ["a", "b"])
        #expect(try store.one("a")?.state == .dead)
        #expect(try store.one("b")?.state == .scheduled)
    }

    @Test(arguments: behaviourKinds)
    func releaseHolderReturnsOnlyThatHoldersLeases(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a"), spec("b"), spec("c"), spec("r", schedule: .interval(micros: second), maxAttempts: 1)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 2, holder: 1, leaseDeadline: t0 + 10, now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 2, holder: 2, leaseDeadline: t0 + 10, now: t0)
        let released = try store.releaseHolder(1, reason: "worker disconnected", now: t0 + 1)
        #expect(Set(released.map(\.id)) == ["a", "b"])
        #expect(released.allSatisfy { $0.state == .scheduled && $0.lastError == "worker disconnected" && $0.attempt == 1 })
        #expect(try store.one("c")?.state == .leased)
        // A recurring task out of attempts moves to its next run instead of dying.
        let r = try #require(try store.releaseHolder(2, reason: "gone", now: t0 + 1).first { $0.id == "r" })
        #expect(r.state == .scheduled && r.runAt == t0 + second && r.attempt == 0)
    }

    @Test(arguments: behaviourKinds)
    func releaseAllLeasesUndoesEveryLeaseWithoutCounting(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add((0..<5).map { spec("t\($0)") }, now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 3, holder: 1, leaseDeadline: t0 + 10, now: t0)
        #expect(try store.releaseAllLeases() == 3)
        let all = try store.all()
        #expect(all.count == 5 && all.allSatisfy { $0.state == .scheduled && $0.attempt == 0 })
        #expect(try store.stats(now: t0).due == 5)
    }

    /// The bytes of a task's record in `tasks`, straight from LMDB.
    private func recordBytes(_ store: LMDBTaskStore, _ id: String) throws -> [UInt8]? {
        try store.read { (ctx, _) throws(StoreError) in
            try lmdb { () throws(LMDBError) in try ctx.txn.get(ctx.dbs.tasks, key: Array(id.utf8)).map { Array($0) } }
        }
    }

    /// Claims up to `max` tasks of callback "a" for holder 1 and checks LMDB's indexes and frontiers after it.
    private func claimAndVerify(_ store: any TaskStore, _ max: Int) throws -> [String] {
        let claimed = try store.claim(callbacks: ["a"], max: max, holder: 1, leaseDeadline: t0 + 60, now: t0)
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
        return claimed.map(\.id)
    }

    /// Leased tasks keep their `callback_wake` entries: claims and the next wake-up skip them from the claim
    /// frontier, and whatever puts an unleased entry behind the frontier (a release, an add, an expired lease)
    /// is claimable at once.
    @Test(arguments: behaviourKinds)
    func claimsSkipLeasesAndFindWhatComesBackBehindTheFrontier(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add((1...6).map { spec("t\($0)", callback: "a", runAt: t0 - 10 + Int64($0)) }, now: t0 - 100)
        func claim(_ max: Int) throws -> [String] { try claimAndVerify(store, max) }
        #expect(try claim(2) == ["t1", "t2"])
        #expect(try store.earliestRunAt(callback: "a") == t0 - 7)
        #expect(try claim(2) == ["t3", "t4"])
        // A released lease behind the frontier is claimable again, and the next wake-up.
        _ = try store.release(id: "t1", attempt: 1, holder: 1)
        #expect(try store.earliestRunAt(callback: "a") == t0 - 9)
        #expect(try claim(1) == ["t1"])
        // So is a task added before the frontier.
        _ = try store.add([spec("early", callback: "a", runAt: t0 - 50)], now: t0)
        #expect(try store.earliestRunAt() == t0 - 50)
        #expect(try claim(1) == ["early"])
        // A leased task paused and resumed is still leased: not claimable.
        #expect(try store.pause(.ids(["t3"]), now: t0) == 1)
        #expect(try store.resume(.ids(["t3"])) == 1)
        #expect(try store.one("t3")?.state == .leased)
        #expect(try claim(1) == ["t5"])
        #expect(try store.earliestRunAt(callback: "a") == t0 - 4)
        // Expired leases are due again, all of them.
        #expect(try store.expireLeases(now: t0 + 60).count == 6)
        #expect(try claim(10) == ["early", "t1", "t2", "t3", "t4", "t5", "t6"])
        #expect(try store.earliestRunAt(callback: "a") == nil)
    }

    /// The index deletions of acks wait for the commit (or the next request that puts or claims); the
    /// batch's later requests still see the store as if they were applied: a group read skips the acked
    /// task, a re-added task with the same index keys keeps them, and a claim does not find the acked entry.
    @Test(arguments: behaviourKinds)
    func deletionsLeftForTheCommitAreInvisibleToLaterRequests(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [spec("a", runAt: t0 - 3, group: "g"), spec("b", runAt: t0 - 2, group: "g"), spec("c", runAt: t0 - 1)],
            now: t0 - 100)
        let claimed = try store.claim(callbacks: ["cb"], max: 3, holder: 1, leaseDeadline: t0 + 60, now: t0)
        #expect(claimed.map(\.id) == ["a", "b", "c"])
        func batch<S: TaskStore>(_ store: S) throws -> [String] {
            try store.write { (b: inout S.WriteBatch) throws(StoreError) -> [String] in
                #expect(try b.ack(id: "a", attempt: 1, holder: 1, now: t0) == nil)
                #expect(try b.ack(id: "b", attempt: 1, holder: 1, now: t0) == nil)
                var seen: [String] = []
                seen.append(try b.fetch(.group("g")).map(\.id).joined(separator: ","))
                // "a" again, with the same callback, time and group: its index keys are put after their deletion.
                _ = try b.add([spec("a", runAt: t0 - 3, group: "g")], onConflict: .fail, now: t0)
                seen.append(try b.fetch(.group("g")).map(\.id).joined(separator: ","))
                #expect(try b.ack(id: "c", attempt: 1, holder: 1, now: t0) == nil)
                // The claim finds "a" (re-added) and not the acked "b" or "c".
                seen.append(try b.claim(callbacks: ["cb"], max: 5, holder: 2, leaseDeadline: t0 + 60, now: t0)
                    .map(\.id).joined(separator: ","))
                #expect(try b.release(id: "a", attempt: 1, holder: 2).state == .scheduled)
                #expect(try b.remove(.group("g")) == 1)
                return seen
            }
        }
        let results = try batch(store)
        #expect(results == ["", "a", "a"])
        #expect(try store.all().isEmpty)
        #expect(try store.earliestRunAt() == nil)
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
    }

    /// Unleased entries behind a claim frontier are its holes: a claim takes them first, in order and once
    /// each (also a hole at the frontier's bound itself), then walks on from the bound. Past
    /// `ClaimFrontier.maxHoles` the frontier is dropped, and claims still find every task.
    @Test(arguments: behaviourKinds)
    func holesBehindTheFrontierAreClaimedOnceInOrder(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add((1...6).map { spec("t\($0)", callback: "a", runAt: t0 - 10 + Int64($0)) }, now: t0 - 100)
        func claim(_ max: Int) throws -> [String] { try claimAndVerify(store, max) }
        #expect(try claim(3) == ["t1", "t2", "t3"])
        _ = try store.release(id: "t3", attempt: 1, holder: 1)  // the bound itself
        _ = try store.release(id: "t1", attempt: 1, holder: 1)
        _ = try store.add([spec("t0", callback: "a", runAt: t0 - 20)], now: t0)
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
        #expect(try store.earliestRunAt(callback: "a") == t0 - 20)
        #expect(try store.stats(now: t0).due == 6)
        #expect(try claim(2) == ["t0", "t1"])
        #expect(try claim(10) == ["t3", "t4", "t5", "t6"])
        #expect(try store.earliestRunAt(callback: "a") == nil)

        // More unleased entries behind the bound than a frontier keeps as holes.
        let behind = ClaimFrontier.maxHoles + 44
        _ = try store.add((0..<behind).map { spec(String(format: "b%04d", $0), callback: "a", runAt: t0 - 50) }, now: t0)
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
        let all = try claim(1000)
        #expect(all.count == behind && all == all.sorted() && all.first == "b0000")
    }

    /// A batch that aborts takes its lease changes with it: the tasks it claimed are not leased.
    @Test(arguments: behaviourKinds)
    func anAbortedBatchLeavesNoLeases(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("x"), spec("y")], now: t0)
        func claimThenFail<S: TaskStore>(_ store: S) throws {
            try store.write(isolatingRequests: false) { (b: inout S.WriteBatch) throws(StoreError) in
                #expect(try b.claim(callbacks: ["cb"], max: 2, holder: 1, leaseDeadline: t0 + 9, now: t0).count == 2)
                #expect(try b.fetch(.ids(["x"])).first?.state == .leased)
                _ = try b.ack(id: "missing", attempt: 1, holder: 1, now: t0)
            }
        }
        let error = storeError { try claimThenFail(store) }
        #expect(error?.code == .taskNotFound)
        #expect(try store.fetch(.ids(["x", "y"])).map(\.state) == [.scheduled, .scheduled])
        #expect(try store.earliestLeaseDeadline() == nil)
        #expect(try store.claim(callbacks: ["cb"], max: 5, holder: 2, leaseDeadline: t0 + 9, now: t0).map(\.id) == ["x", "y"])
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
    }

    /// A claim and a touch write nothing to LMDB (no commit: the last transaction id stays), yet every read
    /// shows the lease; an ack of a recurring task writes the record with the lease's run time, and an ack of
    /// a one-off task removes it with its index entries. (What LMDB writes is checked for LMDB only; what the
    /// reads show, for every store.)
    @Test(arguments: behaviourKinds)
    func aClaimWritesNothingAndEveryReadShowsTheLease(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [
                spec("once", callback: "a", runAt: t0 - 5, group: "g"),
                spec("every", callback: "a", runAt: t0 - 3, schedule: .interval(micros: 10 * second)),
            ], now: t0 - 100)
        let lmdb = store as? LMDBTaskStore
        let before = try lmdb.map { lmdb in try #require(try recordBytes(lmdb, "once")) }
        let transaction = try lmdb?.lastCommittedTransactionID()
        let claimed = try store.claim(callbacks: ["a"], max: 5, holder: 4, leaseDeadline: t0 + 60, now: t0)
        #expect(claimed.map(\.id) == ["once", "every"])
        _ = try store.touch(id: "once", attempt: 1, holder: 4, leaseDeadline: t0 + 90)
        if let lmdb {
            #expect(try lmdb.lastCommittedTransactionID() == transaction)
            #expect(try recordBytes(lmdb, "once") == before)
        }

        // fetch, list (all and by state), group fetch and stats all see the lease.
        let once = try #require(try store.one("once"))
        #expect(once.state == .leased && once.attempt == 1 && once.leaseDeadline == t0 + 90 && once.lastRunAt == t0)
        #expect(try store.fetch(.group("g")).map(\.state) == [.leased])
        #expect(try store.all(filter: TaskFilter(state: .leased)).map(\.id).sorted() == ["every", "once"])
        #expect(try store.all().filter { $0.state == .leased }.map(\.id).sorted() == ["every", "once"])
        #expect(try store.all(filter: TaskFilter(state: .due)).isEmpty)
        #expect(try store.all(filter: TaskFilter(state: .due, callback: "a")).isEmpty)
        let stats = try store.stats(now: t0)
        #expect(stats.leased == 2 && stats.due == 0 && stats.pending == 0 && stats.earliestRunAt == nil)
        #expect(stats.callbacks.map(\.leased) == [2] && stats.callbacks.map(\.scheduled) == [0])
        #expect(try store.earliestRunAt(callback: "a") == nil)
        #expect(try store.earliestLeaseDeadline() == t0 + 60)
        if let lmdb { #expect(try lmdb.verifyIndexes() == []) }

        // A lease check reads the lease, not the record: the record's attempt (0) is not the lease's.
        #expect(storeError { _ = try store.ack(id: "once", attempt: 0, holder: 4, now: t0) }?.code == .leaseLost)
        #expect(try store.ack(id: "once", attempt: 1, holder: 4, now: t0 + 1) == nil)
        let next = try #require(try store.ack(id: "every", attempt: 1, holder: 4, now: t0 + 1))
        #expect(next.state == .scheduled && next.runAt == t0 + 7 * second - 3 + 3 * second && next.lastRunAt == t0)
        #expect(try store.one("every")?.lastRunAt == t0)
        #expect(try store.earliestLeaseDeadline() == nil)
        if let lmdb { #expect(try recordBytes(lmdb, "once") == nil) }
        #expect(try store.earliestRunAt(callback: "a") == next.runAt)
        if let lmdb { #expect(try lmdb.verifyIndexes() == []) }
    }

    /// Leases live in memory: after the store is reopened, a task that was leased is due again at its runAt
    /// as its record left it (the delivery not counted), and `releaseAllLeases` has nothing to release. A
    /// leased task paused meanwhile comes back paused. (A shared store keeps leases in the database and voids
    /// those of the daemon's previous run when it opens: the same outcome.)
    @Test(arguments: behaviourKinds)
    func leasesEndWithTheStoreObject(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open()
        _ = try store.add(
            [spec("x", callback: "a", runAt: t0 - 5, maxAttempts: 2), spec("y", callback: "a", runAt: t0 - 4)],
            now: t0 - 100)
        _ = try store.claim(callbacks: ["a"], max: 2, holder: 9, leaseDeadline: t0 + 60, now: t0)
        #expect(try store.pause(.ids(["y"]), now: t0) == 1)
        #expect(try store.one("y")?.state == .leased)
        store = try fixture.reopen(store)
        #expect(try store.releaseAllLeases() == 0)
        let x = try #require(try store.one("x"))
        #expect(x.state == .scheduled && x.attempt == 0 && x.leaseDeadline == nil && x.lastRunAt == nil)
        let y = try #require(try store.one("y"))
        #expect(y.state == .scheduled && y.paused && y.pausedAt == t0 && y.attempt == 0)
        #expect(try store.earliestLeaseDeadline() == nil)
        #expect(try store.claim(callbacks: ["a"], max: 5, holder: 2, leaseDeadline: t0 + 60, now: t0).map(\.id) == ["x"])
        if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == []) }
    }

    /// A record that says leased (which no build of schema 5 writes) fails to read as corrupt instead of
    /// showing a state that no lease backs. LMDB only: it writes LMDB's record bytes.
    @Test func aRecordThatSaysLeasedIsCorrupt() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        _ = try store.add([spec("x", callback: "a", runAt: t0 - 5)], now: t0 - 100)
        try store.write { (b: inout LMDBWriteBatch) throws(StoreError) in
            let ctx = b.context
            try lmdb { () throws(LMDBError) in
                guard var raw = try ctx.txn.get(ctx.dbs.tasks, key: Array("x".utf8)).map({ Array($0) }) else {
                    throw LMDBError(MDB_NOTFOUND, "record of x")
                }
                raw[2] = TaskState.leased.rawValue
                try ctx.txn.put(ctx.dbs.tasks, key: Array("x".utf8), value: raw)
            }
        }
        let error = storeError { _ = try store.one("x") }
        #expect(error?.code == .internalError)
        #expect(error?.message.contains("x") == true)
    }
}
