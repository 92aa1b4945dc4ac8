import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// For every store kind in `behaviourKinds` (LMDB's indexes and sizes are checked for LMDB only).
@Suite("Fetch, list, pause, resume, remove, reschedule, dead letters, stats")
struct SelectionTests {
    @Test(arguments: behaviourKinds)
    func fetchByIdsKeepsOrderAndSkipsUnknownAndByGroup(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", group: "g"), spec("b"), spec("c", group: "g"), spec("d", group: "gg")], now: t0)
        #expect(try store.fetch(.ids(["c", "zz", "a", "c"])).map(\.id) == ["c", "a"])
        #expect(try store.fetch(.group("g")).map(\.id) == ["a", "c"])
        #expect(try store.fetch(.group("nope")).isEmpty)
        let error = storeError { _ = try store.fetch(.all) }
        #expect(error?.code == .invalidArgument && error?.field == "selector.kind")
    }

    @Test(arguments: behaviourKinds)
    func pauseKeepsPausedAtOnRepeatAndResumeClearsIt(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", runAt: t0 + 1, group: "g"), spec("b", runAt: t0 + 2, group: "g"), spec("c", runAt: t0 + 3)], now: t0)
        #expect(try store.pause(.group("g"), now: t0 + 10) == 2)
        #expect(try store.earliestRunAt() == t0 + 3)
        #expect(try store.pause(.ids(["a", "missing"]), now: t0 + 20) == 1)
        #expect(try store.one("a")?.pausedAt == t0 + 10)
        #expect(try store.claim(callbacks: ["cb"], max: 10, holder: 1, leaseDeadline: t0, now: t0 + 5).map(\.id) == ["c"])
        #expect(try store.stats(now: t0).paused == 2)
        #expect(try store.resume(.all) == 3)
        let a = try #require(try store.one("a"))
        #expect(!a.paused && a.pausedAt == nil)
        #expect(try store.earliestRunAt() == t0 + 1)
    }

    @Test(arguments: behaviourKinds)
    func removeByIdsGroupAndAll(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", group: "g"), spec("b", group: "g"), spec("c"), spec("d", paused: true)], now: t0)
        #expect(try store.remove(.ids(["c", "x"])) == 1)
        #expect(try store.remove(.group("g")) == 2)
        #expect(try store.all().map(\.id) == ["d"])
        _ = try store.add([spec("e")], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 5, now: t0)
        #expect(try store.remove(.all) == 2)
        #expect(try store.all().isEmpty)
        #expect(try store.earliestRunAt() == nil && store.earliestLeaseDeadline() == nil)
        let s = try store.stats(now: t0)
        #expect(s.callbacks.isEmpty && s.paused == 0 && s.leased == 0)
        // The store still works normally after remove-all.
        _ = try store.add([spec("f")], now: t0)
        #expect(try store.stats(now: t0).due == 1)
    }

    @Test(arguments: behaviourKinds)
    func updateRunTimesIsAllOrNothing(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", runAt: t0), spec("b", runAt: t0)], now: t0)
        let error = storeError {
            try store.updateRunTimes([RunTimeUpdate(id: "a", runAt: t0 + 50), RunTimeUpdate(id: "ghost", runAt: 1)])
        }
        #expect(error?.code == .taskNotFound)
        #expect(error?.field == "updates[1].id")
        #expect(error?.message.contains("ghost") == true)
        #expect(try store.one("a")?.runAt == t0)
        try store.updateRunTimes([RunTimeUpdate(id: "a", runAt: t0 + 50), RunTimeUpdate(id: "b", runAt: t0 - 50)])
        #expect(try store.one("a")?.runAt == t0 + 50)
        #expect(try store.earliestRunAt() == t0 - 50)
        #expect(try store.earliestRunAt(callback: "cb") == t0 - 50)
    }

    @Test(arguments: behaviourKinds)
    func updateRunTimesDropsLeasesAndRevivesDeadTasks(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("leased", runAt: t0), spec("dead", runAt: t0, maxAttempts: 1)], now: t0)
        let claimed = try store.claim(callbacks: ["cb"], max: 2, holder: 7, leaseDeadline: t0 + 100, now: t0)
        #expect(claimed.count == 2)
        _ = try store.fail(id: "dead", attempt: 1, holder: 7, error: "boom", retry: true, now: t0 + 1)
        #expect(try store.one("dead")?.state == .dead)

        try store.updateRunTimes([RunTimeUpdate(id: "leased", runAt: t0 + 500), RunTimeUpdate(id: "dead", runAt: t0 + 600)])
        let leased = try #require(try store.one("leased"))
        #expect(leased.state == .scheduled && leased.attempt == 0 && leased.leaseDeadline == nil && leased.runAt == t0 + 500)
        let dead = try #require(try store.one("dead"))
        #expect(dead.state == .scheduled && dead.attempt == 0 && dead.runAt == t0 + 600)
        #expect(try store.earliestLeaseDeadline() == nil)
        #expect(try store.earliestRunAt() == t0 + 500)
        // The old holder's ack no longer settles the task: it runs at the new time instead.
        let lost = storeError { _ = try store.ack(id: "leased", attempt: 1, holder: 7, now: t0 + 2) }
        #expect(lost?.code == .leaseLost)
        let s = try store.stats(now: t0 + 2)
        #expect(s.leased == 0 && s.dead == 0 && s.pending == 2)
    }

    @Test(arguments: behaviourKinds)
    func listPaginatesInRunAtIdOrderAcrossStates(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        var specs: [TaskSpec] = []
        for i in 0..<60 {
            specs.append(spec("t\(i)", callback: i % 3 == 0 ? "x" : "y", runAt: t0 + Int64(i % 20), group: i % 2 == 0 ? "even" : nil,
                              paused: i % 7 == 0))
        }
        _ = try store.add(specs, now: t0)
        _ = try store.claim(callbacks: ["y"], max: 5, holder: 1, leaseDeadline: t0 + 100, now: t0 + 3)
        _ = try store.claim(callbacks: ["x"], max: 2, holder: 1, leaseDeadline: t0 + 100, now: t0 + 3)
        let dead = try store.claim(callbacks: ["x"], max: 1, holder: 1, leaseDeadline: t0 + 100, now: t0 + 19)
        _ = try store.fail(id: dead[0].id, attempt: 1, holder: 1, error: "e", retry: false, now: t0)

        let all = try store.all(now: t0 + 5, pageSize: 7)
        #expect(all.count == 60)
        #expect(Set(all.map(\.id)).count == 60)
        let sorted = all.sorted { positionPrecedes(($0.runAt, $0.id), ($1.runAt, $1.id)) }
        #expect(all.map(\.id) == sorted.map(\.id))

        let now = t0 + 5
        func check(_ filter: TaskFilter, _ predicate: (TaskRecord) -> Bool) throws {
            let got = try store.all(now: now, filter: filter, pageSize: 4)
            let want = sorted.filter(predicate)
            #expect(got.map(\.id) == want.map(\.id), "filter \(filter)")
        }
        try check(TaskFilter(group: "even")) { $0.group == "even" }
        try check(TaskFilter(group: "even", state: .paused)) { $0.group == "even" && $0.paused && $0.state == .scheduled }
        try check(TaskFilter(state: .due)) { $0.state == .scheduled && !$0.paused && $0.runAt <= now }
        try check(TaskFilter(state: .pending)) { $0.state == .scheduled && !$0.paused && $0.runAt > now }
        try check(TaskFilter(state: .paused)) { $0.state == .scheduled && $0.paused }
        try check(TaskFilter(state: .leased)) { $0.state == .leased }
        try check(TaskFilter(state: .dead)) { $0.state == .dead }
        try check(TaskFilter(callback: "x")) { $0.callback == "x" }
        try check(TaskFilter(state: .due, callback: "y")) { $0.callback == "y" && $0.state == .scheduled && !$0.paused && $0.runAt <= now }
        try check(TaskFilter(state: .pending, callback: "x")) { $0.callback == "x" && $0.state == .scheduled && !$0.paused && $0.runAt > now }
        try check(TaskFilter(dueAfter: t0 + 4, dueBefore: t0 + 9)) { $0.runAt >= t0 + 4 && $0.runAt < t0 + 9 }
        try check(TaskFilter(state: .leased, dueBefore: t0 + 2)) { $0.state == .leased && $0.runAt < t0 + 2 }
        #expect(try store.all(filter: TaskFilter(group: "none")).isEmpty)

        #expect(storeError { _ = try store.list(filter: TaskFilter(), limit: 0, cursor: nil, now: t0) }?.field == "limit")
        #expect(storeError { _ = try store.list(filter: TaskFilter(), limit: 5, cursor: [9, 9], now: t0) }?.field == "cursor")
        let exact = try store.list(filter: TaskFilter(), limit: 60, cursor: nil, now: now)
        #expect(exact.tasks.count == 60 && exact.nextCursor == nil)
    }

    /// There is no all-callback time index: the earliest due time and an unfiltered list come from each
    /// callback's part of `callback_wake`, skipping callback numbers (lowest, middle, highest) that have no
    /// unpaused scheduled task left.
    @Test(arguments: behaviourKinds)
    func earliestRunAtAndListSpanEveryCallbackWithScheduledTasks(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        // Callback cbC is numbered C (first use in that order); its earliest task is at t0 + 5 - C.
        var specs: [TaskSpec] = []
        for c in 0..<6 {
            for k in 0..<5 { specs.append(spec("c\(c)-\(k)", callback: "cb\(c)", runAt: t0 + Int64(k * 10 + 5 - c))) }
        }
        _ = try store.add(specs, now: t0)
        func ids(_ c: Int) -> TaskSelector { .ids((0..<5).map { "c\(c)-\($0)" }) }
        func check(_ earliest: Int64?, _ step: String) throws {
            #expect(try store.earliestRunAt() == earliest, "earliestRunAt after \(step)")
            #expect(try store.stats(now: t0).earliestRunAt == earliest, "stats after \(step)")
            let listed = try store.all(now: t0, pageSize: 3)
            let sorted = listed.sorted { positionPrecedes(($0.runAt, $0.id), ($1.runAt, $1.id)) }
            #expect(listed.map(\.id) == sorted.map(\.id), "list order after \(step)")
            let due = try store.all(now: t0 + 100, filter: TaskFilter(state: .due), pageSize: 4)
            let wantDue = sorted.filter { $0.state == .scheduled && !$0.paused }
            #expect(due.map(\.id) == wantDue.map(\.id), "due list after \(step)")
            if let lmdb = store as? LMDBTaskStore { #expect(try lmdb.verifyIndexes() == [], "indexes after \(step)") }
        }
        try check(t0, "add")
        #expect(try store.remove(ids(5)) == 5)
        try check(t0 + 1, "removing the highest number's tasks")
        #expect(try store.pause(ids(4), now: t0) == 5)
        try check(t0 + 2, "pausing")
        #expect(try store.remove(ids(3)) == 5)
        #expect(try store.remove(ids(1)) == 5)
        try check(t0 + 3, "removing middle numbers' tasks")
        #expect(try store.remove(ids(2)) == 5)
        let claimed = try store.claim(callbacks: ["cb0"], max: 1, holder: 1, leaseDeadline: t0 + 99, now: t0 + 5)
        #expect(claimed.map(\.id) == ["c0-0"])
        try check(t0 + 15, "a claim")
        #expect(try store.pause(ids(0), now: t0) == 5)
        try check(nil, "pausing the last callback with tasks")
        #expect(try store.resume(.all) == 10)
        try check(t0 + 1, "resuming")
        #expect(try store.all(now: t0).count == 10)
    }

    @Test(arguments: behaviourKinds)
    func deadLettersCanBeRetriedAndPurged(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", group: "g"), spec("b", group: "g"), spec("c"), spec("live")], now: t0)
        for _ in 0..<3 {
            let c = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0, now: t0)
            _ = try store.fail(id: c[0].id, attempt: 1, holder: 1, error: "bad", retry: false, now: t0)
        }
        #expect(try store.all(filter: TaskFilter(state: .dead)).map(\.id) == ["a", "b", "c"])
        #expect(try store.retryDead(.ids(["a", "live"]), now: t0 + 7) == 1)
        let a = try #require(try store.one("a"))
        #expect(a.state == .scheduled && a.runAt == t0 + 7 && a.attempt == 0 && a.lastError == "bad")
        #expect(try store.purgeDead(.group("g")) == 1)
        #expect(try store.one("b") == nil)
        #expect(try store.retryDead(.all, now: t0 + 8) == 1)
        #expect(try store.purgeDead(.all) == 0)
        #expect(try store.stats(now: t0 + 10).dead == 0)
    }

    @Test(arguments: behaviourKinds)
    func statsCountByStateAndCallback(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add(
            [
                spec("a1", callback: "a", runAt: t0 - 1), spec("a2", callback: "a", runAt: t0 + 100),
                spec("a3", callback: "a", runAt: t0 - 2, paused: true), spec("b1", callback: "b", runAt: t0 - 3),
                spec("b2", callback: "b", runAt: t0 - 4), spec("b3", callback: "b", runAt: t0 - 5),
            ], now: t0)
        _ = try store.claim(callbacks: ["b"], max: 2, holder: 1, leaseDeadline: t0 + 1, now: t0)
        _ = try store.fail(id: "b3", attempt: 1, holder: 1, error: "x", retry: false, now: t0)
        let s = try store.stats(now: t0)
        #expect(s.due == 2 && s.pending == 1 && s.paused == 1 && s.leased == 1 && s.dead == 1)
        #expect(s.earliestRunAt == t0 - 3)
        #expect(s.callbacks == [
            StoreCallbackStats(callback: "a", scheduled: 3, due: 1, leased: 0, dead: 0),
            StoreCallbackStats(callback: "b", scheduled: 1, due: 1, leased: 1, dead: 1),
        ])
        // Sizes of the data file and map: LMDB's (a shared store has no file of its own).
        if store is LMDBTaskStore { #expect(s.fileBytes > 0 && s.mapBytes >= s.usedBytes && s.usedBytes > 0) }
    }

    @Test(arguments: behaviourKinds)
    func countersStayRightForBatchesOverManyCallbacks(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        // 40 callbacks in one batch: more than the short list of counter changes holds.
        _ = try store.add((0..<120).map { spec("t\($0)", callback: "cb\($0 % 40)", runAt: t0 - 1) }, now: t0)
        _ = try store.claim(callbacks: (0..<40).map { "cb\($0)" }, max: 40, holder: 1, leaseDeadline: t0 + 5, now: t0)
        let s = try store.stats(now: t0)
        #expect(s.callbacks.count == 40)
        #expect(s.due == 80 && s.leased == 40)
        #expect(s.callbacks.allSatisfy { $0.scheduled + $0.leased == 3 })
        #expect(try store.remove(.all) == 120)
        #expect(try store.stats(now: t0).callbacks.isEmpty)
    }
}

/// PROTOCOL.md sections 6.5 and 6.7 (issue 17), for every store kind in `behaviourKinds`.
@Suite struct SelectionSpecificationTests {
    @Test(arguments: behaviourKinds)
    func pauseAndResumeSkipDeadTasksAndDoNotCountThem(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("dead", group: "g", maxAttempts: 1), spec("live", runAt: t0 + 50, group: "g")], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 100, now: t0)
        _ = try store.fail(id: "dead", attempt: 1, holder: 1, error: "e", retry: false, now: t0)
        #expect(try store.pause(.group("g"), now: t0 + 1) == 1)
        #expect(try store.pause(.ids(["dead"]), now: t0 + 1) == 0)
        let dead = try #require(try store.one("dead"))
        #expect(dead.state == .dead && !dead.paused && dead.pausedAt == nil)
        #expect(try store.one("live")?.paused == true)
        #expect(try store.resume(.all) == 1)
        // Retried, it is due at once: it was never paused.
        #expect(try store.retryDead(.all, now: t0 + 2) == 1)
        #expect(try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + 100, now: t0 + 2).map(\.id) == ["dead"])
    }

    @Test(arguments: behaviourKinds)
    func groupFetchIsInRunAtThenIDOrder(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("a", runAt: t0 + 3, group: "g"), spec("z", runAt: t0 + 1, group: "g"),
                           spec("m", runAt: t0 + 1, group: "g"), spec("b", runAt: t0 + 2, group: "g")], now: t0)
        #expect(try store.fetch(.group("g")).map(\.id) == ["m", "z", "b", "a"])
        // The ids selector keeps the request's order.
        #expect(try store.fetch(.ids(["a", "z"])).map(\.id) == ["a", "z"])
    }

    @Test(arguments: behaviourKinds)
    func groupFetchRefusesAGroupLargerThanTheBound(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add((0..<5).map { spec("t\($0)", group: "g") }, now: t0)
        let bounded = try #require(store as? any BoundedGroupFetching)
        #expect(try bounded.fetch(.group("g"), maxGroupTasks: 5).count == 5)
        let error = storeError { _ = try bounded.fetch(.group("g"), maxGroupTasks: 4) }
        #expect(error?.code == .invalidArgument && error?.field == "selector.group")
        #expect(error?.message.contains("more than 4 tasks") == true)
        // The bound is on the group: ids are bounded by the request's own size.
        #expect(try bounded.fetch(.ids((0..<5).map { "t\($0)" }), maxGroupTasks: 1).count == 5)
    }
}
