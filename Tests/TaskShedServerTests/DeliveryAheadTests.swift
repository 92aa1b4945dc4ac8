import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// SUBSCRIBE_AHEAD (protocol version 3): tasks written before their due time, revoked when they change before
/// it, given back uncounted when the worker leaves before it. A long dispatch lead and lead ahead make the
/// "sent, not yet due" state last long enough for a test to act in it.
@Suite struct DeliveryAheadTests {
    /// A worker connection that negotiated version 3 and subscribed ahead.
    static func aheadWorker(_ daemon: DaemonProcess, _ callbacks: [String], concurrency: UInt32 = 10,
                            aheadMicros: Int64) throws -> Client {
        let worker = try Client(path: daemon.socketPath, version: 3)
        let id = worker.ids.id()
        worker.subscribeID = id
        try worker.raw.send(Frame(requestID: id, message: .subscribeAhead(
            Subscribe(callbacks: callbacks, concurrency: concurrency), aheadMicros: aheadMicros)))
        var skipped: [Frame] = []
        let reply = try worker.raw.receive(requestID: id, timeoutSeconds: 15, skipped: &skipped)
        guard case .subscribed = reply.message else { throw TestSupportError("SUBSCRIBE_AHEAD answered \(reply.message)") }
        return worker
    }

    /// The next frame on `connection` within `seconds`, or `nil` when none arrives by then.
    static func frame(on connection: RawConnection, within seconds: Double) throws -> Frame? {
        do {
            return try connection.receive(timeoutSeconds: seconds)
        } catch let error as TestSupportError where error.message.hasPrefix("no frame") {
            return nil
        }
    }

    @Test func aTaskIsWrittenAheadOfItsDueTimeByTheLeadAskedFor() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Self.aheadWorker(daemon, ["soon"], aheadMicros: 400_000)
        let due = nowMicros() + 900_000
        try scheduler.add([task("a1", callback: "soon", runAt: due)])
        guard let delivery = try worker.nextDelivery(timeout: 15) else {
            Issue.record("no delivery")
            return
        }
        let arrived = nowMicros()
        #expect(arrived >= due - 400_000, "written \(due - arrived) µs before its due time, more than the lead")
        #expect(arrived < due, "not written ahead: arrived \(arrived - due) µs after its due time")
        #expect(delivery.runAt == due)
        #expect(delivery.state == .leased)
        #expect(delivery.lastRunAt == due, "a task sent ahead runs at its due time")
        #expect(try worker.ack(delivery) == .ok)
        #expect(try scheduler.fetch(["a1"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test func aTaskChangedBeforeItsDueTimeIsRevokedBeforeTheChangeIsAnswered() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Self.aheadWorker(daemon, ["change"], aheadMicros: 1_000_000)
        let due = nowMicros() + 2_500_000
        let ids = ["gone", "held", "moved", "replaced", "kept"]
        try scheduler.add(ids.map { task($0, callback: "change", runAt: due) })
        var written: [String: TaskRecord] = [:]
        while written.count < ids.count, let delivery = try worker.nextDelivery(timeout: 5) {
            written[delivery.id] = delivery
        }
        #expect(Set(written.keys) == Set(ids))
        #expect(nowMicros() < due - 200_000, "the machine was too slow for the test to change tasks before their due time")

        let changes: [(String, Message)] = [
            ("gone", .removeTasks(.ids(["gone"]))),
            ("held", .pauseTasks(.ids(["held"]))),
            ("moved", .updateRunTimes([RunTimeUpdate(id: "moved", runAt: due + 3_600_000_000)])),
            ("replaced", .addTasks(AddTasks(onConflict: .replace, tasks: [task("replaced", callback: "change",
                                                                              runAt: due + 3_600_000_000)]))),
        ]
        for (id, change) in changes {
            _ = try scheduler.call(change)
            // The REVOKE was written before the reply: it is in the worker's socket already.
            let revoke = try Self.frame(on: worker.raw, within: 0.05)
            guard let revoke, case .revoke(let lease) = revoke.message else {
                Issue.record("\(id): no REVOKE before the reply to the change, got \(String(describing: revoke))")
                continue
            }
            #expect(revoke.requestID == worker.subscribeID)
            #expect(lease == LeaseRef(id: id, attempt: written[id]?.attempt ?? 0))
        }
        // Their leases ended: the worker's answers for them are LEASE_LOST; the unchanged one is its own.
        for id in ["gone", "held", "moved", "replaced"] {
            guard let record = written[id] else { continue }
            expectError(try worker.ack(record), .leaseLost)
        }
        let held = try scheduler.fetch(["held"]).first
        #expect(held?.state == .scheduled && held?.paused == true)
        #expect(held?.attempt == 0, "a revoked task's attempt was counted")
        #expect(try scheduler.fetch(["moved"]).first?.state == .scheduled)
        #expect(try scheduler.fetch(["moved"]).first?.attempt == 0)
        #expect(try scheduler.fetch(["replaced"]).first?.state == .scheduled)
        #expect(try scheduler.fetch(["gone"]).isEmpty)

        // Nothing else is revoked, also once the due time has passed.
        while nowMicros() < due + 100_000 { pause(0.02) }
        #expect(try scheduler.affected(.removeTasks(.ids(["kept"]))) == 1)
        #expect(try Self.frame(on: worker.raw, within: 0.3) == nil, "a change after the due time was revoked")
        #expect(try worker.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func tasksOfAWorkerThatLeavesBeforeTheirDueTimeGoElsewhereUncounted() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let leaver = try Self.aheadWorker(daemon, ["hop"], aheadMicros: 1_000_000)
        try scheduler.add([task("early", callback: "hop", runAt: nowMicros() + 1_500_000),
                           task("late", callback: "hop", runAt: nowMicros() + 200_000)])
        var got: [String: TaskRecord] = [:]
        while got.count < 2, let delivery = try leaver.nextDelivery(timeout: 5) { got[delivery.id] = delivery }
        #expect(Set(got.keys) == ["early", "late"])
        // "late" falls due while the worker still holds it; "early" does not.
        while nowMicros() < (got["late"]?.runAt ?? 0) + 100_000 { pause(0.02) }
        leaver.raw.close()
        let stayer = try Client(daemon)
        try stayer.subscribe(["hop"], concurrency: 5)
        var again: [String: TaskRecord] = [:]
        while again.count < 2, let delivery = try stayer.nextDelivery(timeout: 15) { again[delivery.id] = delivery }
        #expect(again["early"]?.attempt == 1, "a task its worker could not have started was counted")
        #expect(again["early"]?.lastError == nil)
        #expect(again["late"]?.attempt == 2, "a task due while its worker held it ends as a failed attempt")
        #expect(again["late"]?.lastError == "worker disconnected")
        #expect(try daemon.stop() == 0)
    }

    @Test func aReleaseBeforeTheDueTimeGivesTheTaskBack() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Self.aheadWorker(daemon, ["back"], aheadMicros: 1_000_000)
        try scheduler.add([task("r1", callback: "back", runAt: nowMicros() + 1_200_000)])
        guard let delivery = try worker.nextDelivery(timeout: 5) else {
            Issue.record("no delivery")
            return
        }
        // Unsubscribed first: a release while subscribed would have the task claimed for this worker again.
        #expect(try worker.call(.unsubscribe) == .ok)
        #expect(try worker.call(.release(LeaseRef(id: delivery.id, attempt: delivery.attempt))) == .ok)
        let record = try scheduler.fetch(["r1"]).first
        #expect(record?.state == .scheduled)
        #expect(record?.attempt == 0)
        #expect(record?.runAt == delivery.runAt, "a task given back before its due time keeps its due time")
        #expect(try daemon.stop() == 0)
    }

    @Test func aLeadOutsideItsRangeIsRefusedNamingTheField() throws {
        let daemon = try DaemonProcess()
        let worker = try Client(path: daemon.socketPath, version: 3)
        for ahead: Int64 in [0, -1, 1_000_001] {
            let reply = try worker.call(.subscribeAhead(Subscribe(callbacks: ["x"], concurrency: 1), aheadMicros: ahead))
            expectError(reply, .invalidArgument, field: "ahead_us")
        }
        let plain = try worker.call(.subscribeAhead(Subscribe(callbacks: ["x"], concurrency: 0), aheadMicros: 5_000))
        expectError(plain, .invalidArgument, field: "concurrency")
        #expect(try worker.call(.subscribeAhead(Subscribe(callbacks: ["x"], concurrency: 1), aheadMicros: 1)) == .subscribed(
            Subscribed(leaseMicros: 30_000_000)))
        let second = try worker.call(.subscribeAhead(Subscribe(callbacks: ["y"], concurrency: 1), aheadMicros: 5_000))
        expectError(second, .invalidArgument)
        #expect(try daemon.stop() == 0)
    }
}
