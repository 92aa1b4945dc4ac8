import Foundation
import TaskShed
import Testing

/// Argument errors the client reports before sending anything. The scheduler points at a socket that does not
/// exist: had a call tried to connect, it would fail with `.connectionFailed` instead of the usage error.
@Suite("Usage errors")
struct UsageErrorTests {
    let scheduler = Scheduler(socketPath: "/nonexistent/taskshed-usage-test.sock")

    static func isUsage(_ error: any Error, field: String? = nil, mentioning text: String? = nil) -> Bool {
        guard let error = error as? TaskShedError, error.code == .invalidUsage else { return false }
        if let field, error.field != field { return false }
        if let text, !error.message.contains(text) { return false }
        return true
    }

    @Test func fetchWithNeitherIdsNorGroupIsAUsageError() async {
        await #expect { try await scheduler.fetchTasks() } throws: { Self.isUsage($0, mentioning: "neither") }
        await #expect { try await scheduler.pauseTasks() } throws: { Self.isUsage($0, mentioning: "pauseTasks") }
        await #expect { try await scheduler.resumeTasks() } throws: { Self.isUsage($0, mentioning: "resumeTasks") }
        await #expect { try await scheduler.removeTasks() } throws: { Self.isUsage($0, mentioning: "removeTasks") }
    }

    @Test func idsAndGroupTogetherAreAUsageError() async {
        await #expect { try await scheduler.fetchTasks(ids: ["a"], group: "g") } throws: {
            Self.isUsage($0, mentioning: "not both")
        }
        await #expect { try await scheduler.pauseTasks(ids: ["a"], group: "g") } throws: { Self.isUsage($0) }
        await #expect { try await scheduler.resumeTasks(ids: ["a"], group: "g") } throws: { Self.isUsage($0) }
        await #expect { try await scheduler.removeTasks(ids: ["a"], group: "g") } throws: { Self.isUsage($0) }
    }

    @Test func emptyIdListsSendNothing() async throws {
        #expect(try await scheduler.fetchTasks(ids: []) == [])
        #expect(try await scheduler.pauseTasks(ids: []) == 0)
        #expect(try await scheduler.resumeTasks(ids: []) == 0)
        #expect(try await scheduler.removeTasks(ids: []) == 0)
        #expect(try await scheduler.updateExecutionTimes([]) == 0)
        #expect(try await scheduler.addTasks([]) == [])
        #expect(try await scheduler.retryDeadLetters(.ids([])) == 0)
        #expect(try await scheduler.purgeDeadLetters(.ids([])) == 0)
    }

    @Test(arguments: [0, -1, Int(UInt32.max) + 1])
    func maxAttemptsOutOfRangeIsAUsageError(maxAttempts: Int) async {
        await #expect {
            try await scheduler.addTask(callback: "x", maxAttempts: maxAttempts)
        } throws: {
            Self.isUsage($0, field: "tasks[0].max_attempts")
        }
    }

    @Test func maxAttemptsErrorNamesTheTaskIndexInABatch() async {
        let tasks = [ScheduledTask(callback: "a"), ScheduledTask(callback: "b", maxAttempts: -3)]
        await #expect { try await scheduler.addTasks(tasks) } throws: { Self.isUsage($0, field: "tasks[1].max_attempts") }
    }

    @Test func hugeIntervalIsAUsageError() async {
        await #expect {
            try await scheduler.addTask(callback: "x", schedule: .every(.seconds(Int64.max)))
        } throws: {
            Self.isUsage($0, field: "tasks[0].schedule")
        }
    }

    @Test(arguments: [0, -5])
    func listLimitBelowOneIsAUsageError(limit: Int) async {
        await #expect { try await scheduler.listTasks(limit: limit) } throws: { Self.isUsage($0, field: "limit") }
    }

    @Test func workerRejectsBadSettings() {
        #expect { try EventDrivenWorker(callbackMap: [:], concurrency: 0) } throws: { Self.isUsage($0, field: "concurrency") }
        #expect { try PollingWorker(callbackMap: [:], pollingInterval: .zero) } throws: {
            Self.isUsage($0, field: "pollingInterval")
        }
        #expect { try PollingWorker(callbackMap: [:], lease: .seconds(-1)) } throws: { Self.isUsage($0, field: "lease") }
        #expect { try PollingWorker(callbackMap: ["": { _ in }]) } throws: { Self.isUsage($0, field: "callbackMap") }
    }

    @Test func addingACallbackNameTwiceIsAnError() async throws {
        let worker = try PollingWorker(callbackMap: ["a": { _ in }], socketPath: "/nonexistent/x.sock")
        try await worker.addCallback("b") { _ in }
        #expect(worker.callbackNames == ["a", "b"])
        await #expect {
            try await worker.addCallback("a") { _ in }
        } throws: {
            ($0 as? TaskShedError)?.code == .duplicateCallback && ($0 as? TaskShedError)?.message.contains("\"a\"") == true
        }
        await #expect { try await worker.addCallback("b") { _ in } } throws: { ($0 as? TaskShedError)?.code == .duplicateCallback }
        await #expect { try await worker.addCallback("") { _ in } } throws: { Self.isUsage($0) }
        #expect(worker.callbackNames == ["a", "b"])
    }

    @Test func shutdownOfAWorkerNeverStartedReturnsAtOnce() async throws {
        let worker = try EventDrivenWorker(callbackMap: [:], socketPath: "/nonexistent/x.sock")
        #expect(await worker.shutdown(timeout: .seconds(30)) == 0)
    }

    @Test func callsAfterShutdownFailWithShutDown() async {
        let scheduler = Scheduler(socketPath: "/nonexistent/x.sock")
        scheduler.shutdown()
        await #expect { try await scheduler.ping() } throws: { ($0 as? TaskShedError)?.code == .shutDown }
    }
}

@Suite("Errors and values")
struct ErrorAndValueTests {
    @Test func serverCodesKeepTheirProtocolNumbersAndNames() {
        for code in ErrorCode.allKnown {
            let wrapped = TaskShedError.Code(code)
            #expect(wrapped.serverCode == code)
            #expect(wrapped.name == code.name)
            #expect(wrapped.isRetriable == code.isRetriable)
        }
        #expect(TaskShedError.Code.invalidArgument == TaskShedError.Code(.invalidArgument))
        #expect(TaskShedError.Code.connectionFailed.serverCode == nil)
    }

    @Test func clientCodesHaveDistinctNames() {
        let codes: [TaskShedError.Code] = [
            .connectionFailed, .connectionClosed, .invalidUsage, .duplicateCallback, .protocolViolation, .kwargsCoding,
            .shutDown,
        ]
        #expect(Set(codes.map(\.name)).count == codes.count)
        #expect(codes.allSatisfy { $0.serverCode == nil && !$0.name.hasPrefix("CLIENT_") })
        #expect(TaskShedError.Code.connectionClosed.isRetriable)
        #expect(!TaskShedError.Code.invalidUsage.isRetriable)
    }

    @Test func descriptionShowsCodeFieldAndMessage() {
        let error = TaskShedError(.invalidArgument, field: "tasks[0].callback", message: "must not be empty")
        #expect(error.description == "INVALID_ARGUMENT (tasks[0].callback): must not be empty")
        #expect(TaskShedError(.connectionClosed, message: "gone").description == "CONNECTION_CLOSED: gone")
    }

    @Test func randomIdsAre32LowercaseHexDigitsAndDistinct() {
        let ids = (0..<100).map { _ in ScheduledTask.randomID() }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
    }

    /// The default id is a version 7 UUID of the first run time: it sorts by run time, which keeps the tasks a
    /// worker receives together in the daemon's store.
    @Test func defaultIdsAreUUIDv7OfTheRunTime() throws {
        let runAt = Date(timeIntervalSince1970: 1_800_000_000.123_9)
        let id = ScheduledTask(callback: "cb", runAt: runAt).id
        #expect(id.count == 32 && id.allSatisfy { "0123456789abcdef".contains($0) })
        // 48 bits of milliseconds, the version nibble, then the variant bits 0b10.
        #expect(id.prefix(12) == String(1_800_000_000_123, radix: 16).leftPadded(to: 12))
        #expect(Array(id)[12] == "7")
        #expect("89ab".contains(Array(id)[16]))
        let times = (0..<50).map { Date(timeIntervalSince1970: 1_700_000_000 + Double($0 * 7 % 50) * 0.01) }
        let ids = times.map { ScheduledTask.randomID(runAt: $0) }
        #expect(Set(ids).count == 50)
        #expect(ids.sorted() == zip(times, ids).sorted { $0.0 < $1.0 }.map(\.1))
        // Outside 1970 ... 10889: clamped, still well formed.
        #expect(ScheduledTask.randomID(runAt: Date(timeIntervalSince1970: -5)).hasPrefix("000000000000"))
        #expect(ScheduledTask.randomID(runAt: .distantFuture).count == 32)
        #expect(ScheduledTask(callback: "cb", id: "mine").id == "mine")
    }

    /// Run times outside what 48 bits of milliseconds hold (and NaN) are clamped; the id stays well formed.
    @Test func defaultIdsClampRunTimesOutsideTheirRange() {
        let edges: [(Double, String)] = [
            (0, "000000000000"), (-0.0005, "000000000000"), (-1e300, "000000000000"), (.nan, "000000000000"),
            (-.infinity, "000000000000"), (1e15, "ffffffffffff"), (.infinity, "ffffffffffff"), (0.001, "000000000001"),
        ]
        for (seconds, prefix) in edges {
            let id = ScheduledTask.randomID(runAt: Date(timeIntervalSince1970: seconds))
            #expect(id.count == 32 && Array(id)[12] == "7" && "89ab".contains(Array(id)[16]), "\(seconds): \(id)")
            #expect(id.hasPrefix(prefix), "\(seconds): \(id)")
        }
    }

    @Test func taskDefaultsFollowTheOriginal() {
        let before = Date()
        let task = ScheduledTask(callback: "cb")
        #expect(task.schedule == .once)
        #expect(!task.schedule.isRecurring)
        #expect(task.kwargs == Kwargs())
        #expect(task.coalesce)
        #expect(!task.paused)
        #expect(task.group == nil)
        #expect(task.maxAttempts == nil)
        #expect(task.runAt >= before && task.runAt <= Date())
        #expect(TaskSchedule.every(.seconds(3)).interval == .seconds(3))
    }

    @Test func pollingIntervalDefaultsToThreeSecondsAsInTheOriginal() {
        #expect(PollingWorker.defaultPollingInterval == .seconds(3))
    }

    @Test func incorrectCallbackNameErrorNamesTheCallbackAndTask() {
        let error = IncorrectCallbackNameError(callback: "nope", taskID: "t1")
        #expect(error.description.contains("IncorrectCallbackNameError"))
        #expect(error.description.contains("\"nope\""))
        #expect(error.description.contains("t1"))
    }
}

private extension String {
    /// The string with zeros in front, up to `count` characters.
    func leftPadded(to count: Int) -> String { String(repeating: "0", count: Swift.max(0, count - self.count)) + self }
}
