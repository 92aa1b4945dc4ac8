import Foundation
import Glibc
import TaskShed
import TaskShedTestSupport
import Testing

/// Workers in separate processes (`taskshed-test-worker`) sharing one daemon.
@Suite("Workers in separate processes", .serialized, .timeLimit(.minutes(3)))
struct MultiProcessWorkerTests {
    @Test(arguments: ["polling", "event"])
    func twoWorkerProcessesRunEachOf5000TasksExactlyOnce(mode: String) async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let directory = try temporaryDirectory()
        defer { TemporaryDirectory.remove(directory) }
        let workers = try (0..<2).map { index in
            try WorkerProcess(
                socketPath: daemon.socketPath, outputPath: "\(directory)/worker\(index).txt", mode: mode,
                concurrency: 32, pollingMilliseconds: 100)
        }
        let ready = await eventually { workers.allSatisfy(\.isReady) }
        #expect(ready, "workers did not start: \(workers.map { $0.log() })")

        let ids = (0..<5000).map { String(format: "task-%05d", $0) }
        try await scheduler.addTasks(ids.map { ScheduledTask(callback: "work", id: $0) })

        let finished = await eventually(timeout: .seconds(120)) {
            guard workers.reduce(0, { $0 + $1.ids("done").count }) >= ids.count else { return false }
            let stats = try await scheduler.stats()
            return stats.due + stats.leased + stats.pending == 0
        }
        #expect(finished)
        for worker in workers { worker.process.send(SIGTERM) }
        for worker in workers { _ = await worker.process.waitOffPool(timeoutSeconds: 30) }

        var runs: [String: Int] = [:]
        for worker in workers {
            for id in worker.ids("done") { runs[id, default: 0] += 1 }
        }
        let duplicates = runs.values.filter { $0 > 1 }.reduce(0) { $0 + $1 - 1 }
        let lost = ids.filter { runs[$0] == nil }.count
        let perWorker = workers.map { $0.ids("done").count }
        print("two \(mode) worker processes, 5000 tasks: duplicates \(duplicates), lost \(lost), runs per worker \(perWorker)")
        #expect(duplicates == 0)
        #expect(lost == 0)
        #expect(runs.count == ids.count)
        #expect(try await scheduler.stats().dead == 0)
    }

    @Test func aTaskWhoseWorkerProcessIsKilledMidCallbackRunsOnTheOtherWorker() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let directory = try temporaryDirectory()
        defer { TemporaryDirectory.remove(directory) }

        let doomed = try WorkerProcess(
            socketPath: daemon.socketPath, outputPath: "\(directory)/doomed.txt", mode: "event", sleepMilliseconds: 3_600_000)
        let doomedReady = await eventually { doomed.isReady }
        #expect(doomedReady, "worker did not start: \(doomed.log())")
        try await scheduler.addTask(callback: "work", id: "survivor")
        #expect(await eventually { doomed.ids("start").contains("survivor") })

        // The other worker starts while the task is leased to the first: it cannot get it until the first dies.
        let rescuer = try WorkerProcess(
            socketPath: daemon.socketPath, outputPath: "\(directory)/rescuer.txt", mode: "polling", pollingMilliseconds: 100)
        let rescuerReady = await eventually { rescuer.isReady }
        #expect(rescuerReady, "worker did not start: \(rescuer.log())")
        doomed.process.send(SIGKILL)
        _ = await doomed.process.waitOffPool(timeoutSeconds: 10)

        #expect(await eventually { rescuer.ids("done").contains("survivor") })
        #expect(doomed.ids("done").isEmpty)
        #expect(rescuer.lines().contains("done survivor 2"))
        // The ACK follows the "done" line.
        #expect(await eventually { try await scheduler.fetchTasks(ids: ["survivor"]).isEmpty })
        // The run history tells the story: the killed worker's delivery ended "worker disconnected", the
        // rescuer's succeeded, each with its process.
        let runs = try await scheduler.history(taskID: "survivor").runs
        #expect(runs.map(\.outcome) == [.succeeded, .workerDisconnected])
        #expect(runs.map(\.attempt) == [2, 1])
        #expect(runs.map(\.workerPID) == [Int(rescuer.process.pid), Int(doomed.process.pid)])
        #expect(runs.last?.then == .retry)
        rescuer.process.send(SIGTERM)
        _ = await rescuer.process.waitOffPool(timeoutSeconds: 30)
    }

    @Test func sigtermShutsAWorkerProcessDownGracefullyReleasingItsTask() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let directory = try temporaryDirectory()
        defer { TemporaryDirectory.remove(directory) }
        let worker = try WorkerProcess(
            socketPath: daemon.socketPath, outputPath: "\(directory)/w.txt", mode: "polling", sleepMilliseconds: 3_600_000,
            pollingMilliseconds: 100, extra: ["--shutdown-timeout-ms", "200"])
        let workerReady = await eventually { worker.isReady }
        #expect(workerReady, "worker did not start: \(worker.log())")
        try await scheduler.addTask(callback: "work", id: "held")
        #expect(await eventually { worker.ids("start").contains("held") })

        worker.process.send(SIGTERM)
        let status = await worker.process.waitOffPool(timeoutSeconds: 30)
        #expect(status.map { ChildProcess.exitCode(fromWaitStatus: $0) } == 0)
        #expect(worker.lines().contains("stopped 1"))
        let task = try #require(try await scheduler.fetchTasks(ids: ["held"]).first)
        #expect(task.state == .scheduled)
        #expect(task.attempt == 0)
        // Given back, not failed: a "released" run, by that worker.
        let runs = try await scheduler.history(taskID: "held").runs
        #expect(runs.map(\.outcome) == [.released])
        #expect(runs.first?.workerPID == Int(worker.process.pid))
    }
}
