import Glibc
import Testing
import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore
import TaskShedTestSupport

/// A store given both hosts of a primary and its synchronous standby (`PostgresReplicaPair`) with
/// `target_session_attrs=read-write`: it writes only where writes are taken, fails with the retriable
/// `storeUnavailable` while no host takes them, and follows the promotion of the standby by itself.
@Suite("PostgreSQL store failover")
struct PostgresFailoverStoreTests {
    /// How long a write may keep failing after the standby's promotion (it should not fail at all: the
    /// store reconnects at its next call, and a promoted standby takes writes at once).
    static let reconnectBound = 15.0

    static func open(_ pair: PostgresReplicaPair) throws -> PostgresTaskStore {
        try PostgresTaskStore(options: PostgresStoreOptions(connectionString: pair.connectionString,
                                                            schema: "failover", daemonName: "a"),
                              random: SeededRandom(seed: 1))
    }

    /// The number of tasks with `id` in the schema, read with psql from one server.
    static func count(_ id: String, on connectionString: String) throws -> String {
        try PostgresTestServer.psql(connectionString, "SELECT count(*) FROM failover.tasks WHERE id = '\(id)'")
    }

    /// Adds `id` again and again until it succeeds or `reconnectBound` passes.
    /// - Returns: How long it took in seconds, and the errors of the failed tries.
    static func addUntilAccepted(_ store: PostgresTaskStore, _ id: String) -> (seconds: Double, errors: [StoreError]) {
        let start = monotonicSeconds()
        var errors: [StoreError] = []
        while monotonicSeconds() - start < reconnectBound {
            do {
                _ = try store.add([spec(id)], now: t0)
                break
            } catch {
                errors.append(error)
                usleep(50_000)
            }
        }
        return (monotonicSeconds() - start, errors)
    }

    @Test func aStoreOnBothHostsWritesToThePromotedStandbyAfterThePrimaryStops() throws {
        let pair = try PostgresReplicaPair()
        let store = try Self.open(pair)
        defer { store.close() }
        _ = try store.add([spec("before")], now: t0)
        // Synchronous replication: the acknowledged commit is on the standby already.
        #expect(try Self.count("before", on: pair.standbyConnectionString) == "1")

        pair.stopPrimary()
        // The first statement on the store's idle connection fails in libpq with no SQLSTATE while libpq still
        // says CONNECTION_OK (the server's shutdown warning was read, not yet the end of the stream): a lost
        // connection all the same. Then the standby is up but read-only: neither a write nor a read may use it.
        let refused = storeError { _ = try store.add([spec("during")], now: t0) }
        #expect(refused?.code == .storeUnavailable, "\(String(describing: refused))")
        #expect(refused?.code.isRetriable == true)
        let unread = storeError { _ = try store.fetch(.ids(["before"])) }
        #expect(unread?.code == .storeUnavailable, "\(String(describing: unread))")

        try pair.promoteStandby()
        let (took, errors) = Self.addUntilAccepted(store, "after")
        #expect(took < Self.reconnectBound, "no write succeeded within \(took) s: \(errors)")
        #expect(errors.allSatisfy { $0.code == .storeUnavailable }, "\(errors)")
        #expect(try store.fetch(.ids(["before", "during", "after"])).map(\.id) == ["before", "after"])
        #expect(try Self.count("after", on: pair.standbyConnectionString) == "1")
    }

    /// A server that turned read-only under an open connection (SQLSTATE 25006: a primary fenced with
    /// `default_transaction_read_only` before a switchover, as failover tools do) makes the store reconnect,
    /// which `target_session_attrs=read-write` sends to the host that takes writes, instead of failing every
    /// write on the old connection with an internal error.
    @Test func aPrimaryTurnedReadOnlySendsTheStoreToTheHostThatTakesWrites() throws {
        let pair = try PostgresReplicaPair()
        let store = try Self.open(pair)
        defer { store.close() }
        _ = try store.add([spec("before")], now: t0)

        try pair.makePrimaryReadOnly()
        // No host takes writes now: the fenced primary refuses them, the standby is in recovery.
        let refused = storeError { _ = try store.add([spec("fenced")], now: t0) }
        #expect(refused?.code == .storeUnavailable, "\(String(describing: refused))")
        #expect(refused?.message.contains("takes no writes") == true, "\(String(describing: refused))")

        try pair.promoteStandby()
        // Both servers run; the write goes to the promoted standby, the one that takes writes.
        let (took, errors) = Self.addUntilAccepted(store, "after")
        #expect(took < Self.reconnectBound, "no write succeeded within \(took) s: \(errors)")
        #expect(errors.allSatisfy { $0.code == .storeUnavailable }, "\(errors)")
        #expect(try Self.count("after", on: pair.standbyConnectionString) == "1")
        #expect(try Self.count("after", on: pair.primaryConnectionString) == "0")
        #expect(try Self.count("fenced", on: pair.standbyConnectionString) == "0")
    }
}

/// Monotonic seconds, for the bound on reconnecting.
private func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
