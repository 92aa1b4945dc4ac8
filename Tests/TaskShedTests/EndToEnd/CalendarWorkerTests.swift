import Foundation
import Synchronization
import TaskShed
import TaskShedTestSupport
import Testing

/// Calendar tasks through the library against a real taskshedd: a cron task runs when due and is listed with
/// its next runs; overlap `skip` with a callback longer than the rule's period; jitter within its bound.
@Suite("Calendar tasks end to end", .timeLimit(.minutes(2)))
struct CalendarWorkerTests {
    /// What each run saw: the task's run time, and when the callback started.
    final class Runs: Sendable {
        private let runs = Mutex<[(runAt: Date, startedAt: Date, skipped: Int, lastSkip: String?)]>([])
        func record(_ task: ScheduledTask) {
            runs.withLock { $0.append((task.runAt, Date(), task.skippedRuns, task.lastSkip)) }
        }
        var all: [(runAt: Date, startedAt: Date, skipped: Int, lastSkip: String?)] { runs.withLock { $0 } }
    }

    @Test func aCronTaskRunsWhenDueAndItsNextRunsAreTheDaemons() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = Runs()
        let worker = try EventDrivenWorker(callbackMap: ["minutely": { runs.record($0) }], socketPath: daemon.socketPath)
        try await worker.start()
        // Every second, in systemd syntax, in New York; the first run is the first occurrence after runAt.
        let schedule = TaskSchedule.systemd("*:*:*", timeZone: "America/New_York")
        try await scheduler.addTask(callback: "minutely", schedule: schedule, id: "cal")
        #expect(await eventually { runs.all.count >= 2 })
        for run in runs.all {
            #expect(run.runAt.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) == 0, "\(run.runAt)")
            #expect(run.startedAt >= run.runAt, "started \(run.runAt.timeIntervalSince(run.startedAt)) s early")
        }
        let stored = try #require(try await scheduler.fetchTasks(ids: ["cal"]).first)
        #expect(stored.schedule == schedule)
        let predicted = try schedule.nextRuns(after: stored.runAt.addingTimeInterval(-0.5), count: 3)
        #expect(predicted.first == stored.runAt)
        #expect(zip(predicted, predicted.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == 1 }, "\(predicted)")
        try await scheduler.removeTasks(ids: ["cal"])
        await worker.shutdown()
    }

    @Test func overlapSkipDropsOccurrencesThatFallDueDuringALongRun() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = Runs()
        let worker = try EventDrivenWorker(
            callbackMap: ["slow": { task in
                runs.record(task)
                try await Task.sleep(for: .milliseconds(2500))
            }], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTask(callback: "slow", schedule: .systemd("*:*:*"), id: "slow")
        #expect(await eventually(timeout: .seconds(30)) { runs.all.count >= 3 })
        let all = runs.all
        // A run lasts 2.5 s: the two occurrences due meanwhile are skipped, so runs are 3 s apart, never 1 s.
        for (a, b) in zip(all, all.dropFirst()) {
            #expect(b.runAt.timeIntervalSince(a.runAt) >= 3, "\(all.map(\.runAt))")
        }
        let last = try #require(all.last)
        #expect(last.skipped >= 4 && last.lastSkip?.contains("overlap skip") == true, "\(last)")
        try await scheduler.removeTasks(ids: ["slow"])
        await worker.shutdown()
    }

    @Test func overlapAllowRunsEachOccurrenceBesideTheRunsStillRunning() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = Runs()
        let running = Mutex((now: 0, most: 0))
        let worker = try EventDrivenWorker(
            callbackMap: ["slow": { task in
                runs.record(task)
                running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                try await Task.sleep(for: .milliseconds(2500))
                running.withLock { $0.now -= 1 }
            }], socketPath: daemon.socketPath, concurrency: 8)
        try await worker.start()
        try await scheduler.addTask(callback: "slow", schedule: .systemd("*:*:*", overlap: .allow), id: "each")
        #expect(await eventually(timeout: .seconds(30)) { runs.all.count >= 4 })
        let all = runs.all
        // Every occurrence runs, one second apart, each as its own task, several at once.
        for (a, b) in zip(all, all.dropFirst()) {
            #expect(b.runAt.timeIntervalSince(a.runAt) == 1, "\(all.map(\.runAt))")
        }
        #expect(running.withLock { $0.most } >= 2, "never two runs at once")
        #expect(all.allSatisfy { $0.skipped == 0 })
        try await scheduler.removeTasks(ids: ["each"])
        await worker.shutdown()
    }

    @Test func jitterDelaysEachRunWithinItsBoundAndFixedJitterKeepsItsDelay() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = Runs()
        let worker = try EventDrivenWorker(callbackMap: ["jittered": { runs.record($0) }], socketPath: daemon.socketPath)
        try await worker.start()
        // Every two seconds, up to 1.5 s later, the same delay each time.
        try await scheduler.addTask(
            callback: "jittered", schedule: .systemd("*:*:0/2", jitter: .milliseconds(1500), jitterMode: .fixed),
            id: "jittered")
        #expect(await eventually(timeout: .seconds(30)) { runs.all.count >= 3 })
        let delays = runs.all.map { $0.runAt.timeIntervalSince1970.truncatingRemainder(dividingBy: 2) }
        for delay in delays {
            #expect(delay >= 0 && delay <= 1.5, "\(delays)")
        }
        #expect(Set(delays.map { ($0 * 1_000_000).rounded() }).count == 1, "fixed jitter moved: \(delays)")
        for run in runs.all {
            #expect(run.startedAt >= run.runAt, "started before its jittered time: \(run)")
        }
        try await scheduler.removeTasks(ids: ["jittered"])
        await worker.shutdown()
    }
}
