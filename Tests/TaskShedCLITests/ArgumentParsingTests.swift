import ArgumentParser
import Foundation
import TaskShed
import Testing

@testable import TaskShedCLI

@Suite("Argument parsing")
struct ArgumentParsingTests {
    let context = TimeContext(nowMicros: utc(2026, 3, 8, 12), timeZone: zone("America/New_York"))

    func parse<C: ParsableCommand>(_ arguments: [String], as type: C.Type) throws -> C {
        let command = try TaskShedCtl.parseAsRoot(arguments)
        return try #require(command as? C, "parsed as \(Swift.type(of: command))")
    }

    @Test func addTakesEveryOption() throws {
        let add = try parse(
            [
                "add", "backup", "--at", "09:15", "--every", "1d", "--kwargs", #"{"path":"/srv"}"#, "--id", "nightly",
                "--group", "ops", "--paused", "--no-coalesce", "--keep-existing", "--max-attempts", "5",
                "--socket", "/tmp/x.sock", "--json",
            ], as: Add.self)
        #expect(add.callback == "backup")
        #expect(add.keepExisting)
        #expect(add.global.socketPath == "/tmp/x.sock")
        #expect(add.global.json)
        let task = try add.makeTask(context: context) { [] }
        #expect(task.id == "nightly")
        #expect(task.runAt.micros == utc(2026, 3, 8, 13, 15))
        #expect(task.schedule == .every(.seconds(86_400)))
        #expect(task.kwargs["path"] == .string("/srv"))
        #expect(task.group == "ops")
        #expect(task.paused)
        #expect(!task.coalesce)
        #expect(task.maxAttempts == 5)
    }

    @Test func addDefaultsToNowOnceAndARandomID() throws {
        let task = try parse(["add", "say-hello"], as: Add.self).makeTask(context: context) { [] }
        #expect(task.runAt.micros == context.nowMicros)
        #expect(task.schedule == .once)
        #expect(task.id.count == 32)
        #expect(task.coalesce)
        #expect(task.maxAttempts == nil)
        #expect(task.kwargs.description == "{}")
    }

    @Test func addBuildsACalendarScheduleWithEveryPolicy() throws {
        let add = try parse(
            [
                "add", "backup", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--gap", "at-change", "--fold", "both",
                "--catch-up", "all", "--catch-up-max", "4", "--catch-up-window", "2h30m", "--overlap", "queue-one",
                "--jitter", "90s", "--jitter-fixed", "--at", "2026-03-09 00:00",
            ], as: Add.self)
        let task = try add.makeTask(context: context) { [] }
        #expect(task.schedule == .calendar(CalendarSchedule(
            syntax: .cron, expression: "30 2 * * *", timeZone: "Europe/Berlin", gap: .atChange, fold: .both,
            catchUp: .all, catchUpMaximum: 4, catchUpWindowMicros: 9_000_000_000, overlap: .queueOne,
            jitterMicros: 90_000_000, jitterMode: .fixed)))
        // --at is "not before": the daemon picks the first occurrence at or after it.
        #expect(task.runAt.micros == utc(2026, 3, 9, 4))
        // systemd syntax, the local zone and the documented defaults.
        let plain = try parse(["add", "standup", "--calendar", "Mon..Fri 09:00"], as: Add.self).makeTask(context: context) { [] }
        #expect(plain.schedule == .calendar(CalendarSchedule(
            syntax: .systemd, expression: "Mon..Fri 09:00", timeZone: "America/New_York")))
        let all = try parse(["add", "x", "--cron", "@hourly", "--catch-up", "all"], as: Add.self).makeTask(context: context) { [] }
        guard case .calendar(let calendar) = all.schedule else {
            Issue.record("not a calendar schedule: \(all.schedule)")
            return
        }
        #expect(calendar.catchUpMaximum == 10)
    }

    @Test(arguments: [
        (["add", "x", "--cron", "@daily", "--every", "1d"], "give one of --every, --cron and --calendar"),
        (["add", "x", "--cron", "@daily", "--calendar", "daily"], "give one of --every, --cron and --calendar"),
        (["add", "x", "--tz", "UTC"], "--tz applies to calendar tasks; add --cron or --calendar"),
        (["add", "x", "--every", "1h", "--overlap", "skip"], "--overlap applies to calendar tasks"),
        (["add", "x", "--cron", "@daily", "--no-coalesce"], "--no-coalesce applies to interval tasks (--every)"),
        (["add", "x", "--cron", "@daily", "--catch-up-max", "3"], "--catch-up-max applies to --catch-up all"),
        (["add", "x", "--cron", "@daily", "--catch-up", "all", "--catch-up-max", "1001"],
         "--catch-up-max must be between 1 and 1000, not 1001"),
        (["add", "x", "--cron", "@daily", "--jitter-fixed"], "--jitter-fixed needs --jitter DURATION"),
        (["add", "x", "--cron", "@daily", "--overlap", "sometimes"], "sometimes"),
    ])
    func calendarOptionsAreCheckedTogether(_ arguments: [String], _ message: String) {
        do {
            _ = try TaskShedCtl.parseAsRoot(arguments)
            Issue.record("parsed \(arguments)")
        } catch {
            let text = TaskShedCtl.message(for: error)
            #expect(text.contains(message), "\(text)")
        }
    }

    @Test func addReadsKwargsFromStandardInputAndDelaysWithIn() throws {
        let add = try parse(["add", "notify", "--in", "5m", "--kwargs", "-"], as: Add.self)
        let task = try add.makeTask(context: context) { Array(#"{"to": "ops"}"#.utf8) + [0x0A] }
        #expect(task.runAt.micros == context.nowMicros + 300_000_000)
        #expect(task.kwargs["to"] == .string("ops"))
    }

    @Test func addReportsBadTimesWithTheOption() throws {
        let add = try parse(["add", "x", "--at", "tomorrow"], as: Add.self)
        #expect {
            _ = try add.makeTask(context: context) { [] }
        } throws: { error in
            guard let error = error as? CLIError else { return false }
            return error.status == .usage && error.message.hasPrefix("--at: invalid time 'tomorrow'")
        }
        let every = try parse(["add", "x", "--every", "0s"], as: Add.self)
        #expect(throws: CLIError.self) { _ = try every.makeTask(context: context) { [] } }
    }

    @Test(arguments: [
        ["add", "x", "--at", "10:00", "--in", "5m"],
        ["add", "x", "--max-attempts", "0"],
        ["add", "x", "--no-coalesce"],
        ["add"],
        ["list", "--state", "sleeping"],
        ["list", "--limit", "0"],
        ["list", "--all", "--cursor", "00ff"],
        ["list", "--cursor", "xyz"],
        ["pause"],
        ["pause", "a", "--group", "g"],
        ["retry"],
        ["purge", "a", "--all"],
        ["reschedule", "only-id"],
        ["worker"],
        ["worker", "--run", "no-equals-sign"],
        ["worker", "--run", "=cmd"],
        ["worker", "--run", "a="],
        ["worker", "--run", "a=x", "--run", "a=y"],
        ["worker", "--run", "a=x", "--poll", "0s"],
        ["worker", "--run", "a=x", "--timeout", "soon"],
        ["worker", "--run", "a=x", "--concurrency", "0"],
        ["frobnicate"],
    ])
    func rejectsBadUsage(_ arguments: [String]) {
        #expect(throws: (any Error).self) { _ = try TaskShedCtl.parseAsRoot(arguments) }
    }

    @Test func usageErrorsExitWith64() {
        do {
            _ = try TaskShedCtl.parseAsRoot(["add", "x", "--at", "10:00", "--in", "5m"])
            Issue.record("parsed")
        } catch {
            #expect(TaskShedCtl.exitCode(for: error).rawValue == ExitStatus.usage.rawValue)
            #expect(TaskShedCtl.message(for: error).contains("either --at or --in"))
        }
    }

    @Test func listBuildsItsFilter() throws {
        let list = try parse(
            [
                "list", "--group", "g", "--state", "due", "--callback", "cb", "--due-after", "2026-03-08 00:00",
                "--due-before", "+1h", "--limit", "5", "--cursor", "00ff",
            ], as: List.self)
        let filter = try list.makeFilter(context: context)
        #expect(filter.group == "g")
        #expect(filter.state == .due)
        #expect(filter.callback == "cb")
        #expect(filter.dueAfter?.micros == utc(2026, 3, 8, 5))
        #expect(filter.dueBefore?.micros == context.nowMicros + 3_600_000_000)
        #expect(list.paging.limit == 5)
        #expect(list.paging.cursor.flatMap(CursorText.decode) == [0x00, 0xFF])
    }

    @Test func bulkCommandsTakeIdsOrAGroup() throws {
        #expect(try parse(["pause", "a", "b"], as: Pause.self).selection.ids == ["a", "b"])
        #expect(try parse(["resume", "--group", "g"], as: Resume.self).selection.group == "g")
        #expect(try parse(["remove", "x"], as: Remove.self).selection.ids == ["x"])
        #expect(try parse(["retry", "--all"], as: Retry.self).options.selection == .all)
        #expect(try parse(["purge", "--group", "g"], as: Purge.self).options.selection == .group("g"))
        #expect(try parse(["retry", "a"], as: Retry.self).options.selection == .ids(["a"]))
        let reschedule = try parse(["reschedule", "id-1", "+10m"], as: Reschedule.self)
        #expect(reschedule.id == "id-1" && reschedule.time == "+10m")
    }

    @Test func statusIsAnAliasOfStats() throws {
        _ = try parse(["status", "--json"], as: StatsCommand.self)
        _ = try parse(["stats"], as: StatsCommand.self)
        _ = try parse(["ping", "--socket", "/x"], as: Ping.self)
        _ = try parse(["failed", "--all"], as: Failed.self)
        _ = try parse(["show", "abc"], as: Show.self)
    }

    @Test func workerSplitsCallbacksAtTheFirstEquals() throws {
        let worker = try parse(
            ["worker", "--run", "a=echo x=1", "--run", "b=true", "--concurrency", "2", "--poll", "500ms", "--timeout", "1m"],
            as: Worker.self)
        #expect(try worker.run.map(CommandCallback.parse) == [
            CommandCallback(name: "a", command: "echo x=1"), CommandCallback(name: "b", command: "true"),
        ])
        #expect(worker.concurrency == 2)
        #expect(worker.poll == "500ms")
    }

    @Test func workerDurationsTakeDecimals() throws {
        let worker = try parse(
            ["worker", "--run", "a=x", "--poll", "0.2s", "--timeout", "1.5m", "--lease", "2.5s", "--shutdown-timeout", "0.5s"],
            as: Worker.self)
        #expect(worker.poll == "0.2s")
        let add = try parse(["add", "x", "--every", "1.5h", "--in", "0.5s"], as: Add.self)
        let task = try add.makeTask(context: context) { [] }
        #expect(task.runAt.micros == context.nowMicros + 500_000)
        #expect(task.schedule == .every(.seconds(5400)))
    }

    @Test func globalOptionsWorkBeforeAndAfterTheSubcommand() throws {
        let before = try parse(["--socket", "/x.sock", "--json", "list", "--limit", "3"], as: List.self)
        #expect(before.global.socketPath == "/x.sock")
        #expect(before.global.json)
        let after = try parse(["pause", "a", "--socket", "/y.sock"], as: Pause.self)
        #expect(after.global.socketPath == "/y.sock")
        #expect(!after.global.json)
    }

    @Test func socketDefaultsToTheSharedRule() throws {
        let ping = try parse(["ping"], as: Ping.self)
        let expected = Scheduler.defaultSocketPath()
        #expect(ping.global.socketPath == expected)
    }
}

@Suite("Help text")
struct HelpTextTests {
    static let subcommands: [any ParsableCommand.Type] = [
        Add.self, List.self, Show.self, Pause.self, Resume.self, Remove.self, Reschedule.self, Failed.self,
        Retry.self, Purge.self, StatsCommand.self, Worker.self, Ping.self, CalendarCommand.self,
    ]

    @Test func rootHelpListsEverySubcommandAndTheExitStatuses() {
        let help = TaskShedCtl.helpMessage(columns: 200)
        for name in ["add", "list", "show", "pause", "resume", "remove", "reschedule", "failed", "retry", "purge",
            "stats, status", "worker", "ping", "calendar"]
        {
            #expect(help.contains("  \(name) "), "root help lacks \(name)")
        }
        for status in ExitStatus.allCases where status != .success {
            #expect(help.contains("\(status.rawValue) "), "root help lacks exit status \(status.rawValue)")
        }
        #expect(help.contains("Examples:"))
    }

    @Test(arguments: subcommands.indices)
    func everySubcommandHasExamplesAndDocumentsItsOptions(_ index: Int) {
        let command = Self.subcommands[index]
        let help = TaskShedCtl.helpMessage(for: command, columns: 200)
        let name = command._commandName
        #expect(help.contains("Examples:\n  taskshedctl \(name)"), "\(name) help has no examples")
        #expect(help.contains("--socket <path>"))
        #expect(!help.contains("No help available"))
    }

    @Test func timeHelpListsTheFormatsAndTheDaylightSavingRule() {
        let help = TaskShedCtl.helpMessage(for: Add.self, columns: 200)
        #expect(help.contains("RFC 3339"))
        #expect(help.contains("moves forward by the gap"))
        #expect(help.contains("--kwargs <json>"))
        let worker = TaskShedCtl.helpMessage(for: Worker.self, columns: 200)
        for variable in ["TASKSHED_TASK_ID", "TASKSHED_CALLBACK", "TASKSHED_ATTEMPT", "TASKSHED_KWARGS", "TASKSHED_RUN_AT"] {
            #expect(worker.contains(variable))
        }
    }
}
