import Foundation
import Glibc
import TaskShed
import TaskShedTestSupport
import Testing

/// `Scheduler.history` and `allRuns` against a real taskshedd whose runs come from a worker in this process.
@Suite("Run history end to end", .timeLimit(.minutes(2)))
struct HistoryEndToEndTests {
    struct Boom: Error, CustomStringConvertible {
        var description: String { "boom: disk full" }
    }

    @Test func runsArePagedNewestFirstWithTheirWorkerAndError() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        defer { scheduler.shutdown() }
        let worker = try EventDrivenWorker(
            callbackMap: ["ok": { _ in }, "boom": { _ in throw Boom() }], socketPath: daemon.socketPath,
            clientName: "history-e2e-worker")
        try await worker.start()
        let started = Date()

        // One at a time, so that the history's order is the order they were added in.
        for index in 1...5 {
            try await scheduler.addTask(callback: "ok", id: "ok-\(index)")
            #expect(await eventually { try await scheduler.history(taskID: "ok-\(index)").runs.count == 1 })
        }
        try await scheduler.addTask(callback: "boom", id: "doomed", maxAttempts: 1)
        #expect(await eventually { try await scheduler.stats().dead == 1 })
        await worker.shutdown()

        // Pages of two: newest first, each page's nextBefore leading to the next.
        var pages: [[String]] = []
        var before: UInt64?
        repeat {
            let page = try await scheduler.history(limit: 2, before: before)
            pages.append(page.runs.map(\.taskID))
            before = page.nextBefore
        } while before != nil
        #expect(pages == [["doomed", "ok-5"], ["ok-4", "ok-3"], ["ok-2", "ok-1"]])

        // The sequence gives the same runs in the same order, whatever its page size.
        var all: [TaskRun] = []
        for try await run in scheduler.allRuns(pageSize: 4) { all.append(run) }
        #expect(all.map(\.taskID) == pages.flatMap { $0 })
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.sequence > $1.sequence })

        let success = try #require(all.last)
        #expect(success.outcome == .succeeded && success.then == .finished && success.error == nil)
        #expect(success.attempt == 1 && success.callback == "ok")
        #expect(success.workerName == "history-e2e-worker")
        #expect(success.workerPID == Int(getpid()))
        #expect(success.workerUID == getuid())
        #expect(!success.daemon.isEmpty)
        let delivered = try #require(success.deliveredAt)
        #expect(success.scheduledAt <= success.finishedAt && delivered <= success.finishedAt)
        #expect(success.finishedAt >= started.addingTimeInterval(-1))
        #expect(try #require(success.lateness) >= .zero)
        #expect(try #require(success.duration) >= .zero)

        // Filters: failures only, a callback, a task, a time.
        let failures = try await scheduler.history(failedOnly: true)
        #expect(failures.runs.map(\.taskID) == ["doomed"])
        let failure = try #require(failures.runs.first)
        #expect(failure.outcome == .failed && failure.outcome.isFailure && failure.then == .deadLettered)
        #expect(failure.error?.contains("boom: disk full") == true)
        #expect(try await scheduler.history(callback: "ok").runs.count == 5)
        #expect(try await scheduler.history(taskID: "ok-3").runs.map(\.taskID) == ["ok-3"])
        #expect(try await scheduler.history(since: Date().addingTimeInterval(60)).runs.isEmpty)
        #expect(try await scheduler.history(since: started.addingTimeInterval(-60)).runs.count == 6)
    }

    @Test func theDaemonRefusesALimitAboveItsBatchLimit() async throws {
        let daemon = try DaemonProcess(arguments: ["--max-batch", "10"])
        let scheduler = Scheduler(socketPath: daemon.socketPath)
        defer { scheduler.shutdown() }
        await #expect {
            _ = try await scheduler.history(limit: 11)
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .invalidArgument && error.field == "limit"
        }
        // The sequence lowers its page size to the limit instead.
        var count = 0
        for try await _ in scheduler.allRuns(pageSize: 1000) { count += 1 }
        #expect(count == 0)
    }
}
