import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// The run history end to end (PROTOCOL.md 6.18): real daemons on either datastore, workers over the protocol,
/// and GET_HISTORY, for every kind of outcome, the bounds, ageing, a restart and the reply's frame limit.
@Suite struct RunHistoryTests {
    enum Datastore: String, CaseIterable, CustomTestStringConvertible {
        case lmdb, postgres
        var testDescription: String { rawValue }
    }

    /// A daemon on `datastore` (PostgreSQL: a fresh schema, dropped with the returned value).
    static func daemon(_ datastore: Datastore, _ arguments: [String] = []) throws -> (DaemonProcess, AnyObject?) {
        switch datastore {
        case .lmdb:
            return (try DaemonProcess(arguments: arguments), nil)
        case .postgres:
            let schema = try SharedDatastoreTests.Schema()
            return (try schema.daemon("history", arguments), schema)
        }
    }

    /// A connection that speaks version 3 (GET_HISTORY).
    static func client(_ daemon: DaemonProcess, name: String = "history-tests") throws -> Client {
        let client = try Client(path: daemon.socketPath, version: 3, clientName: name)
        return client
    }

    static func history(_ client: Client, _ query: HistoryQuery) throws -> HistoryPage {
        let reply = try client.call(.getHistory(query))
        guard case .history(let page) = reply else { throw TestSupportError("GET_HISTORY answered \(reply)") }
        return page
    }

    /// Every entry matching `query`, newest first, paged with `next_before`.
    static func allHistory(_ client: Client, _ query: HistoryQuery) throws -> [RunEntry] {
        var query = query
        var out: [RunEntry] = []
        for _ in 0..<1_000 {
            let page = try history(client, query)
            out += page.runs
            guard let next = page.nextBefore else { return out }
            #expect(!page.runs.isEmpty, "a page with a cursor but no entries")
            query.before = next
        }
        Issue.record("paging did not end")
        return out
    }

    @Test(arguments: Datastore.allCases)
    func eachOutcomeIsRecordedWithItsWorker(_ datastore: Datastore) throws {
        let (daemon, schema) = try Self.daemon(datastore)
        defer { _ = schema }
        let scheduler = try Self.client(daemon)
        let worker = try Self.client(daemon, name: "worker-1")
        let now = nowMicros()
        try scheduler.add([
            task("ok", callback: "h"), task("bad", callback: "h", maxAttempts: 2),
            task("given-back", callback: "h"),
        ])
        var claimed = try worker.claim(["h"], max: 3)
        #expect(claimed.count == 3)
        claimed.sort { $0.id < $1.id }
        let (bad, givenBack, ok) = (claimed[0], claimed[1], claimed[2])
        #expect(try worker.ack(ok) == .ok)
        #expect(try worker.fail(bad, retry: true, error: "disk on fire") == .ok)
        #expect(try worker.call(.release(LeaseRef(id: givenBack.id, attempt: givenBack.attempt))) == .ok)

        let runs = try Self.allHistory(scheduler, HistoryQuery(limit: 100))
        #expect(runs.count == 3)
        #expect(runs.map(\.seq) == runs.map(\.seq).sorted(by: >), "newest first")
        let byTask = Dictionary(runs.map { ($0.taskID, $0) }, uniquingKeysWith: { a, _ in a })
        let success = try #require(byTask["ok"])
        #expect(success.outcome == .succeeded)
        #expect(success.then == .finished)
        #expect(success.attempt == 1)
        #expect(success.callback == "h")
        #expect(success.workerName == "worker-1")
        #expect(success.workerPID == UInt32(getpid()))
        #expect(success.workerUID == getuid())
        #expect(!success.daemon.isEmpty)
        #expect(success.finishedAt >= now)
        #expect(success.deliveredAt.map { $0 >= success.scheduledAt && $0 <= success.finishedAt } == true)
        let failure = try #require(byTask["bad"])
        #expect(failure.outcome == .failed)
        #expect(failure.error == "disk on fire")
        #expect(failure.then == .retry)
        let release = try #require(byTask["given-back"])
        #expect(release.outcome == .released)
        #expect(release.then == .retry)

        // The retry of "bad" fails for good: dead-lettered. The given-back task succeeds at attempt 1 again.
        var retried: [TaskRecord] = []
        for _ in 0..<100 where retried.count < 2 {
            retried += try worker.claim(["h"], max: 2)
            if retried.count < 2 { pause(0.05) }
        }
        for delivery in retried {
            if delivery.id == "bad" {
                #expect(delivery.attempt == 2)
                #expect(try worker.fail(delivery, retry: true, error: "still on fire") == .ok)
            } else {
                #expect(delivery.attempt == 1, "a released delivery counted as an attempt")
                #expect(try worker.ack(delivery) == .ok)
            }
        }
        let badRuns = try Self.history(scheduler, HistoryQuery(taskID: "bad", limit: 10)).runs
        #expect(badRuns.map(\.attempt) == [2, 1])
        #expect(badRuns.first?.then == .deadLettered)
        #expect(badRuns.first?.error == "still on fire")
        let failures = try Self.allHistory(scheduler, HistoryQuery(failedOnly: true, limit: 100))
        #expect(failures.map(\.taskID) == ["bad", "bad"])
        #expect(try Self.allHistory(scheduler, HistoryQuery(callback: "other", limit: 100)).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test(arguments: Datastore.allCases)
    func expiredLeasesAndClosedWorkersAreRecorded(_ datastore: Datastore) throws {
        let (daemon, schema) = try Self.daemon(datastore)
        defer { _ = schema }
        let scheduler = try Self.client(daemon)
        try scheduler.add([task("slow", callback: "x", maxAttempts: 3), task("left", callback: "y", maxAttempts: 3)])
        let sleeper = try Self.client(daemon, name: "sleeper")
        #expect(try sleeper.claim(["x"], max: 1, leaseMicros: 200_000).count == 1)
        let leaver = try Self.client(daemon, name: "leaver")
        #expect(try leaver.claim(["y"], max: 1).count == 1)
        leaver.raw.close()
        var runs: [RunEntry] = []
        for _ in 0..<200 {
            runs = try Self.allHistory(scheduler, HistoryQuery(limit: 100))
            if runs.count >= 2 { break }
            pause(0.05)
        }
        let expired = try #require(runs.first { $0.taskID == "slow" })
        #expect(expired.outcome == .leaseExpired)
        #expect(expired.then == .retry)
        #expect(expired.workerName == "sleeper")
        let gone = try #require(runs.first { $0.taskID == "left" })
        #expect(gone.outcome == .workerDisconnected)
        #expect(gone.workerName == "leaver", "the worker of a closed connection is still known when its lease ends")
        #expect(try daemon.stop() == 0)
    }

    @Test(arguments: Datastore.allCases)
    func boundsAgeingAndARestart(_ datastore: Datastore) throws {
        let (daemon, schema) = try Self.daemon(datastore, ["--history-per-task", "3", "--history-max-runs", "5"])
        defer { _ = schema }
        let client = try Self.client(daemon)
        // One recurring task run 5 times keeps its last 3; then 4 one-off tasks push the store past 5.
        try client.add([task("every", callback: "r", schedule: .interval(micros: 1_000))])
        var ran = 0
        for _ in 0..<400 where ran < 5 {
            for delivery in try client.claim(["r"], max: 1) {
                #expect(try client.ack(delivery) == .ok)
                ran += 1
            }
            if ran < 5 { pause(0.005) }
        }
        #expect(try client.affected(.removeTasks(.ids(["every"]))) == 1)
        let kept = try Self.history(client, HistoryQuery(taskID: "every", limit: 10)).runs
        #expect(kept.count == 3, "a removed task keeps its last runs")
        #expect(kept.allSatisfy { $0.outcome == .succeeded && $0.then == .nextRun })
        try client.add((1...4).map { task("one\($0)", callback: "o") })
        for delivery in try client.claim(["o"], max: 4) { #expect(try client.ack(delivery) == .ok) }
        let all = try Self.allHistory(client, HistoryQuery(limit: 100))
        #expect(all.count == 5)
        #expect(all.filter { $0.taskID == "every" }.count == 1, "the oldest entries go first")

        // A restart keeps the history.
        #expect(try daemon.stop() == 0)
        try daemon.restart()
        let again = try Self.client(daemon)
        #expect(try Self.allHistory(again, HistoryQuery(limit: 100)) == all)
        #expect(try daemon.stop() == 0)
    }

    @Test(arguments: Datastore.allCases)
    func entriesPastTheAgeBoundAreNeitherReturnedNorKept(_ datastore: Datastore) throws {
        let (daemon, schema) = try Self.daemon(datastore, ["--history-max-age", "1s"])
        defer { _ = schema }
        let client = try Self.client(daemon)
        try client.add([task("old", callback: "a")])
        for delivery in try client.claim(["a"], max: 1) { #expect(try client.ack(delivery) == .ok) }
        #expect(try Self.history(client, HistoryQuery(limit: 10)).runs.map(\.taskID) == ["old"])
        pause(1.2)
        #expect(try Self.history(client, HistoryQuery(limit: 10)).runs.isEmpty)
        // The next recorded run drops it for good.
        try client.add([task("new", callback: "a")])
        for delivery in try client.claim(["a"], max: 1) { #expect(try client.ack(delivery) == .ok) }
        #expect(try Self.history(client, HistoryQuery(limit: 10)).runs.map(\.taskID) == ["new"])
        #expect(try daemon.stop() == 0)
    }

    @Test func aPageIsCutToTheFrameLimitAndPagingReachesEveryEntry() throws {
        let (daemon, _) = try Self.daemon(.lmdb, ["--max-frame-bytes", "4096", "--max-kwargs-bytes", "1KiB"])
        let client = try Self.client(daemon)
        try client.add((1...12).map { task("f\($0)", callback: "f") })
        let error = String(repeating: "e", count: 900)
        for delivery in try client.claim(["f"], max: 12) {
            #expect(try client.fail(delivery, retry: false, error: error) == .ok)
        }
        let first = try Self.history(client, HistoryQuery(limit: 100))
        #expect(!first.runs.isEmpty && first.runs.count < 12, "\(first.runs.count) entries of ~1 KB in a 4 KiB frame")
        #expect(first.nextBefore == first.runs.last?.seq)
        let all = try Self.allHistory(client, HistoryQuery(limit: 100))
        #expect(Set(all.map(\.taskID)).count == 12)
        #expect(all.count == 12)
        #expect(try daemon.stop() == 0)
    }

    @Test func badQueriesAreRefusedByField() throws {
        let daemon = try DaemonProcess(arguments: ["--max-batch", "500"])
        let client = try Self.client(daemon)
        expectError(try client.call(.getHistory(HistoryQuery(limit: 0))), .invalidArgument, field: "limit")
        expectError(try client.call(.getHistory(HistoryQuery(limit: 501))), .invalidArgument, field: "limit")
        expectError(try client.call(.getHistory(HistoryQuery(since: -1, limit: 5))), .invalidArgument, field: "since")
        expectError(try client.call(.getHistory(HistoryQuery(taskID: "", limit: 5))), .invalidArgument, field: "task_id")
        expectError(try client.call(.getHistory(HistoryQuery(callback: String(repeating: "c", count: 256), limit: 5))),
                    .invalidArgument, field: "callback")
        // Version 2 does not know the message.
        let old = try Client(path: daemon.socketPath, version: 2)
        expectError(try old.call(.getHistory(HistoryQuery(limit: 5))), .unknownMessageType)
        // The daemon serves on.
        #expect(try Self.history(client, HistoryQuery(limit: 5)).runs.isEmpty)
        #expect(try daemon.stop() == 0)
    }
}
