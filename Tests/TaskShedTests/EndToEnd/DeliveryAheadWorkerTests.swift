import Foundation
import Glibc
import Synchronization
import TaskShed
import TaskShedTestSupport
import Testing

/// `EventDrivenWorker` with tasks sent ahead of their due time (protocol version 3): started from the worker's
/// own timer at the due time, never before; a task removed after it was sent does not run; a worker that stops
/// before a task's due time leaves it to others uncounted. A long dispatch lead and lead ahead make the "sent,
/// not yet due" state last long enough for the test to act in it.
@Suite("Delivery ahead of the due time", .timeLimit(.minutes(2)))
struct DeliveryAheadWorkerTests {
    /// `CLOCK_REALTIME` in µs, the clock of run times.
    static func nowMicros() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    @Test func tasksSentAheadStartAtTheirDueTimeAndNeverBefore() async throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let starts = Mutex<[String: (runAt: Int64, started: Int64)]>([:])
        let worker = try EventDrivenWorker(
            callbackMap: ["timed": { task in
                let started = Self.nowMicros()
                starts.withLock { $0[task.id] = (Self.micros(task.runAt), started) }
            }],
            socketPath: daemon.socketPath, deliveryAhead: .seconds(1))
        try await worker.start()
        let base = Date().addingTimeInterval(2.5)
        let ids = (0..<5).map { "t\($0)" }
        for (index, id) in ids.enumerated() {
            try await scheduler.addTask(callback: "timed", runAt: base.addingTimeInterval(Double(index) * 0.1), id: id)
        }
        // Added a lead ahead of the first due time: else the daemon could only write them late (a starved test
        // process), and their lateness below says nothing.
        let addedInTime = Date() < base.addingTimeInterval(-1)
        #expect(await eventually { starts.withLock { $0.count } == ids.count })
        for (id, start) in starts.withLock({ $0 }) {
            // Date keeps µs to within a fraction: 1 µs of rounding allowed, no more.
            #expect(start.started >= start.runAt - 1, "\(id) started \(start.runAt - start.started) µs before its due time")
        }
        // The daemon wrote them ahead: its own view of their lateness (write time − run_at, never below 0) is 0.
        let stats = try await scheduler.stats()
        #expect(stats.lag.count == ids.count)
        if addedInTime {
            #expect(stats.lag.max == .zero, "a task was written at or after its due time: \(stats.lag)")
        } else {
            print("tasksSentAheadStartAtTheirDueTimeAndNeverBefore: added too late to be sent ahead; lag not judged")
        }
        await worker.shutdown()
    }

    /// Waits until the daemon has claimed `id` (leased; with a lead ahead equal to the dispatch lead, it is written
    /// to the worker right then), or until `ran` says a callback ran already. Polls rather than sleeps; still,
    /// when long synchronous tests hold the test process's cooperative threads, this can resume only after the
    /// due time, and the callers then do not judge.
    /// - Returns: Whether the task was seen leased before any run.
    static func waitUntilLeased(_ id: String, _ scheduler: Scheduler, ran: @escaping @Sendable () -> Bool) async -> Bool {
        var leased = false
        _ = await eventually {
            if ran() { return true }
            leased = try await scheduler.fetchTasks(ids: [id]).first?.state == .leased
            return leased
        }
        return leased && !ran()
    }

    @Test func aTaskRemovedAfterItWasSentAheadDoesNotRun() async throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let worker = try EventDrivenWorker(
            callbackMap: ["maybe": { runs.record($0) }], socketPath: daemon.socketPath, deliveryAhead: .seconds(1))
        try await worker.start()
        let due = Date().addingTimeInterval(3)
        try await scheduler.addTask(callback: "maybe", runAt: due, id: "doomed")
        try await scheduler.addTask(callback: "maybe", runAt: due, id: "kept")
        let seenLeased = await Self.waitUntilLeased("doomed", scheduler) { runs.count > 0 }
        let removed = seenLeased ? try await scheduler.removeTasks(ids: ["doomed"]) : 0
        let removedInTime = removed == 1 && Date() < due
        #expect(await eventually { runs.count >= 1 })
        try await Task.sleep(for: .milliseconds(300))
        if removedInTime {
            #expect(runs.all == [RunLog.Run(id: "kept", attempt: 1)])
        } else {
            // The test process was too slow to remove it before its due time: nothing to judge.
            print("aTaskRemovedAfterItWasSentAheadDoesNotRun: the removal came after the due time; not judged")
        }
        await worker.shutdown()
    }

    @Test func aWorkerStoppingBeforeTheDueTimeLeavesTheTaskToOthersUncounted() async throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let first = RunLog()
        let leaver = try EventDrivenWorker(
            callbackMap: ["job": { first.record($0) }], socketPath: daemon.socketPath, deliveryAhead: .seconds(1))
        try await leaver.start()
        let due = Date().addingTimeInterval(3)
        try await scheduler.addTask(callback: "job", runAt: due, id: "later")
        let seenLeased = await Self.waitUntilLeased("later", scheduler) { first.count > 0 }
        await leaver.shutdown()
        guard seenLeased, Date() < due else {
            print("aWorkerStoppingBeforeTheDueTimeLeavesTheTaskToOthersUncounted: stopped after the due time; not judged")
            return
        }
        #expect(first.count == 0)
        #expect(await eventually {
            let record = try await scheduler.fetchTasks(ids: ["later"]).first
            return record?.state == .scheduled && record?.attempt == 0
        })
        let runs = RunLog()
        let other = try PollingWorker(
            callbackMap: ["job": { runs.record($0) }], pollingInterval: .milliseconds(100), socketPath: daemon.socketPath)
        try await other.start()
        #expect(await eventually { runs.count == 1 })
        #expect(runs.all == [RunLog.Run(id: "later", attempt: 1)])
        await other.shutdown()
    }

    @Test func aBurstSentAheadForOneInstantRunsEveryTaskOnceAndNoneEarly() async throws {
        let daemon = try DaemonProcess(arguments: ["--dispatch-lead", "1s"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let early = Mutex(0)
        let runs = RunLog()
        let worker = try EventDrivenWorker(
            callbackMap: ["burst": { task in
                if Self.nowMicros() < Self.micros(task.runAt) - 1 { early.withLock { $0 += 1 } }
                runs.record(task)
            }],
            socketPath: daemon.socketPath, concurrency: 3_000, deliveryAhead: .seconds(1))
        try await worker.start()
        let due = Date().addingTimeInterval(2)
        let tasks = (0..<2_000).map { ScheduledTask(callback: "burst", runAt: due, id: "b\($0)") }
        _ = try await scheduler.addTasks(tasks)
        #expect(await eventually(timeout: .seconds(60)) { runs.count >= tasks.count })
        #expect(Set(runs.all.map(\.id)).count == tasks.count)
        #expect(runs.count == tasks.count, "a task ran twice")
        #expect(early.withLock { $0 } == 0, "tasks started before their due time")
        await worker.shutdown()
    }

    @Test func aLeadOutsideZeroToOneSecondIsRefused() throws {
        for lead in [Duration.milliseconds(-1), .milliseconds(1001)] {
            #expect(throws: TaskShedError.self) {
                _ = try EventDrivenWorker(callbackMap: ["x": { _ in }], deliveryAhead: lead)
            }
        }
    }
}
