import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

@Suite struct DispatchTests {
    @Test func subscribedWorkerReceivesTaskAtItsDueTimeNeverEarly() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["email"], concurrency: 4)
        let due = nowMicros() + 300_000
        try scheduler.add([task("t1", callback: "email", runAt: due, kwargs: #"{"to":"a@b.c"}"#)])
        guard let delivery = try worker.nextDelivery(timeout: 15) else {
            Issue.record("no delivery")
            return
        }
        let receivedAt = nowMicros()
        #expect(delivery.id == "t1")
        #expect(delivery.callback == "email")
        #expect(delivery.kwargs == Array(#"{"to":"a@b.c"}"#.utf8))
        #expect(delivery.attempt == 1)
        #expect(delivery.state == .leased)
        #expect(receivedAt >= due, "delivered \(due - receivedAt) µs early")
        #expect(try worker.ack(delivery) == .ok)
        // A one-off task is gone after its ack; acking it again is a lost lease.
        #expect(try scheduler.fetch(["t1"]).isEmpty)
        expectError(try worker.ack(delivery), .leaseLost)
        let stats = try scheduler.stats()
        #expect(stats.lag.count >= 1)
        #expect(try daemon.stop() == 0)
    }

    @Test func taskAddedAlreadyDueIsPushedAtOnceAndSubscribeLaterGetsWaitingTasks() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        try scheduler.add([task("w1", callback: "late"), task("w2", callback: "late")])
        var stats = try scheduler.stats()
        #expect(stats.waitingForWorker == 2)
        #expect(stats.callbacks.first { $0.callback == "late" }?.workers == 0)
        let worker = try Client(daemon)
        try worker.subscribe(["late"], concurrency: 10)
        var got = Set<String>()
        for _ in 0..<2 {
            if let task = try worker.nextDelivery() {
                got.insert(task.id)
                #expect(try worker.ack(task) == .ok)
            }
        }
        #expect(got == ["w1", "w2"])
        stats = try scheduler.stats()
        #expect(stats.waitingForWorker == 0)
        #expect(try daemon.stop() == 0)
    }

    @Test func workerAtItsLimitReceivesNothingMoreUntilItAcks() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["limited"], concurrency: 2)
        try scheduler.add((0..<5).map { task("l\($0)", callback: "limited") })
        let first = try worker.nextDelivery()
        let second = try worker.nextDelivery()
        #expect(first != nil && second != nil)
        #expect(try worker.nextDelivery(timeout: 0.5) == nil, "a third task was pushed past the limit of 2")
        let stats = try scheduler.stats()
        #expect(stats.callbacks.first { $0.callback == "limited" }?.leased == 2)
        if let first { #expect(try worker.ack(first) == .ok) }
        let third = try worker.nextDelivery()
        #expect(third != nil)
        #expect(try daemon.stop() == 0)
    }

    @Test func pollingClaimsLeaseAtMostMaxAndNeverTheSameTaskTwice() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        try scheduler.add((0..<5).map { task("p\($0)", callback: "poll") } + [task("future", callback: "poll",
                                                                                    runAt: nowMicros() + 3_600_000_000)])
        let a = try Client(daemon)
        let b = try Client(daemon)
        let first = try a.claim(["poll"], max: 3)
        let second = try b.claim(["poll"], max: 3)
        let third = try a.claim(["poll"], max: 3)
        #expect(first.count == 3)
        #expect(second.count == 2)
        #expect(third.isEmpty)
        let ids = (first + second).map(\.id)
        #expect(Set(ids).count == 5)
        #expect(!ids.contains("future"))
        for task in first { #expect(try a.ack(task) == .ok) }
        // Another connection cannot settle a lease it does not hold.
        if let foreign = second.first { expectError(try a.ack(foreign), .leaseLost) }
        for task in second { #expect(try b.ack(task) == .ok) }
        #expect(try daemon.stop() == 0)
    }

    @Test func severalWorkersOfOneCallbackShareTheLoadWithoutDuplicates() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let workers = try (0..<3).map { _ in try Client(daemon) }
        for worker in workers { try worker.subscribe(["shared"], concurrency: 4) }
        let total = 150
        try scheduler.add((0..<total).map { task("s\($0)", callback: "shared") })
        var seen: [String: Int] = [:]
        var perWorker = [0, 0, 0]
        let deadline = monotonic() + 60
        while seen.count < total && monotonic() < deadline {
            var progress = false
            for (index, worker) in workers.enumerated() {
                guard let delivery = try worker.nextDelivery(timeout: 0.05) else { continue }
                progress = true
                seen[delivery.id, default: 0] += 1
                perWorker[index] += 1
                #expect(try worker.ack(delivery) == .ok)
            }
            if !progress { continue }
        }
        #expect(seen.count == total)
        #expect(seen.values.allSatisfy { $0 == 1 }, "a task was delivered twice")
        for count in perWorker { #expect(count > 0, "a worker got nothing: \(perWorker)") }
        #expect(try daemon.stop() == 0)
    }

    @Test func tasksOfAWorkerThatDiesGoToAnotherWorker() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let doomed = try Client(daemon)
        try doomed.subscribe(["crash"], concurrency: 5)
        try scheduler.add([task("c1", callback: "crash"), task("c2", callback: "crash")])
        var held = Set<String>()
        while held.count < 2, let delivery = try doomed.nextDelivery() { held.insert(delivery.id) }
        #expect(held == ["c1", "c2"])
        let survivor = try Client(daemon)
        try survivor.subscribe(["crash"], concurrency: 5)
        #expect(try survivor.nextDelivery(timeout: 0.3) == nil, "leased tasks were delivered twice")
        // The worker process dies: its socket closes without a goodbye.
        doomed.raw.close()
        var redelivered: [TaskRecord] = []
        while redelivered.count < 2, let delivery = try survivor.nextDelivery() { redelivered.append(delivery) }
        #expect(Set(redelivered.map(\.id)) == ["c1", "c2"])
        #expect(redelivered.allSatisfy { $0.attempt == 2 })
        for task in redelivered { #expect(try survivor.ack(task) == .ok) }
        #expect(try daemon.stop() == 0)
    }

    @Test func anAckAndAReleaseSentJustBeforeAWorkerClosesAreApplied() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        // One write carries the ACK and the RELEASE, and the close follows at once. Whether the close lands in
        // the same store job as the two requests depends on timing (`StoreJobTests` pins that case down); in
        // either case the requests must win over the close.
        try expectAckAndReleaseWinOverTheClose(daemon, scheduler) { connection, acked, released in
            try connection.send(
                Frame(requestID: 901, message: .ack(acked)), Frame(requestID: 902, message: .release(released)))
        }
        #expect(try daemon.stop() == 0)
    }

    @Test func expiredLeaseIsRedeliveredAndTheStaleAckIsLost() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["slow"], concurrency: 1, leaseMicros: 300_000)
        try scheduler.add([task("e1", callback: "slow", maxAttempts: 5)])
        guard let first = try worker.nextDelivery() else {
            Issue.record("no first delivery")
            return
        }
        #expect(first.attempt == 1)
        if let deadline = first.leaseDeadline { #expect(deadline > first.runAt) }
        // Do not ack: the lease ends after 300 ms and the same worker (its slot freed) gets it again.
        guard let second = try worker.nextDelivery(timeout: 20) else {
            Issue.record("no redelivery after the lease expired")
            return
        }
        #expect(second.id == "e1")
        #expect(second.attempt == 2)
        expectError(try worker.ack(first), .leaseLost)
        #expect(try worker.ack(second) == .ok)
        #expect(try daemon.stop() == 0)
    }

    @Test func touchExtendsALeaseAndReleaseGivesTheTaskBack() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try scheduler.add([task("r1", callback: "rel")])
        let claimed = try worker.claim(["rel"], max: 1, leaseMicros: 60_000_000)
        guard let leased = claimed.first else {
            Issue.record("nothing claimed")
            return
        }
        let before = nowMicros()
        let touched = try worker.call(.touch(Touch(lease: LeaseRef(id: leased.id, attempt: leased.attempt),
                                                   extendMicros: 120_000_000)))
        guard case .leaseExtended(let deadline) = touched else {
            Issue.record("TOUCH answered \(touched)")
            return
        }
        #expect(deadline >= before + 120_000_000)
        #expect(try worker.call(.release(LeaseRef(id: leased.id, attempt: leased.attempt))) == .ok)
        let again = try worker.claim(["rel"], max: 1)
        #expect(again.map(\.id) == ["r1"])
        #expect(try daemon.stop() == 0)
    }

    @Test func failingTaskIsRetriedThenDeadLetteredThenRetriedFromTheDeadLetters() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["flaky"], concurrency: 1)
        try scheduler.add([task("f1", callback: "flaky", maxAttempts: 2)])
        guard let first = try worker.nextDelivery() else {
            Issue.record("no delivery")
            return
        }
        #expect(try worker.fail(first, retry: true, error: "first failure") == .ok)
        // Retried after the store's backoff.
        guard let second = try worker.nextDelivery(timeout: 60) else {
            Issue.record("no retry")
            return
        }
        #expect(second.attempt == 2)
        #expect(second.lastError == "first failure")
        #expect(try worker.fail(second, retry: true, error: "second failure") == .ok)
        #expect(try worker.nextDelivery(timeout: 0.5) == nil)
        let dead = try scheduler.fetch(["f1"])
        #expect(dead.first?.state == .dead)
        #expect(dead.first?.lastError == "second failure")
        #expect(try scheduler.stats().dead == 1)
        // Back from the dead letters: due now, attempts reset.
        #expect(try scheduler.affected(.retryDead(.ids(["f1"]))) == 1)
        guard let third = try worker.nextDelivery() else {
            Issue.record("no delivery after RETRY_DEAD")
            return
        }
        #expect(third.attempt == 1)
        // retry = false dead-letters at once.
        #expect(try worker.fail(third, retry: false, error: "unknown callback") == .ok)
        #expect(try scheduler.fetch(["f1"]).first?.state == .dead)
        #expect(try scheduler.affected(.purgeDead(.ids(["f1"]))) == 1)
        #expect(try scheduler.fetch(["f1"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test func pauseResumeRescheduleAndRemoveReArmTheTimer() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["timed"], concurrency: 10)
        let soon = nowMicros() + 300_000
        try scheduler.add([
            task("paused", callback: "timed", runAt: soon),
            task("removed", callback: "timed", runAt: soon),
            task("later", callback: "timed", runAt: nowMicros() + 3_600_000_000),
        ])
        #expect(try scheduler.affected(.pauseTasks(.ids(["paused"]))) == 1)
        #expect(try scheduler.affected(.removeTasks(.ids(["removed"]))) == 1)
        // Past the original due time nothing arrives: the paused task waits, the removed one is gone.
        #expect(try worker.nextDelivery(timeout: 0.8) == nil)
        let resumedAt = nowMicros()
        #expect(try scheduler.affected(.resumeTasks(.ids(["paused"]))) == 1)
        let resumed = try worker.nextDelivery()
        #expect(resumed?.id == "paused")
        #expect(resumed?.pausedAt == nil)
        #expect(nowMicros() >= resumedAt)
        if let resumed { #expect(try worker.ack(resumed) == .ok) }
        // Rescheduling a task due in an hour to 200 ms from now delivers it then, not in an hour.
        let newTime = nowMicros() + 200_000
        #expect(try scheduler.affected(.updateRunTimes([RunTimeUpdate(id: "later", runAt: newTime)])) == 1)
        let rescheduled = try worker.nextDelivery(timeout: 20)
        #expect(rescheduled?.id == "later")
        #expect(nowMicros() >= newTime)
        // An unknown id fails the whole reschedule and names the id.
        let reply = try scheduler.call(.updateRunTimes([RunTimeUpdate(id: "nope", runAt: newTime)]))
        expectError(reply, .taskNotFound)
        #expect(try daemon.stop() == 0)
    }

    @Test func pingReportsTheNextWakeUp() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let reply = try scheduler.call(.ping)
        guard case .pong(let idle) = reply else {
            Issue.record("PING answered \(reply)")
            return
        }
        #expect(idle.nextWakeup == nil)
        #expect(abs(idle.serverTime - nowMicros()) < 60_000_000)
        let at = nowMicros() + 3_600_000_000
        try scheduler.add([task("n1", runAt: at)])
        guard case .pong(let busy) = try scheduler.call(.ping) else { return }
        #expect(busy.nextWakeup == at)
        #expect(try daemon.stop() == 0)
    }
}
