import Foundation
import Testing
import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore
import TaskShedTestSupport

/// What only a shared store does: several daemons on one schema, daemon identity, migrations, and a server that
/// goes away. (Behaviour both stores share is tested once for both: `behaviourKinds`.)
@Suite("PostgreSQL store")
struct PostgresStoreTests {
    /// A fresh schema on the suite's server, dropped at the end.
    final class Schema: Sendable {
        let connectionString: String
        let name: String

        init() throws {
            connectionString = try PostgresTestServer.sharedConnectionString()
            name = PostgresTestServer.uniqueSchemaName("pgstore")
        }

        deinit { _ = try? PostgresTestServer.psql(connectionString, "DROP SCHEMA IF EXISTS \(name) CASCADE") }

        func options(daemon: String, retry: RetryPolicy = RetryPolicy(minJitter: 1.0)) -> PostgresStoreOptions {
            PostgresStoreOptions(connectionString: connectionString, schema: name, daemonName: daemon, retry: retry)
        }

        func open(_ daemon: String, seed: UInt64 = 1) throws -> PostgresTaskStore {
            try PostgresTaskStore(options: options(daemon: daemon), random: SeededRandom(seed: seed))
        }
    }

    @Test func twoDaemonsClaimDisjointTasksAndSeeEachOthersAdds() throws {
        let schema = try Schema()
        let a = try schema.open("a")
        let b = try schema.open("b", seed: 2)
        defer { a.close(); b.close() }
        _ = try a.add((0..<50).map { spec("t\($0)", runAt: t0 + Int64($0)) }, now: t0)
        let fromB = try b.claim(callbacks: ["cb"], max: 20, holder: 1, leaseDeadline: t0 + 60 * second, now: t0 + 100)
        let fromA = try a.claim(callbacks: ["cb"], max: 100, holder: 1, leaseDeadline: t0 + 60 * second, now: t0 + 100)
        #expect(fromB.map(\.id) == (0..<20).map { "t\($0)" })
        #expect(fromA.map(\.id) == (20..<50).map { "t\($0)" })
        // Each daemon settles only its own leases, even with the same connection number.
        #expect(storeError { _ = try a.ack(id: "t0", attempt: 1, holder: 1, now: t0 + 200) }?.code == .leaseLost)
        #expect(try b.ack(id: "t0", attempt: 1, holder: 1, now: t0 + 200) == nil)
        #expect(try a.fetch(.ids(["t0"])).isEmpty)
        // Expiry and holder release see only this daemon's leases; counts are the whole cluster's.
        #expect(try a.expireLeases(now: t0 + 120 * second).count == 30)
        #expect(try a.stats(now: t0 + 120 * second).leased == 19)
        #expect(try a.earliestLeaseDeadline() == nil)
        #expect(try b.earliestLeaseDeadline() == t0 + 60 * second)
        #expect(try a.releaseHolder(1, reason: "worker disconnected", now: t0).isEmpty)
        #expect(try b.releaseHolder(1, reason: "worker disconnected", now: t0).count == 19)
    }

    /// The server's store jobs are generic over `TaskStoreWriteBatch`: a group commit's acks and adds must reach
    /// the PostgreSQL batch's own bulk versions (one statement each) from there, not the protocol's one-by-one
    /// default.
    @Test func groupCommitsAcksAndAddsTakeOneStatementEachThroughGenericCode() throws {
        func acks<B: TaskStoreWriteBatch>(_ batch: inout B, _ leases: [LeaseAck]) -> [Result<TaskRecord?, StoreError>] {
            batch.ack(leases, now: t0 + 10)
        }
        func adds<B: TaskStoreWriteBatch>(_ batch: inout B, _ requests: [AddRequest]) -> [Result<[AddResult], StoreError>] {
            batch.add(requests: requests, now: t0)
        }
        let schema = try Schema()
        let store = try schema.open("a")
        defer { store.close() }
        let requests = (0..<50).map { AddRequest(specs: [spec("g\($0)")], onConflict: .replace) }
        var before = store.roundTrips
        let added = try store.write(isolatingRequests: true) { (batch: inout PostgresWriteBatch) in adds(&batch, requests) }
        #expect(added.allSatisfy { (try? $0.get())?.first?.outcome == .inserted })
        // BEGIN with the one INSERT in its round trip, then COMMIT (and nothing per request).
        #expect(store.roundTrips - before == 2, "\(store.roundTrips - before) round trips for 50 adds")

        let leased = try store.claim(callbacks: ["cb"], max: 50, holder: 7, leaseDeadline: t0 + 60 * second, now: t0)
        #expect(leased.count == 50)
        before = store.roundTrips
        let leases = leased.map { LeaseAck(id: $0.id, attempt: $0.attempt, holder: 7) }
        let acked = try store.write(isolatingRequests: true) { (batch: inout PostgresWriteBatch) in acks(&batch, leases) }
        #expect(acked.allSatisfy { (try? $0.get()) == .some(nil) })
        #expect(store.roundTrips - before == 2, "\(store.roundTrips - before) round trips for 50 acks")
        #expect(try store.stats(now: t0).leased == 0)
    }

    /// Generated ids go in with a plain INSERT under a savepoint; a collision rolls that back and draws again
    /// through the statement that tells which ids existed, inside the same transaction.
    @Test func generatedIdsCollidingWithExistingTasksAreDrawnAgain() throws {
        let schema = try Schema()
        var first: [String] = []
        do {
            let store = try schema.open("a", seed: 42)
            first = try store.add(Array(repeating: spec(nil, callback: "a"), count: 3), now: t0).map(\.id)
            store.close()
        }
        // Same seed and time: the same ids are drawn again, found taken, and drawn anew.
        let store = try schema.open("a", seed: 42)
        defer { store.close() }
        let second = try store.add([spec("named", callback: "b")] + Array(repeating: spec(nil, callback: "b"), count: 3),
                                   now: t0)
        #expect(second.allSatisfy { $0.outcome == .inserted })
        #expect(Set(second.dropFirst().map(\.id)).isDisjoint(with: first))
        #expect(Set(second.map(\.id)).count == 4)
        for id in first { #expect(try store.fetch(.ids([id])).first?.callback == "a") }
        #expect(try store.stats(now: t0).due == 7)
    }

    @Test func concurrentClaimsFromManyDaemonsNeverShareATask() throws {
        let schema = try Schema()
        let stores = try (0..<4).map { try schema.open("d\($0)", seed: UInt64($0) + 1) }
        defer { for s in stores { s.close() } }
        _ = try stores[0].add((0..<2_000).map { spec(nil, runAt: t0 + Int64($0 % 97)) }, now: t0)
        let claimed = ClaimLog()
        DispatchQueue.concurrentPerform(iterations: stores.count) { i in
            while true {
                guard let batch = try? stores[i].claim(callbacks: ["cb"], max: 37, holder: UInt64(i),
                                                      leaseDeadline: t0 + 60 * second, now: t0 + 1_000),
                      !batch.isEmpty else { return }
                claimed.append(batch.map(\.id))
            }
        }
        #expect(claimed.ids.count == 2_000)
        #expect(Set(claimed.ids).count == 2_000)
    }

    @Test func reopeningADaemonVoidsItsPreviousLeasesOnly() throws {
        let schema = try Schema()
        var a = try schema.open("a")
        let b = try schema.open("b")
        defer { b.close() }
        _ = try a.add([spec("x", runAt: t0), spec("y", runAt: t0 + 1)], now: t0)
        _ = try a.claim(callbacks: ["cb"], max: 1, holder: 7, leaseDeadline: t0 + second, now: t0 + 10)
        _ = try b.claim(callbacks: ["cb"], max: 1, holder: 7, leaseDeadline: t0 + second, now: t0 + 10)
        a.close()
        a = try schema.open("a")
        defer { a.close() }
        #expect(a.leasesReleasedAtOpen == 1)
        let x = try #require(try a.fetch(.ids(["x"])).first)
        #expect(x.state == .scheduled && x.attempt == 0 && x.lastRunAt == nil && x.leaseDeadline == nil)
        #expect(try a.fetch(.ids(["y"])).first?.state == .leased)
    }

    @Test func aDaemonWithoutHeartbeatsLosesItsLeasesToTheNextHeartbeatOfAnother() throws {
        let schema = try Schema()
        let a = try schema.open("a")
        let b = try schema.open("b")
        defer { a.close(); b.close() }
        _ = try a.add([spec("x"), spec("y", schedule: .interval(micros: 60 * second))], now: t0)
        let leased = try a.claim(callbacks: ["cb"], max: 2, holder: 3, leaseDeadline: t0 + 600 * second, now: t0)
        #expect(leased.count == 2)
        // Both beat now: nobody is lost.
        #expect(try b.heartbeat(timeoutMicros: 200_000, now: t0).lostDaemons.isEmpty)
        #expect(try a.heartbeat(timeoutMicros: 200_000, now: t0).wasDeclaredLost == false)
        usleep(400_000)
        // A daemon that has not beaten for the timeout itself (back from an outage) does not judge the others.
        #expect(try b.heartbeat(timeoutMicros: 200_000, judgesOthers: false, now: t0 + second).lostDaemons.isEmpty)
        #expect(try b.fetch(.ids(["x"])).first?.state == .leased)
        // a stayed silent for longer than the timeout: b's next heartbeat ends a's leases as failed attempts.
        let beat = try b.heartbeat(timeoutMicros: 200_000, now: t0 + second)
        #expect(beat.lostDaemons == ["a"])
        #expect(Set(beat.rescued.map(\.id)) == ["x", "y"])
        let x = try #require(try b.fetch(.ids(["x"])).first)
        #expect(x.state == .scheduled && x.attempt == 1 && x.lastError?.contains("daemon lost") == true)
        // a's ack is refused; a learns at its next heartbeat that it was declared lost, and is back.
        #expect(storeError { _ = try a.ack(id: "x", attempt: 1, holder: 3, now: t0 + second) }?.code == .leaseLost)
        #expect(try a.heartbeat(timeoutMicros: 200_000, now: t0 + second).wasDeclaredLost)
        #expect(try b.heartbeat(timeoutMicros: 200_000, now: t0 + second).lostDaemons.isEmpty)
    }

    @Test func twoDaemonsWithOneNameAreRefused() throws {
        let schema = try Schema()
        let a = try schema.open("same")
        defer { a.close() }
        let error = storeError { _ = try schema.open("same") }
        #expect(error?.code == .internalError)
        #expect(error?.message.contains("another taskshedd named \"same\"") == true)
    }

    @Test func daemonsStartingAtOnceOnAnEmptyDatabaseMigrateOnce() throws {
        let schema = try Schema()
        let results = OpenLog()
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            do {
                let store = try schema.open("m\(i)")
                results.append(nil)
                store.close()
            } catch {
                results.append("\(error)")
            }
        }
        #expect(results.errors.isEmpty, "\(results.errors)")
        let applied = try PostgresTestServer.psql(schema.connectionString,
                                                  "SELECT count(*) FROM \(schema.name).schema_migrations")
        // One row per migration (1: tasks and daemons, 2: calendar schedules, 3: run history), each applied once.
        #expect(applied.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }

    @Test func aNameWithANulCharacterIsRefusedNamingTheField() throws {
        let schema = try Schema()
        let a = try schema.open("a")
        defer { a.close() }
        let error = storeError { _ = try a.add([spec("ok"), spec("a\u{0}b")], now: t0) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "tasks[1].id")
        #expect(try a.fetch(.ids(["ok"])).isEmpty)
        _ = try a.add([spec("ok")], now: t0)
    }

    @Test func aBadSchemaNameIsRefusedNamingTheField() {
        let options = PostgresStoreOptions(connectionString: "host=/nonexistent", schema: "Bad-Name")
        let error = storeError { _ = try PostgresTaskStore(options: options) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.field == "schema")
    }

    @Test func anUnreachableServerIsStoreUnavailable() {
        let options = PostgresStoreOptions(connectionString: "host=/nonexistent-taskshed port=1 connect_timeout=1")
        let error = storeError { _ = try PostgresTaskStore(options: options) }
        #expect(error?.code == .storeUnavailable)
        #expect(error?.code.isRetriable == true)
    }

    @Test func aTerminatedConnectionIsReopenedByTheNextCall() throws {
        let schema = try Schema()
        let a = try schema.open("a")
        defer { a.close() }
        _ = try a.add([spec("x")], now: t0)
        let pid = a.serverProcessID
        #expect(pid != 0)
        _ = try PostgresTestServer.psql(schema.connectionString, "SELECT pg_terminate_backend(\(pid))")
        // Reads retry once on a new connection; so do writes whose transaction had not begun.
        #expect(try a.fetch(.ids(["x"])).map(\.id) == ["x"])
        _ = try a.add([spec("y")], now: t0)
        #expect(try a.fetch(.ids(["x", "y"])).map(\.id) == ["x", "y"])
    }
}

/// Ids claimed by several threads.
private final class ClaimLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var ids: [String] = []
    func append(_ more: [String]) { lock.withLock { ids += more } }
}

/// Outcomes of several threads opening a store.
private final class OpenLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var errors: [String] = []
    func append(_ error: String?) { lock.withLock { if let error { errors.append(error) } } }
}
