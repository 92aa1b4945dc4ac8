import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Tasks are claimed a little before their due time and held until it (`--dispatch-lead`). A long lead makes
/// the staged state last long enough for a test to change the tasks under it.
@Suite struct StagingTests {
    @Test func stagedTaskIsPushedAtItsDueTimeNotAtItsClaim() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["early"], concurrency: 2)
        let due = nowMicros() + 700_000
        try scheduler.add([task("st1", callback: "early", runAt: due)])
        // Claimed already (leased in the store) but not pushed.
        #expect(try scheduler.fetch(["st1"]).first?.state == .leased)
        guard let delivery = try worker.nextDelivery(timeout: 15) else {
            Issue.record("no delivery")
            return
        }
        #expect(nowMicros() >= due, "pushed before its due time")
        #expect(delivery.runAt == due)
        #expect(delivery.lastRunAt == due, "a task claimed ahead runs at its due time, not at the claim's horizon")
        #expect(try worker.ack(delivery) == .ok)
        #expect(try daemon.stop() == 0)
    }

    @Test func removedPausedOrRescheduledStagedTasksAreNotPushed() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["change"], concurrency: 10)
        let due = nowMicros() + 600_000
        try scheduler.add([
            task("gone", callback: "change", runAt: due),
            task("held", callback: "change", runAt: due),
            task("moved", callback: "change", runAt: due),
            task("kept", callback: "change", runAt: due),
        ])
        #expect(try scheduler.affected(.removeTasks(.ids(["gone"]))) == 1)
        #expect(try scheduler.affected(.pauseTasks(.ids(["held"]))) == 1)
        #expect(try scheduler.affected(.updateRunTimes([RunTimeUpdate(id: "moved", runAt: nowMicros() + 3_600_000_000)])) == 1)
        var delivered: [String] = []
        while let delivery = try worker.nextDelivery(timeout: 1.5) {
            delivered.append(delivery.id)
            #expect(try worker.ack(delivery) == .ok)
        }
        #expect(delivered == ["kept"])
        // The paused one was given back uncounted and runs after resume; the moved one waits for its new time.
        let held = try scheduler.fetch(["held"]).first
        #expect(held?.state == .scheduled)
        #expect(held?.attempt == 0)
        #expect(try scheduler.fetch(["moved"]).first?.state == .scheduled)
        #expect(try scheduler.affected(.resumeTasks(.ids(["held"]))) == 1)
        #expect(try worker.nextDelivery()?.id == "held")
        #expect(try daemon.stop() == 0)
    }

    @Test func stagedTasksOfAWorkerThatLeavesGoElsewhereUncounted() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let leaver = try Client(daemon)
        try leaver.subscribe(["hop"], concurrency: 5)
        try scheduler.add([task("hop1", callback: "hop", runAt: nowMicros() + 800_000)])
        #expect(try scheduler.fetch(["hop1"]).first?.state == .leased)
        leaver.raw.close()
        let stayer = try Client(daemon)
        try stayer.subscribe(["hop"], concurrency: 5)
        let delivery = try stayer.nextDelivery()
        #expect(delivery?.id == "hop1")
        #expect(delivery?.attempt == 1, "a delivery that never happened was counted")
        #expect(try daemon.stop() == 0)
    }

    @Test func unsubscribeGivesStagedTasksBack() throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["unsub"], concurrency: 5)
        try scheduler.add([task("u1", callback: "unsub", runAt: nowMicros() + 800_000)])
        #expect(try worker.call(.unsubscribe) == .ok)
        let record = try scheduler.fetch(["u1"]).first
        #expect(record?.state == .scheduled)
        #expect(record?.attempt == 0)
        #expect(try worker.nextDelivery(timeout: 1.2) == nil)
        #expect(try daemon.stop() == 0)
    }
}
