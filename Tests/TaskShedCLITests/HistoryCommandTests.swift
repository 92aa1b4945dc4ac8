import ArgumentParser
import Foundation
import TaskShed
import TaskShedProtocol
import Testing

@testable import TaskShedCLI

/// `taskshedctl history`'s arguments, its paging through `GET_HISTORY`, and the history's output (table, JSON,
/// `show`'s last runs, `list`'s last outcome), all without a daemon.
@Suite("History command")
struct HistoryCommandTests {
    let context = TimeContext(nowMicros: utc(2026, 11, 29, 10), timeZone: zone("Europe/Berlin"))

    func parse(_ arguments: [String]) throws -> History {
        let command = try TaskShedCtl.parseAsRoot(["history"] + arguments)
        return try #require(command as? History, "parsed as \(type(of: command))")
    }

    func message(_ arguments: [String]) -> String {
        do {
            _ = try TaskShedCtl.parseAsRoot(["history"] + arguments)
            return "parsed"
        } catch {
            return TaskShedCtl.message(for: error)
        }
    }

    // MARK: Arguments

    @Test func takesEveryOption() throws {
        let history = try parse([
            "nightly", "--callback", "backup", "--failed", "--since", "1h", "--limit", "7", "--before", "42", "--json",
        ])
        #expect(history.id == "nightly")
        #expect(history.callback == "backup")
        #expect(history.failed)
        #expect(history.limit == 7)
        #expect(history.before == 42)
        #expect(history.global.json)
        #expect(try history.sinceMicros(context: context) == context.nowMicros - 3_600_000_000)
    }

    @Test func defaultsToTheNewestTwentyOfEveryTask() throws {
        let history = try parse([])
        #expect(history.id == nil && history.callback == nil && !history.failed && history.before == nil)
        #expect(history.limit == 20)
        #expect(try history.sinceMicros(context: context) == nil)
    }

    @Test(arguments: [
        ("2026-11-29T08:30:00Z", utc(2026, 11, 29, 8, 30)),
        ("2026-11-29 09:30", utc(2026, 11, 29, 8, 30)),  // local: Berlin is UTC+1 in November
        ("2d", utc(2026, 11, 27, 10)),
        ("90s", utc(2026, 11, 29, 9, 58, 30)),
        ("now", utc(2026, 11, 29, 10)),
    ])
    func sinceTakesADurationBackOrATime(_ text: String, _ expected: Int64) throws {
        #expect(try parse(["--since", text]).sinceMicros(context: context) == expected)
    }

    @Test func sinceRefusesTextThatIsNeitherAndTimesInTheFuture() throws {
        let bad = try parse(["--since", "yesterday"])
        #expect {
            _ = try bad.sinceMicros(context: context)
        } throws: { error in
            guard let error = error as? CLIError else { return false }
            return error.status == .usage && error.message.hasPrefix("--since: 'yesterday' is neither a duration")
                && error.message.contains("accepted: RFC 3339")
        }
        // A bare time of day is its next occurrence, which is always ahead: say so rather than show nothing.
        let future = try parse(["--since", "09:00"])
        #expect {
            _ = try future.sinceMicros(context: context)
        } throws: { error in
            guard let error = error as? CLIError else { return false }
            return error.status == .usage && error.message.contains("in the future")
                && error.message.contains("give the date")
        }
    }

    @Test(arguments: [
        (["--limit", "0"], "--limit must be 1 … 1000000, got 0"),
        (["--limit", "1000001"], "--limit must be 1 … 1000000, got 1000001"),
        (["--limit", "many"], "many"),
        (["--before", "0"], "--before 0 matches nothing"),
        (["--before", "-3"], "--before"),
        (["--callback", ""], "--callback: the callback name is empty"),
        ([""], "the task id is empty"),
        (["a", "b"], "Unexpected argument 'b'"),
    ])
    func badUsageNamesTheOption(_ arguments: [String], _ expected: String) {
        let text = message(arguments)
        #expect(text.contains(expected), "\(text)")
    }

    @Test func badUsageExitsWith64() {
        do {
            _ = try TaskShedCtl.parseAsRoot(["history", "--limit", "0"])
            Issue.record("parsed")
        } catch {
            #expect(TaskShedCtl.exitCode(for: error).rawValue == ExitStatus.usage.rawValue)
        }
    }

    // MARK: Paging

    /// A history of `count` runs, sequence `count` (newest) down to 1, served `pageLimit` at most per reply,
    /// recording each request's (limit, before).
    actor FakeHistory {
        let count: UInt64
        let pageLimit: Int
        var requests: [(Int, UInt64?)] = []

        init(count: UInt64, pageLimit: Int = .max) {
            self.count = count
            self.pageLimit = pageLimit
        }

        func page(limit: Int, before: UInt64?) -> TaskRunPage {
            requests.append((limit, before))
            let top = min(count, (before ?? count + 1) - 1)
            let taken = UInt64(min(limit, pageLimit))
            let sequences = top == 0 ? [] : Array(stride(from: top, to: top > taken ? top - taken : 0, by: -1))
            let runs = sequences.map { seq in
                TaskRun(
                    sequence: seq, taskID: "t\(seq)", callback: "cb", attempt: 1, scheduledAt: Date(cliMicros: 0),
                    deliveredAt: Date(cliMicros: 0), finishedAt: Date(cliMicros: 1_000), outcome: .succeeded,
                    then: .finished)
            }
            let last = sequences.last ?? 1
            return TaskRunPage(runs: runs, nextBefore: last > 1 ? last : nil)
        }
    }

    @Test func pagesWithBeforeUntilTheLimit() async throws {
        let fake = FakeHistory(count: 1_200)
        let result = try await HistoryCollector.collect(limit: 1_100, before: nil) { await fake.page(limit: $0, before: $1) }
        #expect(result.runs.map(\.seq) == Array(stride(from: UInt64(1_200), to: 100, by: -1)))
        #expect(result.nextBefore == 101)
        let requests = await fake.requests
        #expect(requests.map(\.0) == [500, 500, 100])
        #expect(requests.map(\.1) == [nil, 701, 201])
    }

    @Test func stopsWhenNoOlderRunMatches() async throws {
        let fake = FakeHistory(count: 3)
        let result = try await HistoryCollector.collect(limit: 20, before: nil) { await fake.page(limit: $0, before: $1) }
        #expect(result.runs.map(\.seq) == [3, 2, 1])
        #expect(result.nextBefore == nil)
        #expect(await fake.requests.count == 1)
    }

    @Test func continuesAfterShortPagesAndFromBefore() async throws {
        // A daemon cuts a page short to keep its frame small; the cursor still leads on.
        let fake = FakeHistory(count: 50, pageLimit: 4)
        let result = try await HistoryCollector.collect(limit: 10, before: 40) { await fake.page(limit: $0, before: $1) }
        #expect(result.runs.map(\.seq) == Array(stride(from: UInt64(39), through: 30, by: -1)))
        #expect(result.nextBefore == 30)
        #expect(await fake.requests.map(\.1) == [40, 36, 32])
    }

    @Test func keepsNoMoreThanTheLimitWhateverThePageHolds() async throws {
        let result = try await HistoryCollector.collect(limit: 2, before: nil) { _, _ in
            await FakeHistory(count: 5).page(limit: 5, before: nil)
        }
        #expect(result.runs.map(\.seq) == [5, 4])
        // The next page starts after the last run shown, so none is skipped.
        #expect(result.nextBefore == 4)
    }

    @Test func anEmptyPageEndsTheWalk() async throws {
        var calls = 0
        let result = try await HistoryCollector.collect(limit: 10, before: nil) { _, _ in
            calls += 1
            return TaskRunPage(runs: [], nextBefore: 99)
        }
        #expect(result.runs.isEmpty && result.nextBefore == nil)
        #expect(calls == 1)
    }

    @Test func olderDaemonsAreRecognised() {
        #expect(HistoryCollector.isUnsupported(TaskShedError(.unsupportedVersion, message: "v2")))
        #expect(HistoryCollector.isUnsupported(TaskShedError(.unknownMessageType, message: "GET_HISTORY is not served")))
        #expect(!HistoryCollector.isUnsupported(TaskShedError(.invalidArgument, field: "limit", message: "too big")))
    }

    @Test func aRunConvertsToItsWireEntryAndBack() {
        let entry = RunEntry(
            seq: 9, taskID: "t", callback: "cb", attempt: 2, scheduledAt: utc(2026, 11, 29, 9), deliveredAt: utc(2026, 11, 29, 9) + 1_250,
            finishedAt: utc(2026, 11, 29, 9, 0, 2), outcome: .failed, then: .retry, error: "boom", workerName: "w",
            workerPID: 42, workerUID: 1000, daemon: "d1")
        let run = TaskRun(
            sequence: 9, taskID: "t", callback: "cb", attempt: 2, scheduledAt: Date(cliMicros: entry.scheduledAt),
            deliveredAt: Date(cliMicros: entry.deliveredAt ?? 0), finishedAt: Date(cliMicros: entry.finishedAt),
            outcome: .failed, then: .retry, error: "boom", workerName: "w", workerPID: 42, workerUID: 1000, daemon: "d1")
        #expect(run.wire == entry)
        #expect(run.lateness == .microseconds(1_250))
        #expect(run.duration == .microseconds(1_998_750))
        let skipped = TaskRun(
            sequence: 1, taskID: "t", callback: "cb", attempt: 0, scheduledAt: Date(cliMicros: 0), deliveredAt: nil,
            finishedAt: Date(cliMicros: 5), outcome: .skipped, then: .nextRun)
        #expect(skipped.wire.workerPID == 0 && skipped.wire.workerUID == .max && skipped.wire.workerName.isEmpty)
        #expect(skipped.lateness == nil && skipped.duration == nil)
    }
}
