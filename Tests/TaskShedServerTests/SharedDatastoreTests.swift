import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Several real taskshedd processes on one PostgreSQL schema (the suite's throw-away server): what one daemon
/// adds another delivers, once; a killed daemon's leases move elsewhere; the database may restart.
@Suite struct SharedDatastoreTests {
    /// A fresh schema on the suite's PostgreSQL server, dropped at the end.
    final class Schema: Sendable {
        let connectionString: String
        let name: String

        init() throws {
            connectionString = try PostgresTestServer.sharedConnectionString()
            name = PostgresTestServer.uniqueSchemaName("daemons")
        }

        deinit { _ = try? PostgresTestServer.psql(connectionString, "DROP SCHEMA IF EXISTS \(name) CASCADE") }

        /// A daemon on this schema.
        func daemon(_ name: String, connectionString: String? = nil, _ extra: [String] = []) throws -> DaemonProcess {
            try DaemonProcess(arguments: [
                "--datastore", "postgresql:" + (connectionString ?? self.connectionString), "--schema", self.name,
                "--daemon-name", name,
            ] + extra)
        }
    }

    @Test func aTaskAddedOnOneDaemonIsDeliveredOnAnotherOnceAtItsDueTime() throws {
        let schema = try Schema()
        let a = try schema.daemon("a")
        let b = try schema.daemon("b")
        let scheduler = try Client(a)
        let worker = try Client(b)
        let bystander = try Client(a)
        try worker.subscribe(["email"], concurrency: 4)
        try bystander.subscribe(["other"], concurrency: 4)
        let due = nowMicros() + 1_500_000
        try scheduler.add([task("t1", callback: "email", runAt: due, kwargs: #"{"to":"a@b.c"}"#)])
        let delivery = try #require(try worker.nextDelivery(timeout: 15))
        let receivedAt = nowMicros()
        #expect(delivery.id == "t1")
        #expect(delivery.kwargs == Array(#"{"to":"a@b.c"}"#.utf8))
        #expect(receivedAt >= due, "delivered \(due - receivedAt) µs early")
        // Claimed ahead and pushed from memory: well under the 250 ms poll after the due time.
        #expect(receivedAt - due < 200_000, "delivered \(receivedAt - due) µs late")
        #expect(try worker.ack(delivery) == .ok)
        #expect(try scheduler.fetch(["t1"]).isEmpty)
        #expect(try worker.nextDelivery(timeout: 0.5) == nil)
        #expect(try a.stop() == 0)
        #expect(try b.stop() == 0)
    }

    @Test func aTaskDueAtOnceReachesAWorkerOnAnotherDaemonWithoutWaitingForThePoll() throws {
        let schema = try Schema()
        // A poll of 30 s: only a notification can bring the task over in time.
        let a = try schema.daemon("a", ["--shared-poll", "30s"])
        let b = try schema.daemon("b", ["--shared-poll", "30s"])
        let scheduler = try Client(a)
        let worker = try Client(b)
        try worker.subscribe(["now"], concurrency: 8)
        pause(0.3)
        for round in 0..<5 {
            let sent = nowMicros()
            try scheduler.add([task("n\(round)", callback: "now")])
            let delivery = try #require(try worker.nextDelivery(timeout: 10))
            #expect(delivery.id == "n\(round)")
            #expect(nowMicros() - sent < 2_000_000, "took \(nowMicros() - sent) µs")
            #expect(try worker.ack(delivery) == .ok)
        }
    }

    @Test func threeDaemonsDeliverEachOf5000TasksExactlyOnce() throws {
        let schema = try Schema()
        let a = try schema.daemon("a")
        let b = try schema.daemon("b")
        let c = try schema.daemon("c")
        let pollingB = try Client(b)
        let pollingC = try Client(c)
        let pushedC = try Client(c)
        try pushedC.subscribe(["job"], concurrency: 50)
        let scheduler = try Client(a)
        let total = 5_000
        for start in stride(from: 0, to: total, by: 500) {
            try scheduler.add((start..<start + 500).map { task("j\($0)", callback: "job") })
        }
        var seen: [String: Int] = [:]
        var byWorker = [0, 0, 0]
        let deadline = monotonic() + 120
        while seen.count < total && monotonic() < deadline {
            for (index, poller) in [pollingB, pollingC].enumerated() {
                for t in try poller.claim(["job"], max: 100) {
                    seen[t.id, default: 0] += 1
                    byWorker[index] += 1
                    #expect(try poller.ack(t) == .ok)
                }
            }
            while let t = try pushedC.nextDelivery(timeout: 0.01) {
                seen[t.id, default: 0] += 1
                byWorker[2] += 1
                #expect(try pushedC.ack(t) == .ok)
            }
        }
        #expect(seen.count == total, "lost \(total - seen.count)")
        #expect(seen.values.allSatisfy { $0 == 1 }, "duplicates: \(seen.filter { $0.value > 1 }.count)")
        #expect(byWorker.allSatisfy { $0 > 0 }, "\(byWorker)")
        #expect(try scheduler.stats().pending + scheduler.stats().due == 0)
    }

    @Test func aKilledDaemonsLeasesAreDeliveredElsewhereWithinTheBound() throws {
        let schema = try Schema()
        let a = try schema.daemon("a")
        let b = try schema.daemon("b")
        let doomed = try Client(a)
        try doomed.subscribe(["work"], concurrency: 10)
        let scheduler = try Client(b)
        try scheduler.add((0..<5).map { task("k\($0)", callback: "work") })
        var held = Set<String>()
        while held.count < 5, let t = try doomed.nextDelivery(timeout: 10) { held.insert(t.id) }
        #expect(held.count == 5)
        // Both daemons are listed, with the leases each holds, by either of them.
        let observer = try RawConnection(path: b.socketPath)
        try observer.handshake(version: 2)
        func daemons() throws -> [DaemonInfo] {
            let reply = try observer.request(.getDaemons, id: 77)
            guard case .daemons(let list) = reply else { throw TestSupportError("GET_DAEMONS answered \(reply)") }
            return list
        }
        let before = try daemons()
        #expect(before.map(\.name) == ["a", "b"])
        #expect(before.map(\.leased) == [5, 0])
        #expect(before.map(\.isThisDaemon) == [false, true])
        #expect(before.first?.pid == UInt32(a.pid))
        #expect(before.allSatisfy { $0.heartbeatAgeMicros >= 0 && $0.heartbeatAgeMicros < 4_000_000 })
        let survivor = try Client(b)
        try survivor.subscribe(["work"], concurrency: 10)
        a.kill()
        let killedAt = monotonic()
        var again = Set<String>()
        while again.count < 5, let t = try survivor.nextDelivery(timeout: 15) {
            #expect(t.attempt == 2)
            #expect(t.lastError?.contains("daemon lost") == true)
            again.insert(t.id)
            #expect(try survivor.ack(t) == .ok)
        }
        let took = monotonic() - killedAt
        #expect(again == held)
        // The default heartbeat timeout is 4 s: its end, one heartbeat interval and one poll.
        #expect(took < 6.0, "took \(took) s")
        // The lost daemon is gone from the list.
        #expect(try daemons().map(\.name) == ["b"])
    }

    @Test func theDatabaseRestartingUnderLoadLosesNoAcknowledgedAdd() throws {
        let server = try PostgresTestInstance()
        let schema = try Schema()
        let a = try schema.daemon("a", connectionString: server.connectionString)
        let b = try schema.daemon("b", connectionString: server.connectionString)
        let scheduler = try Client(a)
        var acknowledged: [String] = []
        var unavailable = 0
        for i in 0..<60 {
            if i == 20 { try server.restart() }
            let reply = try scheduler.call(.addTasks(AddTasks(tasks: [task("r\(i)", callback: "later",
                                                                              runAt: nowMicros() + 3_600_000_000)])))
            switch reply {
            case .added: acknowledged.append("r\(i)")
            case .error(let error):
                #expect(error.code == .storeUnavailable, "\(error)")
                unavailable += 1
            default: Issue.record("unexpected reply \(reply)")
            }
            pause(0.02)
        }
        // Both daemons reconnected by themselves: every acknowledged add is visible through the other one.
        let reader = try Client(b)
        var found: [TaskRecord] = []
        let deadline = monotonic() + 20
        repeat {
            if case .tasks(let records) = try reader.call(.fetchTasks(.ids(acknowledged))) { found = records }
            if found.count == acknowledged.count { break }
            pause(0.2)
        } while monotonic() < deadline
        #expect(found.count == acknowledged.count, "acknowledged \(acknowledged.count), found \(found.count)")
        #expect(acknowledged.count >= 40, "only \(acknowledged.count) adds succeeded (\(unavailable) unavailable)")
        #expect(try a.stop() == 0)
        #expect(try b.stop() == 0)
    }

    @Test func aDaemonBehindATransactionPoolerServesByPollingAndSaysSo() throws {
        let schema = try Schema()
        let pooler = try PgBouncerTestInstance(inFrontOf: schema.connectionString)
        let direct = try schema.daemon("direct")
        let pooled = try schema.daemon("pooled", connectionString: pooler.connectionString,
                                       ["--datastore-pooler", "transaction", "--shared-poll", "100ms"])
        let viaDirect = try Client(direct)
        let viaPooler = try Client(pooled)
        try viaPooler.subscribe(["p"], concurrency: 8)
        try viaDirect.subscribe(["d"], concurrency: 8)
        pause(0.3)
        for round in 0..<5 {
            // Added on the direct daemon, due at once: the pooled one hears no notification, its poll finds it.
            let sent = nowMicros()
            try viaDirect.add([task("to-pooled-\(round)", callback: "p")])
            let delivered = try #require(try viaPooler.nextDelivery(timeout: 10))
            #expect(delivered.id == "to-pooled-\(round)")
            #expect(nowMicros() - sent < 1_000_000, "took \(nowMicros() - sent) µs")
            #expect(try viaPooler.ack(delivered) == .ok)
            // Added through the pooler: its commit's NOTIFY still reaches the direct daemon.
            try viaPooler.add([task("to-direct-\(round)", callback: "d")])
            let other = try #require(try viaDirect.nextDelivery(timeout: 10))
            #expect(other.id == "to-direct-\(round)")
            #expect(try viaDirect.ack(other) == .ok)
        }
        // Known ahead: claimed ahead through the pooler and pushed on time.
        let due = nowMicros() + 1_000_000
        try viaDirect.add([task("ahead", callback: "p", runAt: due)])
        let ahead = try #require(try viaPooler.nextDelivery(timeout: 10))
        #expect(ahead.id == "ahead" && nowMicros() >= due && nowMicros() - due < 200_000)
        #expect(try viaPooler.ack(ahead) == .ok)

        // The name is claimed through the registry: a second "pooled" is refused while the first beats.
        let duplicate = try runDaemonToExit([
            "--socket", "/tmp/taskshed-dup-\(getpid()).sock", "--datastore", "postgresql:" + pooler.connectionString,
            "--datastore-pooler", "transaction", "--schema", schema.name, "--daemon-name", "pooled",
        ])
        #expect(duplicate.code != 0)
        #expect(duplicate.output.contains("another taskshedd named \"pooled\""), "\(duplicate.output)")

        let log = pooled.log()
        #expect(log.contains("behind a transaction-mode connection pooler: not listening"), "\(log)")
        #expect(!log.contains("prepared statement"), "\(log)")
        #expect(!log.contains("error"), "\(log)")
        // The direct daemon's probes come back: it never says notifications do not arrive.
        #expect(!direct.log().contains("do not reach"), "\(direct.log())")
        #expect(try pooled.stop() == 0)
        #expect(try direct.stop() == 0)
    }

    @Test func aDaemonWhoseNotificationsDoNotComeBackSaysSo() throws {
        // Without --datastore-pooler, LISTEN through a transaction-mode pooler "works" but hears nothing; the
        // delivery probe notices. (Its prepared statements fail there too, which the log names; this test is
        // about the probe.)
        let schema = try Schema()
        let pooler = try PgBouncerTestInstance(inFrontOf: schema.connectionString)
        let unaware = try schema.daemon("unaware", connectionString: pooler.connectionString,
                                        ["--heartbeat-timeout", "1s"])
        var log = ""
        let deadline = monotonic() + 15
        repeat {
            pause(0.2)
            log = unaware.log()
        } while !log.contains("do not reach this daemon's LISTEN connection") && monotonic() < deadline
        #expect(log.contains("do not reach this daemon's LISTEN connection"), "\(log)")
        #expect(log.contains("--datastore-pooler transaction"), "the prepared-statement error names the option: \(log)")
        unaware.kill()
    }

    @Test func aBadDatastoreIsRefusedAtStartNamingTheOption() throws {
        for (value, expected) in [("mysql://x", "is not a datastore"), ("lmdb:", "needs a directory"),
                                  ("postgresql:", "keyword/value")] {
            let run = try runDaemonToExit(["--socket", "/tmp/taskshed-unused.sock", "--datastore", value])
            #expect(run.code == 2, "\(value): exit \(run.code)")
            #expect(run.output.contains("--datastore") && run.output.contains(expected), "\(value): \(run.output)")
        }
    }
}
