import Foundation
import TaskShed
import TaskShedTestSupport
import Testing

/// The scheduler API against a real taskshedd (one fresh daemon per test).
@Suite("Scheduler end to end", .timeLimit(.minutes(2)))
struct SchedulerEndToEndTests {
    let daemon: DaemonProcess
    let scheduler: Scheduler

    init() throws {
        daemon = try DaemonProcess()
        scheduler = Scheduler(socketPath: daemon.socketPath, clientName: "SchedulerEndToEndTests")
    }

    static func field(_ error: any Error) -> String? { (error as? TaskShedError)?.field }
    static func code(_ error: any Error) -> TaskShedError.Code? { (error as? TaskShedError)?.code }

    @Test func addedTaskIsFetchedWithEveryField() async throws {
        let runAt = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3600).rounded())
        let result = try await scheduler.addTask(
            callback: "send_email", runAt: runAt, kwargs: ["to": "ada@example.com", "n": 2],
            schedule: .every(.milliseconds(2500)), id: "task-1", group: "mail", paused: true, coalesce: false,
            maxAttempts: 5)
        #expect(result == TaskAddResult(id: "task-1", outcome: .inserted))

        let fetched = try await scheduler.fetchTasks(ids: ["task-1", "no-such-task"])
        let task = try #require(fetched.first)
        #expect(fetched.count == 1)
        #expect(task.id == "task-1")
        #expect(task.callback == "send_email")
        #expect(task.runAt == runAt)
        #expect(task.schedule == .every(.milliseconds(2500)))
        #expect(task.kwargs["to"] == "ada@example.com")
        #expect(task.kwargs["n"] == 2)
        #expect(task.group == "mail")
        #expect(task.paused)
        #expect(task.pausedAt != nil)
        #expect(!task.coalesce)
        #expect(task.maxAttempts == 5)
        #expect(task.state == .scheduled)
        #expect(task.attempt == 0)
        #expect(task.createdAt != nil)
        #expect(task.leaseDeadline == nil)
    }

    @Test func addTaskUsesTheOriginalsDefaults() async throws {
        let before = Date()
        let result = try await scheduler.addTask(callback: "cb")
        #expect(result.outcome == .inserted)
        #expect(result.id.count == 32)
        let task = try #require(try await scheduler.fetchTasks(ids: [result.id]).first)
        #expect(task.schedule == .once)
        #expect(task.kwargs == Kwargs())
        #expect(task.coalesce)
        #expect(!task.paused)
        #expect(task.group == nil)
        #expect(task.maxAttempts == 3)
        #expect(task.runAt.timeIntervalSince(before) > -1)
    }

    @Test func replaceExistingReplacesOrKeeps() async throws {
        try await scheduler.addTask(callback: "first", id: "same")
        let replaced = try await scheduler.addTask(callback: "second", id: "same")
        #expect(replaced.outcome == .replaced)
        #expect(try await scheduler.fetchTasks(ids: ["same"]).first?.callback == "second")

        let kept = try await scheduler.addTask(callback: "third", id: "same", replaceExisting: false)
        #expect(kept.outcome == .kept)
        #expect(try await scheduler.fetchTasks(ids: ["same"]).first?.callback == "second")
    }

    @Test func addTasksStoresABatchInOneRequest() async throws {
        let start = Date().addingTimeInterval(3600)
        let tasks = (0..<500).map { index in
            ScheduledTask(callback: "batch", runAt: start.addingTimeInterval(Double(index)), kwargs: ["i": .int(Int64(index))],
                          id: "b\(index)", group: "batch")
        }
        let results = try await scheduler.addTasks(tasks)
        #expect(results.map(\.id) == tasks.map(\.id))
        #expect(results.allSatisfy { $0.outcome == .inserted })
        #expect(try await scheduler.fetchTasks(group: "batch").count == 500)

        // replaceExisting false: existing ids are kept, new ones inserted.
        let again = try await scheduler.addTasks(
            [ScheduledTask(callback: "x", id: "b0"), ScheduledTask(callback: "x", id: "new")], replaceExisting: false)
        #expect(again.map(\.outcome) == [.kept, .inserted])
    }

    @Test func pauseResumeAndRemoveByIdsAndByGroup() async throws {
        let later = Date().addingTimeInterval(3600)
        for index in 0..<4 {
            try await scheduler.addTask(callback: "cb", runAt: later, id: "g\(index)", group: "grp")
        }
        try await scheduler.addTask(callback: "cb", runAt: later, id: "solo")

        #expect(try await scheduler.pauseTasks(ids: ["g0", "g1", "missing"]) == 2)
        let paused = try await scheduler.fetchTasks(ids: ["g0", "g2"])
        #expect(paused.first { $0.id == "g0" }?.paused == true)
        #expect(paused.first { $0.id == "g0" }?.pausedAt != nil)
        #expect(paused.first { $0.id == "g2" }?.paused == false)

        #expect(try await scheduler.pauseTasks(group: "grp") >= 2)
        #expect(try await scheduler.fetchTasks(group: "grp").allSatisfy(\.paused))
        #expect(try await scheduler.resumeTasks(ids: ["g3"]) == 1)
        #expect(try await scheduler.resumeTasks(group: "grp") >= 3)
        let resumed = try await scheduler.fetchTasks(group: "grp")
        #expect(resumed.allSatisfy { !$0.paused && $0.pausedAt == nil })

        #expect(try await scheduler.removeTasks(ids: ["g0", "missing"]) == 1)
        #expect(try await scheduler.removeTasks(group: "grp") == 3)
        #expect(try await scheduler.fetchTasks(group: "grp").isEmpty)
        #expect(try await scheduler.fetchTasks(ids: ["solo"]).count == 1)
    }

    @Test func updateExecutionTimesIsAllOrNothing() async throws {
        let later = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3600).rounded())
        try await scheduler.addTask(callback: "cb", runAt: later, id: "u1")
        try await scheduler.addTask(callback: "cb", runAt: later, id: "u2")
        let newTime = later.addingTimeInterval(60)
        #expect(try await scheduler.updateExecutionTimes([(id: "u1", runAt: newTime), (id: "u2", runAt: newTime)]) == 2)
        #expect(try await scheduler.fetchTasks(ids: ["u1"]).first?.runAt == newTime)

        await #expect {
            try await scheduler.updateExecutionTimes([(id: "u1", runAt: later), (id: "ghost", runAt: later)])
        } throws: { error in
            Self.code(error) == .taskNotFound && Self.field(error) == "updates[1].id"
        }
        // Nothing changed.
        #expect(try await scheduler.fetchTasks(ids: ["u1"]).first?.runAt == newTime)
    }

    @Test func daemonValidationErrorsNameTheField() async throws {
        await #expect { try await scheduler.addTask(callback: "") } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].callback"
        }
        await #expect { try await scheduler.addTask(callback: "cb", schedule: .every(.zero)) } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].schedule"
        }
        await #expect { try await scheduler.addTask(callback: "cb", id: String(repeating: "x", count: 256)) } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].id"
        }
        await #expect { try await scheduler.addTask(callback: "cb", maxAttempts: 1001) } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].max_attempts"
        }
        await #expect { try await scheduler.addTask(callback: "cb", group: "") } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].group"
        }
        await #expect {
            try await scheduler.addTasks([ScheduledTask(callback: "a", id: "dup"), ScheduledTask(callback: "b", id: "dup")])
        } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[1].id"
        }
        let bigKwargs = Kwargs(["blob": .string(String(repeating: "k", count: 70_000))])
        await #expect { try await scheduler.addTask(callback: "cb", kwargs: bigKwargs) } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "tasks[0].kwargs"
        }
        // A failed batch stores nothing.
        #expect(try await scheduler.fetchTasks(ids: ["dup"]).isEmpty)
        // The connection stays usable after errors.
        _ = try await scheduler.ping()
    }

    @Test func listTasksPagesInRunAtOrderWithFilters() async throws {
        let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3600).rounded())
        var tasks: [ScheduledTask] = []
        for index in 0..<25 {
            tasks.append(
                ScheduledTask(
                    callback: index % 2 == 0 ? "even" : "odd", runAt: base.addingTimeInterval(Double(25 - index)),
                    id: String(format: "l%02d", index), group: index < 10 ? "first" : "rest", paused: index == 24))
        }
        try await scheduler.addTasks(tasks)

        var pages: [[String]] = []
        var cursor: TaskListCursor?
        repeat {
            let page = try await scheduler.listTasks(limit: 10, cursor: cursor)
            pages.append(page.tasks.map(\.id))
            cursor = page.nextCursor
        } while cursor != nil
        #expect(pages.map(\.count) == [10, 10, 5])
        let expectedOrder = tasks.sorted { $0.runAt < $1.runAt }.map(\.id)
        #expect(pages.flatMap { $0 } == expectedOrder)

        var streamed: [String] = []
        for try await task in scheduler.allTasks(pageSize: 7) { streamed.append(task.id) }
        #expect(streamed == expectedOrder)

        let firstGroup = try await scheduler.listTasks(filter: TaskListFilter(group: "first"))
        #expect(Set(firstGroup.tasks.map(\.id)) == Set((0..<10).map { String(format: "l%02d", $0) }))
        #expect(firstGroup.nextCursor == nil)
        let odd = try await scheduler.listTasks(filter: TaskListFilter(callback: "odd"))
        #expect(odd.tasks.count == 12 && odd.tasks.allSatisfy { $0.callback == "odd" })
        let paused = try await scheduler.listTasks(filter: TaskListFilter(state: .paused))
        #expect(paused.tasks.map(\.id) == ["l24"])
        let soon = try await scheduler.listTasks(filter: TaskListFilter(dueBefore: base.addingTimeInterval(3)))
        #expect(Set(soon.tasks.map(\.id)) == ["l23", "l24"])
        let late = try await scheduler.listTasks(filter: TaskListFilter(dueAfter: base.addingTimeInterval(24)))
        #expect(Set(late.tasks.map(\.id)) == ["l00", "l01"])

        await #expect { try await scheduler.listTasks(limit: 1_000_000) } throws: {
            Self.code($0) == .invalidArgument && Self.field($0) == "limit"
        }
    }

    @Test func statsAndPingDescribeTheDaemon() async throws {
        let later = Date().addingTimeInterval(3600)
        try await scheduler.addTask(callback: "a", runAt: later, id: "s1")
        try await scheduler.addTask(callback: "a", runAt: later.addingTimeInterval(10), id: "s2", paused: true)
        try await scheduler.addTask(callback: "b", runAt: Date().addingTimeInterval(-5), id: "s3")

        let stats = try await scheduler.stats()
        #expect(stats.pending == 1)
        #expect(stats.paused == 1)
        #expect(stats.due == 1)
        #expect(stats.leased == 0 && stats.dead == 0)
        #expect(stats.waitingForWorker == 1)
        #expect(stats.connections >= 1)
        #expect(stats.callbacks.map(\.name) == ["a", "b"])
        #expect(stats.callbacks.first?.scheduled == 2)
        #expect(stats.startedAt <= stats.serverTime)
        #expect(!stats.serverVersion.isEmpty)

        // The embedded store: one daemon, the one answering, holding no lease.
        let daemons = try await scheduler.daemons()
        #expect(daemons.count == 1)
        #expect(daemons.first?.isThisDaemon == true && daemons.first?.leased == 0)
        #expect(daemons.first?.pid == Int(daemon.pid))

        let pong = try await scheduler.ping()
        #expect(pong.nextWakeup != nil)
        #expect(pong.roundTrip > .zero)
        #expect(abs(pong.serverTime.timeIntervalSinceNow) < 60)
    }

    @Test func aCallWhileTheDaemonIsDownFailsFastAndTheNextOneReconnects() async throws {
        try await scheduler.addTask(callback: "cb", runAt: Date().addingTimeInterval(3600), id: "persisted")
        try daemon.stop()
        await #expect {
            try await scheduler.ping()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            // Either the old connection's close was seen (closed), or the next connect found nobody.
            return error.code == .connectionFailed || error.code == .connectionClosed || error.code == .shuttingDown
        }
        await #expect {
            try await scheduler.ping()
        } throws: { error in
            (error as? TaskShedError)?.message == "cannot connect to \(daemon.socketPath): is taskshedd running?"
        }
        try daemon.restart()
        #expect(try await scheduler.fetchTasks(ids: ["persisted"]).count == 1)
    }

    @Test func concurrentFirstCallsShareOneConnection() async throws {
        let baseline = try await scheduler.stats().connections
        let other = Scheduler(socketPath: daemon.socketPath)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask {
                    try await other.addTask(callback: "c", runAt: Date().addingTimeInterval(3600), id: "c\(index)")
                }
            }
            try await group.waitForAll()
        }
        let stats = try await scheduler.stats()
        #expect(stats.pending == 50)
        #expect(stats.connections == baseline + 1)
        other.shutdown()
    }
}
