import Foundation
import TaskShed
import TaskShedProtocol
import Testing

/// `Scheduler.history` and `allRuns` against a scripted daemon: the query sent, the runs built from the reply,
/// paging with `before`, and the errors raised before anything is sent. The daemon's own history is tested end
/// to end in HistoryEndToEndTests.
@Suite("Run history", .timeLimit(.minutes(1)))
struct HistoryTests {
    static let base: Int64 = 1_795_946_400_000_000

    static func entry(_ seq: UInt64, outcome: RunOutcome = .succeeded) -> RunEntry {
        RunEntry(
            seq: seq, taskID: "t\(seq)", callback: "cb", attempt: 1, scheduledAt: base, deliveredAt: base + 1_250,
            finishedAt: base + 2_501_250, outcome: outcome, then: .finished)
    }

    /// Answers every GET_HISTORY from a history of `count` entries (sequence `count` down to 1), recording the
    /// queries, until `expected` requests have been answered.
    static func serve(_ fake: FakeDaemon, count: UInt64, requests expected: Int) async -> [HistoryQuery] {
        var queries: [HistoryQuery] = []
        for _ in 0..<expected {
            guard let frame = await fake.nextRequest(), case .getHistory(let query) = frame.message else { break }
            queries.append(query)
            let top = min(count, (query.before ?? count + 1) - 1)
            let seqs = top == 0 ? [] : Array(stride(from: top, to: top > UInt64(query.limit) ? top - UInt64(query.limit) : 0, by: -1))
            let next = seqs.last.flatMap { $0 > 1 ? $0 : nil }
            fake.send(.history(HistoryPage(runs: seqs.map { entry($0) }, nextBefore: next)), requestID: frame.requestID)
        }
        return queries
    }

    @Test func historySendsTheQueryAndBuildsRunsFromTheReply() async throws {
        let fake = try FakeDaemon(version: 3)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        let since = Date(timeIntervalSince1970: 1_795_900_000)
        async let page = scheduler.history(
            taskID: "nightly", callback: "backup", failedOnly: true, since: since, limit: 5, before: 99)

        let frame = try #require(await fake.nextRequest())
        guard case .getHistory(let query) = frame.message else {
            Issue.record("sent \(frame.message.type)")
            return
        }
        #expect(query == HistoryQuery(
            taskID: "nightly", callback: "backup", failedOnly: true, since: 1_795_900_000_000_000, limit: 5, before: 99))
        let failed = RunEntry(
            seq: 98, taskID: "nightly", callback: "backup", attempt: 2, scheduledAt: Self.base,
            deliveredAt: Self.base + 85, finishedAt: Self.base + 1_000_085, outcome: .workerDisconnected, then: .retry,
            error: "worker disconnected", workerName: "w", workerPID: 4242, workerUID: 1000, daemon: "host-a")
        let skipped = RunEntry(
            seq: 97, taskID: "nightly", callback: "backup", attempt: 0, scheduledAt: Self.base, deliveredAt: nil,
            finishedAt: Self.base + 5, outcome: .skipped, then: .nextRun, error: "catch-up", daemon: "host-a")
        fake.send(.history(HistoryPage(runs: [failed, skipped], nextBefore: 97)), requestID: frame.requestID)

        let result = try await page
        #expect(result.nextBefore == 97)
        let run = try #require(result.runs.first)
        #expect(run.sequence == 98 && run.id == 98)
        #expect(run.taskID == "nightly" && run.callback == "backup" && run.attempt == 2)
        #expect(run.outcome == .workerDisconnected && run.outcome.isFailure)
        #expect(run.then == .retry)
        #expect(run.error == "worker disconnected")
        #expect(run.workerName == "w" && run.workerPID == 4242 && run.workerUID == 1000 && run.daemon == "host-a")
        #expect(run.scheduledAt == Date(timeIntervalSince1970: Double(Self.base) / 1_000_000))
        #expect(run.lateness == .microseconds(85))
        #expect(run.duration == .microseconds(1_000_000))
        let skip = try #require(result.runs.last)
        #expect(skip.outcome == .skipped && !skip.outcome.isFailure && skip.then == .nextRun)
        #expect(skip.deliveredAt == nil && skip.lateness == nil && skip.duration == nil)
        // The protocol's "not known" values become nil.
        #expect(skip.workerName == nil && skip.workerPID == nil && skip.workerUID == nil)
    }

    @Test func allRunsPagesWithBeforeUntilTheOldest() async throws {
        let fake = try FakeDaemon(version: 3)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        async let queries = Self.serve(fake, count: 7, requests: 3)
        var seen: [UInt64] = []
        for try await run in scheduler.allRuns(callback: "cb", pageSize: 3) {
            seen.append(run.sequence)
        }
        #expect(seen == [7, 6, 5, 4, 3, 2, 1])
        let sent = await queries
        #expect(sent.map(\.before) == [nil, 5, 2])
        #expect(sent.allSatisfy { $0.limit == 3 && $0.callback == "cb" && $0.taskID == nil && !$0.failedOnly })
    }

    @Test func allRunsLowersItsPageSizeToTheDaemonsBatchLimit() async throws {
        let fake = try FakeDaemon(maxBatch: 2, version: 3)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        async let queries = Self.serve(fake, count: 3, requests: 2)
        var count = 0
        for try await _ in scheduler.allRuns(pageSize: 1000) { count += 1 }
        #expect(count == 3)
        #expect(await queries.map(\.limit) == [2, 2])
    }

    @Test func aDaemonBelowVersion3IsRefusedBeforeAnythingIsSent() async throws {
        let fake = try FakeDaemon(version: 2)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        await #expect {
            _ = try await scheduler.history(taskID: "t")
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .unsupportedVersion && error.message.contains("needs version 3")
        }
        // The connection is still fine for what version 2 has.
        async let affected = scheduler.pauseTasks(ids: ["t"])
        let frame = try #require(await fake.nextRequest())
        guard case .pauseTasks = frame.message else {
            Issue.record("the history request was sent: \(frame.message.type)")
            return
        }
        fake.send(.affected(1), requestID: frame.requestID)
        #expect(try await affected == 1)
    }

    @Test(arguments: [0, -1, Int(UInt32.max) + 1])
    func limitsOutsideTheWireRangeAreUsageErrors(_ limit: Int) async {
        let scheduler = Scheduler(socketPath: "/tmp/taskshed-unused-\(getpid()).sock")
        await #expect {
            _ = try await scheduler.history(limit: limit)
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .invalidUsage && error.field == "limit"
        }
    }

    @Test func theDaemonsErrorsComeThroughWithTheirField() async throws {
        let fake = try FakeDaemon(version: 3)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        let page = Task { try await scheduler.history(limit: 200_000) }
        let frame = try #require(await fake.nextRequest())
        fake.send(
            .error(ErrorReply(code: .invalidArgument, field: "limit", message: "limit 200000 is above max_batch 100000")),
            requestID: frame.requestID)
        await #expect {
            _ = try await page.value
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .invalidArgument && error.field == "limit"
        }
    }
}
