import Foundation
import Synchronization
import TaskShed
import TaskShedTestSupport
import Testing

/// The two workers in this process against a real taskshedd.
@Suite("Workers end to end", .timeLimit(.minutes(2)))
struct WorkerEndToEndTests {
    struct Greeting: Codable, Equatable {
        var name: String
    }

    @Test func eventDrivenWorkerRunsADueTaskAndTheAckRemovesIt() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let (greetings, greeted) = AsyncStream<Greeting>.makeStream()
        let worker = try EventDrivenWorker(
            callbackMap: ["greet": { task in greeted.yield(try task.decodeKwargs(as: Greeting.self)) }],
            socketPath: daemon.socketPath)
        try await worker.start()

        let added = try await scheduler.addTask(callback: "greet", kwargs: try Kwargs(encoding: Greeting(name: "Ada")))
        var iterator = greetings.makeAsyncIterator()
        #expect(await iterator.next() == Greeting(name: "Ada"))
        #expect(await eventually { try await scheduler.fetchTasks(ids: [added.id]).isEmpty })
        await worker.shutdown()
    }

    @Test func eventDrivenWorkerRunsARecurringTaskRepeatedly() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let worker = try EventDrivenWorker(callbackMap: ["tick": { runs.record($0) }], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTask(callback: "tick", schedule: .every(.milliseconds(100)), id: "ticker")
        #expect(await eventually { runs.count >= 3 })
        // Still scheduled after each run: recurring tasks are not removed by the ack.
        #expect(try await scheduler.fetchTasks(ids: ["ticker"]).count == 1)
        try await scheduler.removeTasks(ids: ["ticker"])
        await worker.shutdown()
    }

    @Test func pollingWorkerRunsEveryDueTaskOnce() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let worker = try PollingWorker(
            callbackMap: ["job": { runs.record($0) }], pollingInterval: .milliseconds(100), socketPath: daemon.socketPath,
            concurrency: 4)
        try await worker.start()
        let tasks = (0..<40).map { ScheduledTask(callback: "job", id: "p\($0)") }
        try await scheduler.addTasks(tasks)
        #expect(await eventually { try await scheduler.stats().pending + scheduler.stats().due + scheduler.stats().leased == 0 })
        #expect(Set(runs.all.map(\.id)) == Set(tasks.map(\.id)))
        #expect(runs.count == 40)
        await worker.shutdown()
    }

    @Test func aTaskForACallbackAddedAtRunTimeRunsOnceTheCallbackIsAdded() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let worker = try EventDrivenWorker(callbackMap: ["first": { _ in }], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTask(callback: "late", id: "late-1")
        #expect(await eventually { try await scheduler.stats().waitingForWorker == 1 })
        #expect(runs.count == 0)

        try await worker.addCallback("late") { runs.record($0) }
        #expect(await eventually { runs.count == 1 })
        await #expect { try await worker.addCallback("late") { _ in } } throws: {
            ($0 as? TaskShedError)?.code == .duplicateCallback
        }
        await worker.shutdown()
    }

    @Test func aThrowingCallbackIsRetriedThenDeadLettered() async throws {
        struct Boom: Error, CustomStringConvertible {
            var attempt: Int
            var description: String { "boom on attempt \(attempt)" }
        }
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let succeedNow = Mutex(false)
        let worker = try EventDrivenWorker(
            callbackMap: [
                "flaky": { task in
                    runs.record(task)
                    if !succeedNow.withLock({ $0 }) { throw Boom(attempt: task.attempt) }
                }
            ], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTask(callback: "flaky", id: "doomed", maxAttempts: 2)

        #expect(await eventually { try await scheduler.stats().dead == 1 })
        #expect(runs.all.map(\.attempt) == [1, 2])
        let dead = try await scheduler.deadLetters()
        let task = try #require(dead.tasks.first)
        #expect(task.id == "doomed")
        #expect(task.state == .dead)
        #expect(task.lastError?.contains("boom on attempt 2") == true)

        // Retrying a dead letter runs it again; this time it succeeds and is removed.
        succeedNow.withLock { $0 = true }
        #expect(try await scheduler.retryDeadLetters(.ids(["doomed"])) == 1)
        #expect(await eventually { try await scheduler.fetchTasks(ids: ["doomed"]).isEmpty })
        #expect(runs.count == 3)
        await worker.shutdown()
    }

    @Test func deadLettersCanBePurged() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        struct Nope: Error {}
        let worker = try EventDrivenWorker(callbackMap: ["bad": { _ in throw Nope() }], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTasks([
            ScheduledTask(callback: "bad", id: "d1", group: "g", maxAttempts: 1),
            ScheduledTask(callback: "bad", id: "d2", group: "g", maxAttempts: 1),
            ScheduledTask(callback: "bad", id: "d3", maxAttempts: 1),
        ])
        #expect(await eventually { try await scheduler.stats().dead == 3 })
        await worker.shutdown()
        #expect(try await scheduler.purgeDeadLetters(.group("g")) == 2)
        #expect(try await scheduler.deadLetters().tasks.map(\.id) == ["d3"])
        #expect(try await scheduler.purgeDeadLetters(.all) == 1)
        #expect(try await scheduler.stats().dead == 0)
    }

    @Test func aCallbackRunningThreeLeasesLongIsNotRedelivered() async throws {
        // A 2 s lease (the worker touches every ~0.67 s) leaves the touches 1.3 s of slack on a loaded CI
        // machine; the callback runs three lease lengths. The worker runs in a process of its own: in this test
        // process, the other targets' synchronous tests can hold both threads of the cooperative pool (two
        // cores) for seconds, and the touches would wait for them, not for anything of the worker's.
        let daemon = try DaemonProcess(arguments: ["--lease-timeout", "2s"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let directory = try temporaryDirectory()
        defer { TemporaryDirectory.remove(directory) }
        let worker = try WorkerProcess(
            socketPath: daemon.socketPath, outputPath: "\(directory)/long.txt", mode: "event", sleepMilliseconds: 6_000,
            concurrency: 4, extra: ["--callback", "long", "--lease-ms", "2000"])
        let ready = await eventually { worker.isReady }
        #expect(ready, "worker did not start: \(worker.log())")
        try await scheduler.addTask(callback: "long", id: "long-1")
        #expect(await eventually { try await scheduler.fetchTasks(ids: ["long-1"]).isEmpty })
        #expect(worker.lines().filter { $0.hasPrefix("start ") } == ["start long-1 1"], "\(worker.lines())")
        #expect(try await scheduler.stats().dead == 0)
        worker.process.send(SIGTERM)
        _ = await worker.process.waitOffPool(timeoutSeconds: 30)
    }

    @Test func shutdownTimeoutGivesUnfinishedTasksBackForAnotherWorker() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let stuck = try EventDrivenWorker(
            callbackMap: [
                "job": { _ in
                    startedContinuation.yield()
                    try await Task.sleep(for: .seconds(3600))
                }
            ], socketPath: daemon.socketPath)
        try await stuck.start()
        try await scheduler.addTask(callback: "job", id: "handover")
        for await _ in started { break }

        #expect(await stuck.shutdown(timeout: .milliseconds(200)) == 1)
        let released = try #require(try await scheduler.fetchTasks(ids: ["handover"]).first)
        #expect(released.state == .scheduled)
        // RELEASE does not count the attempt.
        #expect(released.attempt == 0)

        let runs = RunLog()
        let other = try PollingWorker(
            callbackMap: ["job": { runs.record($0) }], pollingInterval: .milliseconds(100), socketPath: daemon.socketPath)
        try await other.start()
        #expect(await eventually { try await scheduler.fetchTasks(ids: ["handover"]).isEmpty })
        #expect(runs.all == [RunLog.Run(id: "handover", attempt: 1)])
        await other.shutdown()
    }

    @Test func shutdownWaitsForRunningCallbacksWithinTheTimeout() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let finished = Mutex(false)
        let worker = try EventDrivenWorker(
            callbackMap: [
                "job": { _ in
                    startedContinuation.yield()
                    try await Task.sleep(for: .milliseconds(300))
                    finished.withLock { $0 = true }
                }
            ], socketPath: daemon.socketPath)
        try await worker.start()
        try await scheduler.addTask(callback: "job", id: "graceful")
        for await _ in started { break }
        #expect(await worker.shutdown(timeout: .seconds(30)) == 0)
        #expect(finished.withLock { $0 })
        #expect(try await scheduler.fetchTasks(ids: ["graceful"]).isEmpty)
    }

    @Test(arguments: ["event", "polling"])
    func neitherWorkerRunsMoreCallbacksAtOnceThanItsConcurrency(mode: String) async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let gauge = Mutex((running: 0, peak: 0, total: 0))
        let callbacks: [String: TaskCallback] = [
            "job": { _ in
                gauge.withLock {
                    $0.running += 1
                    $0.peak = max($0.peak, $0.running)
                }
                try await Task.sleep(for: .milliseconds(150))
                gauge.withLock {
                    $0.running -= 1
                    $0.total += 1
                }
            }
        ]
        let shutdown: () async -> Int
        if mode == "event" {
            let worker = try EventDrivenWorker(callbackMap: callbacks, socketPath: daemon.socketPath, concurrency: 3)
            try await worker.start()
            shutdown = { await worker.shutdown() }
        } else {
            let worker = try PollingWorker(
                callbackMap: callbacks, pollingInterval: .milliseconds(50), socketPath: daemon.socketPath, concurrency: 3)
            try await worker.start()
            shutdown = { await worker.shutdown() }
        }
        try await scheduler.addTasks((0..<20).map { ScheduledTask(callback: "job", id: "c\($0)") })
        // A bound on a hang: with the test process's cooperative threads held by synchronous tests, 20 s was seen
        // to run out in a clean-clone run.
        #expect(await eventually(timeout: .seconds(90)) { gauge.withLock { $0.total } == 20 })
        let peak = gauge.withLock { $0.peak }
        #expect(peak <= 3)
        #expect(peak >= 2, "tasks were expected to overlap")
        _ = await shutdown()
    }

    @Test(arguments: ["event", "polling"], [false, true])
    func workersReconnectAfterTheDaemonRestarts(mode: String, crash: Bool) async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        let runs = RunLog()
        let callbacks: [String: TaskCallback] = ["job": { runs.record($0) }]
        let shutdown: () async -> Int
        if mode == "event" {
            let worker = try EventDrivenWorker(callbackMap: callbacks, socketPath: daemon.socketPath)
            try await worker.start()
            shutdown = { await worker.shutdown() }
        } else {
            let worker = try PollingWorker(
                callbackMap: callbacks, pollingInterval: .milliseconds(100), socketPath: daemon.socketPath)
            try await worker.start()
            shutdown = { await worker.shutdown() }
        }
        try await scheduler.addTask(callback: "job", id: "before")
        #expect(await eventually { runs.count(of: "before") == 1 })

        if crash {
            daemon.kill()
        } else {
            try daemon.stop()
        }
        try daemon.restart()
        // The scheduler's next call may still meet the old connection's close; the one after reconnects.
        _ = try? await scheduler.ping()
        try await scheduler.addTask(callback: "job", id: "after")
        #expect(await eventually { runs.count(of: "after") == 1 })
        _ = await shutdown()
    }
}
