import Dispatch
import Glibc
import Synchronization
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// A real taskshedd given both hosts of a PostgreSQL primary and its synchronous standby
/// (`PostgresReplicaPair`, `target_session_attrs=read-write`), while the primary stops at once
/// (`pg_ctl stop -m immediate`) and the standby is promoted: the daemon keeps its clients connected, answers
/// STORE_UNAVAILABLE while no host takes writes, finds the new primary by itself, and loses no acknowledged add.
@Suite struct SharedDatastoreFailoverTests {
    /// How long after the standby's promotion the daemon may take to serve writes again. It retries at the next
    /// request, so in practice it takes one request; its background retries back off to at most 5 s.
    static let reconnectBound = 15.0

    /// Waits up to `reconnectBound` until daemon `a` has sent a heartbeat later than `micros` (wall clock) to the
    /// server of `connectionString`.
    static func heartbeatArrives(on connectionString: String, after micros: Int64) -> Bool {
        let beat = "SELECT count(*) FROM failover.daemons WHERE name = 'a' AND heartbeat_at > \(micros)"
        let deadline = monotonic() + reconnectBound
        while monotonic() < deadline {
            if (try? PostgresTestServer.psql(connectionString, beat)) == "1" { return true }
            pause(0.05)
        }
        return false
    }

    static func daemon(_ pair: PostgresReplicaPair) throws -> DaemonProcess {
        try DaemonProcess(arguments: ["--datastore", "postgresql:" + pair.connectionString, "--schema", "failover",
                                      "--daemon-name", "a"])
    }

    @Test func aDaemonFollowsAFailoverToThePromotedStandbyLosingNoAcknowledgedAdd() throws {
        let pair = try PostgresReplicaPair()
        let daemon = try Self.daemon(pair)
        let adder = try ContinuousAdder(daemon)
        adder.start()
        defer { adder.stop() }
        #expect(adder.wait(timeout: 10) { $0.count { $0.reply == .acknowledged } >= 50 }, "\(adder.summary())")

        pair.stopPrimary()
        let stopped = monotonic()
        // The outage: no host takes writes (the standby is read-only until promoted). It lasts at least a second,
        // long enough for the daemon's and its background session's retries to back off.
        #expect(adder.wait(timeout: 10) { outcomes in
            monotonic() - stopped >= 1 && outcomes.count { $0.sentAt > stopped && $0.reply == .unavailable } >= 5
        }, "\(adder.summary())")

        let promoting = monotonic()
        try pair.promoteStandby()
        let promoted = monotonic()
        let promotedMicros = nowMicros()
        let reconnected = adder.wait(timeout: Self.reconnectBound) { outcomes in
            outcomes.count { $0.sentAt > promoted && $0.reply == .acknowledged } >= 20
        }
        adder.stop()
        let outcomes = adder.outcomes()
        #expect(reconnected, "adds did not succeed again within \(Self.reconnectBound) s: \(adder.summary())")

        // Every reply was an acknowledgement or STORE_UNAVAILABLE: never another error, never a lost connection.
        let unexpected = outcomes.filter {
            if case .other = $0.reply { return true }
            if case .disconnected = $0.reply { return true }
            return false
        }
        #expect(unexpected.isEmpty, "\(unexpected.prefix(5))")
        let refused = outcomes.filter { $0.reply == .unavailable }
        #expect(!refused.isEmpty, "no add saw the outage")
        // Nothing was written while no host took writes: in particular not to the read-only standby.
        let duringOutage = outcomes.filter { $0.sentAt > stopped && $0.repliedAt < promoting }
        let writtenDuringOutage = duringOutage.filter { $0.reply != .unavailable }
        #expect(writtenDuringOutage.isEmpty, "\(writtenDuringOutage)")
        let firstAfter = outcomes.first { $0.repliedAt > promoted && $0.reply == .acknowledged }
        let reconnectSeconds = (firstAfter?.repliedAt ?? .infinity) - promoted
        #expect(reconnectSeconds < Self.reconnectBound,
                "the first acknowledged add came \(reconnectSeconds) s after the promotion")

        // The adder's connection stayed open through all of it, and reads every acknowledged add back from the
        // new primary through the daemon.
        let acknowledged = outcomes.filter { $0.reply == .acknowledged }.map(\.id)
        var found: [String] = []
        for start in stride(from: 0, to: acknowledged.count, by: 100) {
            let ids = Array(acknowledged[start..<min(start + 100, acknowledged.count)])
            found += try adder.client.fetch(ids).map(\.id)
        }
        #expect(found == acknowledged, "acknowledged \(acknowledged.count), found \(found.count)")
        // And the rows are in the promoted standby, read past the daemon.
        let rows = Set(try PostgresTestServer.psql(pair.standbyConnectionString, "SELECT id FROM failover.tasks")
            .split(separator: "\n").map(String.init))
        let missing = Set(acknowledged).subtracting(rows)
        #expect(missing.isEmpty, "\(missing.count) missing, such as \(missing.sorted().prefix(10))")

        // The background session moved too: this daemon's heartbeats reach the new primary.
        #expect(Self.heartbeatArrives(on: pair.standbyConnectionString, after: promotedMicros),
                "no heartbeat on the new primary within \(Self.reconnectBound) s; log:\n\(daemon.log())")
        #expect(try daemon.stop() == 0)
    }

    /// A primary turned read-only under the daemon (SQLSTATE 25006 on its open connections, as when a failover
    /// tool fences it) sends the daemon's store jobs and its background session to the promoted standby.
    @Test func aDaemonOnAPrimaryTurnedReadOnlyMovesToThePromotedStandby() throws {
        let pair = try PostgresReplicaPair()
        let daemon = try Self.daemon(pair)
        let scheduler = try Client(daemon)
        try scheduler.add([task("before", callback: "later", runAt: nowMicros() + 3_600_000_000)])

        try pair.makePrimaryReadOnly()
        // No host takes writes: the fenced primary refuses them, the standby is in recovery.
        expectError(try scheduler.call(.addTasks(AddTasks(tasks: [task("fenced", callback: "later")]))),
                    .storeUnavailable)

        try pair.promoteStandby()
        let promoted = monotonic()
        let promotedMicros = nowMicros()
        var accepted = false
        var replies: [Message] = []
        while !accepted && monotonic() - promoted < Self.reconnectBound {
            let reply = try scheduler.call(.addTasks(AddTasks(tasks: [
                task("after", callback: "later", runAt: nowMicros() + 3_600_000_000),
            ])))
            if case .added = reply { accepted = true } else { replies.append(reply); pause(0.05) }
        }
        #expect(accepted, "\(replies.prefix(3))")
        #expect(replies.allSatisfy {
            if case .error(let error) = $0 { return error.code == .storeUnavailable }
            return false
        }, "\(replies.prefix(3))")
        let count = "SELECT count(*) FROM failover.tasks WHERE id = 'after'"
        #expect(try PostgresTestServer.psql(pair.standbyConnectionString, count) == "1")
        #expect(try PostgresTestServer.psql(pair.primaryConnectionString, count) == "0")
        #expect(try scheduler.fetch(["before", "fenced", "after"]).map(\.id) == ["before", "after"])
        #expect(Self.heartbeatArrives(on: pair.standbyConnectionString, after: promotedMicros),
                "no heartbeat on the new primary within \(Self.reconnectBound) s; log:\n\(daemon.log())")
        #expect(try daemon.stop() == 0)
    }

    @Test func dueTasksAddedBeforeAFailoverAreDeliveredAfterIt() throws {
        let pair = try PostgresReplicaPair()
        let daemon = try Self.daemon(pair)
        let worker = try Client(daemon)
        try worker.subscribe(["timed"], concurrency: 4)
        let scheduler = try Client(daemon)
        // One task due now for a worker that comes after the failover; one falling due during the outage, for a
        // worker connected throughout (claimed 50 ms ahead of its due time: after the primary stopped).
        try scheduler.add([task("waiting", callback: "idle"),
                           task("timed", callback: "timed", runAt: nowMicros() + 800_000)])
        pair.stopPrimary()
        pause(1.5)
        try pair.promoteStandby()

        let timed = try #require(try worker.nextDelivery(timeout: Self.reconnectBound), "log:\n\(daemon.log())")
        #expect(timed.id == "timed" && timed.attempt == 1)
        #expect(try worker.ack(timed) == .ok)
        let late = try Client(daemon)
        try late.subscribe(["idle"], concurrency: 4)
        let waiting = try #require(try late.nextDelivery(timeout: Self.reconnectBound), "log:\n\(daemon.log())")
        #expect(waiting.id == "waiting" && waiting.attempt == 1)
        #expect(try late.ack(waiting) == .ok)
        // Each once, and settled in the new primary.
        #expect(try worker.nextDelivery(timeout: 0.5) == nil)
        #expect(try late.nextDelivery(timeout: 0.1) == nil)
        #expect(try scheduler.fetch(["timed", "waiting"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }
}

/// Adds one task at a time, as fast as the daemon answers, on a connection and a thread of its own, until
/// stopped; keeps every reply with its times.
final class ContinuousAdder: Sendable {
    /// What the daemon answered an add.
    enum Reply: Sendable, Equatable {
        case acknowledged
        /// ERROR STORE_UNAVAILABLE.
        case unavailable
        /// Any other reply (an error of another code).
        case other(String)
        /// The connection failed or closed (the adder stops then).
        case disconnected(String)
    }

    /// One add.
    struct Outcome: Sendable, CustomStringConvertible {
        var id: String
        /// Monotonic seconds.
        var sentAt: Double
        var repliedAt: Double
        var reply: Reply

        var description: String { "\(id) \(reply) after \(repliedAt - sentAt) s" }
    }

    /// The adder's connection; the thread's alone until `stop()` returns, the caller's after.
    let client: Client
    private let log = Mutex<[Outcome]>([])
    private let stopping = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(_ daemon: DaemonProcess) throws {
        client = try Client(daemon)
    }

    /// Starts adding on a thread of its own.
    func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        DispatchQueue.global().async { [self] in
            defer { finished.signal() }
            var number = 0
            while !stopping.load(ordering: .relaxed) {
                let id = "f\(number)"
                number += 1
                let sentAt = monotonic()
                let reply: Reply
                do {
                    let message = try client.call(.addTasks(AddTasks(tasks: [
                        task(id, callback: "later", runAt: nowMicros() + 3_600_000_000),
                    ])))
                    switch message {
                    case .added: reply = .acknowledged
                    case .error(let error) where error.code == .storeUnavailable: reply = .unavailable
                    default: reply = .other("\(message)")
                    }
                } catch {
                    reply = .disconnected("\(error)")
                }
                log.withLock { $0.append(Outcome(id: id, sentAt: sentAt, repliedAt: monotonic(), reply: reply)) }
                if case .disconnected = reply { return }
                pause(0.005)
            }
        }
    }

    /// Stops the thread and waits for it. Harmless when repeated.
    func stop() {
        guard started.load(ordering: .relaxed), !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }

    /// Every add so far, in order.
    func outcomes() -> [Outcome] {
        log.withLock { $0 }
    }

    /// Waits up to `timeout` seconds until `condition` holds for the adds so far.
    /// - Returns: Whether it held.
    func wait(timeout: Double, until condition: ([Outcome]) -> Bool) -> Bool {
        let deadline = monotonic() + timeout
        while true {
            if condition(outcomes()) { return true }
            if monotonic() >= deadline { return false }
            pause(0.01)
        }
    }

    /// Counts of the replies so far, for failure messages.
    func summary() -> String {
        let all = outcomes()
        let acknowledged = all.count { $0.reply == .acknowledged }
        let unavailable = all.count { $0.reply == .unavailable }
        return "\(all.count) adds: \(acknowledged) acknowledged, \(unavailable) STORE_UNAVAILABLE, "
            + "last: \(all.last.map(String.init(describing:)) ?? "none")"
    }
}
