import CLMDB
import Testing
import TaskShedProtocol
import TaskShedTestSupport
@testable import TaskShedStore

/// The run history in every store, with explicit clocks: which operations end a delivery (`endedRuns`) and
/// which leave no trace, what `recordRuns` keeps (per task, in all, by age), the query's filters and pages, and
/// the history surviving a reopen, `remove(.all)` and (LMDB) the upgrade from schema 5.
@Suite("Run history in the store")
struct RunHistoryStoreTests {
    /// Runs `body` in one write and records what it ended, as the daemon's store job does.
    @discardableResult
    static func settle<R>(_ store: any TaskStore, now: Int64, worker: String = "w",
                          _ body: (inout any TaskStoreWriteBatch) throws(StoreError) -> R) throws -> [RunEntry]
    {
        try write(store) { (batch: inout any TaskStoreWriteBatch) throws(StoreError) -> [RunEntry] in
            _ = try body(&batch)
            let runs = batch.endedRuns.map { run in
                var entry = run.entry
                entry.workerName = worker
                entry.daemon = "d"
                return entry
            }
            try batch.recordRuns(runs, now: now)
            return runs
        }
    }

    /// `TaskStore.write` through an existential batch.
    static func write<S: TaskStore, R>(_ store: S, _ body: (inout any TaskStoreWriteBatch) throws(StoreError) -> R)
        throws(StoreError) -> R
    {
        try store.write(isolatingRequests: true) { (batch: inout S.WriteBatch) throws(StoreError) -> R in
            var any: any TaskStoreWriteBatch = batch
            defer { batch = any as! S.WriteBatch }
            return try body(&any)
        }
    }

    static func all(_ store: any TaskStore, _ query: HistoryQuery = HistoryQuery(limit: 1_000), now: Int64 = t0)
        throws -> [RunEntry]
    {
        var query = query
        var out: [RunEntry] = []
        while true {
            let page = try store.history(query, now: now)
            out += page.runs
            guard let next = page.nextBefore else { return out }
            query.before = next
        }
    }

    static func entry(_ id: String, finishedAt: Int64, outcome: RunOutcome = .succeeded, callback: String = "cb")
        -> RunEntry
    {
        RunEntry(taskID: id, callback: callback, attempt: 1, scheduledAt: finishedAt - 10, deliveredAt: finishedAt - 5,
                 finishedAt: finishedAt, outcome: outcome, then: .finished, error: outcome == .failed ? "e" : nil,
                 workerName: "w", workerPID: 7, workerUID: 8, daemon: "d")
    }

    @Test(arguments: behaviourKinds)
    func everyEndOfADeliveryIsAnEntryAndTheDaemonsOwnGiveBacksAreNot(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add((1...6).map { spec("t\($0)", maxAttempts: 3) }, now: t0)
        let claimed = try store.claim(callbacks: ["cb"], max: 6, holder: 1, leaseDeadline: t0 + second, now: t0)
        #expect(claimed.count == 6)
        let recorded = try Self.settle(store, now: t0 + 10) { (b) throws(StoreError) in
            _ = try b.ack(id: "t1", attempt: 1, holder: 1, now: t0 + 10)
            _ = try b.fail(id: "t2", attempt: 1, holder: 1, error: "no", retry: true, now: t0 + 10)
            _ = try b.release(id: "t3", attempt: 1, holder: 1, now: t0 + 10)
            // The daemon's give-back of a push it never made: no entry.
            _ = try b.release(id: "t4", attempt: 1, holder: 1)
            // A lost lease is a request error: nothing ended.
            _ = try? b.ack(id: "t1", attempt: 1, holder: 1, now: t0 + 10)
            _ = try b.releaseHolder(1, reason: "worker disconnected", now: t0 + 10)
        }
        #expect(recorded.map(\.outcome) == [.succeeded, .failed, .released, .workerDisconnected, .workerDisconnected])
        #expect(recorded.map(\.taskID) == ["t1", "t2", "t3", "t5", "t6"])
        let stored = try Self.all(store)
        #expect(stored.map(\.taskID) == ["t6", "t5", "t3", "t2", "t1"], "newest first")
        #expect(stored.map(\.seq) == stored.map(\.seq).sorted(by: >))
        #expect(Set(stored.map(\.seq)).count == 5)
        let failed = try #require(stored.first { $0.taskID == "t2" })
        #expect(failed.error == "no" && failed.then == .retry && failed.workerName == "w" && failed.daemon == "d")
        #expect(failed.scheduledAt == t0 && failed.deliveredAt == t0 && failed.finishedAt == t0 + 10)

        // Expiry, and a start-up's voided leases (no entry).
        _ = try store.claim(callbacks: ["cb"], max: 6, holder: 2, leaseDeadline: t0 + second, now: t0 + second)
        let expired = try Self.settle(store, now: t0 + 3 * second) { (b) throws(StoreError) in
            try b.expireLeases(now: t0 + 3 * second)
        }
        #expect(!expired.isEmpty && expired.allSatisfy { $0.outcome == .leaseExpired && $0.error == "lease expired" })
        _ = try store.claim(callbacks: ["cb"], max: 6, holder: 3, leaseDeadline: .max, now: t0 + 4 * second)
        let voided = try Self.settle(store, now: t0 + 4 * second) { (b) throws(StoreError) in try b.releaseAllLeases() }
        #expect(voided.isEmpty)
    }

    @Test(arguments: behaviourKinds)
    func aRecurringTaskMovesOnAndAnOneOffOutOfAttemptsIsDeadLettered(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("every", schedule: .interval(micros: second)), spec("once", maxAttempts: 1)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 2, holder: 1, leaseDeadline: .max, now: t0)
        let runs = try Self.settle(store, now: t0 + 5) { (b) throws(StoreError) in
            _ = try b.ack(id: "every", attempt: 1, holder: 1, now: t0 + 5)
            _ = try b.fail(id: "once", attempt: 1, holder: 1, error: "bad", retry: true, now: t0 + 5)
        }
        #expect(runs.map(\.then) == [.nextRun, .deadLettered])
    }

    @Test(arguments: behaviourKinds)
    func aCalendarCatchUpSkipIsOneEntry(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try CalendarStoreTests.storeWith(CalendarStoreTests.every5(catchUp: .skip), fixture)
        let minute = CalendarStoreTests.minute
        let runs = try Self.settle(store, now: t0 + 23 * minute) { (b) throws(StoreError) in
            try b.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0 + 23 * minute)
        }
        #expect(runs.count == 1)
        #expect(runs.first?.outcome == .skipped)
        #expect(runs.first?.deliveredAt == nil)
        #expect(runs.first?.scheduledAt == t0)
        #expect(runs.first?.then == .nextRun)
        #expect(runs.first?.error?.contains("5") == true, "the reason says how many: \(runs.first?.error ?? "")")
    }

    @Test(arguments: behaviourKinds)
    func theBoundsKeepTheNewestPerTaskInAllAndWithinTheAge(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var options = testOptions()
        options.history = HistoryLimits(perTask: 3, maxRuns: 10, maxAgeMicros: 100 * second)
        let store = try fixture.open(options: options)
        // Task "a" ends 5 runs in one commit and 2 in the next: its newest 3 stay.
        try Self.write(store) { (b) throws(StoreError) in
            try b.recordRuns((1...5).map { Self.entry("a", finishedAt: t0 + Int64($0)) }, now: t0 + 5)
        }
        try Self.write(store) { (b) throws(StoreError) in
            try b.recordRuns([Self.entry("a", finishedAt: t0 + 6), Self.entry("a", finishedAt: t0 + 7)], now: t0 + 7)
        }
        #expect(try Self.all(store, now: t0 + 7).map(\.finishedAt) == [t0 + 7, t0 + 6, t0 + 5])
        // Twelve other tasks: the store keeps 10, the oldest going first ("a"'s among them).
        try Self.write(store) { (b) throws(StoreError) in
            try b.recordRuns((1...12).map { Self.entry("b\($0)", finishedAt: t0 + 10 + Int64($0)) }, now: t0 + 22)
        }
        let kept = try Self.all(store, now: t0 + 22)
        #expect(kept.count == 10)
        #expect(kept.map(\.taskID) == (3...12).reversed().map { "b\($0)" })
        // Past the age bound: not returned at once, dropped at the next record.
        #expect(try Self.all(store, now: t0 + 200 * second).isEmpty)
        try Self.write(store) { (b) throws(StoreError) in
            try b.recordRuns([Self.entry("c", finishedAt: t0 + 200 * second)], now: t0 + 200 * second)
        }
        #expect(try Self.all(store, now: t0 + 200 * second).map(\.taskID) == ["c"])
        let reopened = try fixture.reopen(store, options: options)
        #expect(try Self.all(reopened, now: t0 + 200 * second).map(\.taskID) == ["c"])
    }

    @Test(arguments: behaviourKinds)
    func noHistoryIsRecordedWhenTheLimitsRecordNone(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var options = testOptions()
        options.history = .none
        let store = try fixture.open(options: options)
        try Self.write(store) { (b) throws(StoreError) in try b.recordRuns([Self.entry("a", finishedAt: t0)], now: t0) }
        #expect(try Self.all(store).isEmpty)
    }

    @Test(arguments: behaviourKinds)
    func theQueryFiltersAndPages(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        try Self.write(store) { (b) throws(StoreError) in
            try b.recordRuns([
                Self.entry("x", finishedAt: t0 + 1), Self.entry("y", finishedAt: t0 + 2, outcome: .failed),
                Self.entry("x", finishedAt: t0 + 3, outcome: .leaseExpired, callback: "other"),
                Self.entry("z", finishedAt: t0 + 4, outcome: .released), Self.entry("x", finishedAt: t0 + 5),
            ], now: t0 + 5)
        }
        let ids = { (q: HistoryQuery) throws -> [Int64] in try Self.all(store, q, now: t0 + 5).map { $0.finishedAt - t0 } }
        #expect(try ids(HistoryQuery(limit: 2)) == [5, 4, 3, 2, 1])
        #expect(try store.history(HistoryQuery(limit: 2), now: t0 + 5).runs.count == 2)
        #expect(try store.history(HistoryQuery(limit: 5), now: t0 + 5).nextBefore == nil)
        #expect(try ids(HistoryQuery(taskID: "x", limit: 1)) == [5, 3, 1])
        #expect(try ids(HistoryQuery(callback: "other", limit: 10)) == [3])
        #expect(try ids(HistoryQuery(failedOnly: true, limit: 10)) == [3, 2])
        #expect(try ids(HistoryQuery(taskID: "x", failedOnly: true, limit: 10)) == [3])
        #expect(try ids(HistoryQuery(since: t0 + 3, limit: 10)) == [5, 4, 3])
        #expect(try ids(HistoryQuery(taskID: "nobody", limit: 10)).isEmpty)
        let page = try store.history(HistoryQuery(limit: 10), now: t0 + 5)
        #expect(try store.history(HistoryQuery(limit: 10, before: page.runs[1].seq), now: t0 + 5).runs.map(\.seq)
            == Array(page.runs[2...].map(\.seq)))
        #expect(try store.history(HistoryQuery(limit: 10, before: .max), now: t0 + 5).runs.count == 5)
        let refused = storeError { _ = try store.history(HistoryQuery(limit: 0), now: t0) }
        #expect(refused?.code == .invalidArgument && refused?.field == "limit")
        // Removing every task keeps the history.
        _ = try store.add([spec("x")], now: t0)
        _ = try store.remove(.all)
        #expect(try Self.all(store, now: t0 + 5).count == 5)
    }

    @Test func anLMDBStoreOfSchemaFiveIsUpgradedInPlace() throws {
        let dir = TempDirectory()
        do {
            let store = try openStore(dir)
            _ = try store.add([spec("kept")], now: t0)
            store.close()
        }
        // Make it a schema-5 store: version 5 and no history databases.
        do {
            let env = try LMDBEnvironment(path: dir.store, mapSize: 1 << 30, maxDatabases: 16, flags: [])
            let txn = try LMDBTransaction(environment: env, readOnly: false)
            let meta = try #require(try txn.openDatabase("meta", flags: []))
            try txn.put(meta, key: Array("schema_version".utf8), value: [5, 0, 0, 0])
            for name in ["history", "history_by_task"] {
                let db = try #require(try txn.openDatabase(name, flags: []))
                #expect(mdb_drop(txn.live, db.dbi, 1) == 0)
            }
            try txn.commit()
        }
        let store = try openStore(dir)
        #expect(try store.fetch(.ids(["kept"])).count == 1)
        try Self.write(store) { (b) throws(StoreError) in try b.recordRuns([Self.entry("kept", finishedAt: t0)], now: t0) }
        #expect(try Self.all(store).map(\.taskID) == ["kept"])
        store.close()
        let again = try openStore(dir)
        #expect(try Self.all(again).map(\.taskID) == ["kept"])
        #expect(try again.verifyIndexes().isEmpty)
    }
}
