import Foundation
import TaskShedProtocol
import Testing

@testable import TaskShedCLI

@Suite("History formatting")
struct HistoryFormattingTests {
    let now = utc(2026, 11, 29, 10, 0)
    var context: TimeContext { TimeContext(nowMicros: now, timeZone: zone("Europe/Berlin")) }

    var succeeded: RunEntry {
        RunEntry(
            seq: 12, taskID: "nightly", callback: "backup", attempt: 1, scheduledAt: now - 60_000_000,
            deliveredAt: now - 59_998_750, finishedAt: now - 57_500_000, outcome: .succeeded, then: .nextRun,
            workerName: "taskshedctl worker", workerPID: 4242, workerUID: 1000, daemon: "host-a")
    }

    var failed: RunEntry {
        RunEntry(
            seq: 11, taskID: "f1", callback: "flaky", attempt: 2, scheduledAt: now - 120_000_000,
            deliveredAt: now - 119_999_915, finishedAt: now - 119_000_000, outcome: .failed, then: .deadLettered,
            error: "\nCommandFailed: exit status 3: disk full\nmore detail", workerName: "", workerPID: 77,
            workerUID: 0, daemon: "host-a")
    }

    var skipped: RunEntry {
        RunEntry(
            seq: 10, taskID: "cal", callback: "report", attempt: 0, scheduledAt: now - 3_600_000_000, deliveredAt: nil,
            finishedAt: now - 180_000_000, outcome: .skipped, then: .nextRun, error: "catch-up skip: 2 missed",
            daemon: "host-a")
    }

    @Test func tableListsRunsNewestFirstWithLocalTimes() {
        #expect(
            HistoryFormatting.table([succeeded, failed, skipped], context: context) == """
                FINISHED             TASK     CALLBACK  ATTEMPT  OUTCOME    THEN        LATE  DURATION  WORKER                   ERROR
                2026-11-29 10:59:02  nightly  backup          1  succeeded  next run  1.25ms     2.50s  taskshedctl worker/4242  -
                2026-11-29 10:58:01  f1       flaky           2  failed     dead        85us    1000ms  pid 77                   CommandFailed: exit status 3: disk full
                2026-11-29 10:57:00  cal      report          0  skipped    next run       -         -  -                        catch-up skip: 2 missed

                """)
    }

    @Test func aNarrowTerminalCutsTheErrorThenTheWorker() {
        let wide = HistoryFormatting.table([succeeded, failed], context: context)
        let widest = wide.split(separator: "\n").map(\.count).max() ?? 0
        let fitted = HistoryFormatting.table([succeeded, failed], context: context, width: widest - 10)
        let lines = fitted.split(separator: "\n")
        #expect(lines.allSatisfy { $0.count <= widest - 10 }, "\(fitted)")
        #expect(lines[2].hasSuffix("  CommandFailed: exit status 3…"), "\(fitted)")
        #expect(lines[1].contains("taskshedctl worker/4242"))
        // Narrower than the fixed columns allow: ERROR and WORKER stop at their floors, the rest stays whole.
        let tiny = HistoryFormatting.table([succeeded, failed], context: context, width: 40)
        #expect(tiny.contains("2026-11-29 10:59:02  nightly  backup"))
        #expect(tiny.contains("tasksh…/4242"), "the pid stays: \(tiny)")
        #expect(tiny.contains("CommandFailed: …"), "\(tiny)")
    }

    @Test func jsonHasEveryFieldInItsDocumentedOrder() {
        let object = HistoryFormatting.json(failed)
        #expect(
            object.render(indent: nil) == #"{"seq":11,"task_id":"f1","callback":"flaky","attempt":2,"outcome":"failed","#
                + #""then":"dead_lettered","failure":true,"scheduled_at":"2026-11-29T09:58:00.000000Z","#
                + #""scheduled_at_us":\#(now - 120_000_000),"delivered_at":"2026-11-29T09:58:00.000085Z","#
                + #""delivered_at_us":\#(now - 119_999_915),"finished_at":"2026-11-29T09:58:01.000000Z","#
                + #""finished_at_us":\#(now - 119_000_000),"lateness_us":85,"duration_us":999915,"#
                + #""error":"\nCommandFailed: exit status 3: disk full\nmore detail","worker_name":null,"#
                + #""worker_pid":77,"worker_uid":0,"daemon":"host-a"}"#)
        let none = HistoryFormatting.json(skipped).render(indent: nil)
        #expect(none.contains(#""delivered_at":null,"delivered_at_us":null"#))
        #expect(none.contains(#""lateness_us":null,"duration_us":null"#))
        #expect(none.contains(#""worker_name":null,"worker_pid":null,"worker_uid":null"#))
        #expect(none.contains(#""outcome":"skipped","then":"next_run","failure":false"#))
    }

    @Test(arguments: [
        (RunOutcome.succeeded, "succeeded", false), (.failed, "failed", true), (.leaseExpired, "lease_expired", true),
        (.workerDisconnected, "worker_disconnected", true), (.released, "released", false), (.skipped, "skipped", false),
    ])
    func outcomesKeepTheProtocolsNames(_ outcome: RunOutcome, _ name: String, _ failure: Bool) {
        #expect(HistoryFormatting.outcomeName(outcome) == name)
        var run = succeeded
        run.outcome = outcome
        #expect(HistoryFormatting.json(run).render(indent: nil).contains(#""failure":\#(failure)"#))
    }

    @Test func lastRunsSectionIsIndentedUnderTheTask() {
        #expect(
            HistoryFormatting.lastRuns([succeeded, failed], context: context) == """

                Last runs:
                  FINISHED                          ATTEMPT  OUTCOME    THEN        LATE  DURATION  WORKER                   ERROR
                  2026-11-29 10:59:02 (57s ago)           1  succeeded  next run  1.25ms     2.50s  taskshedctl worker/4242  -
                  2026-11-29 10:58:01 (1m 59s ago)        2  failed     dead        85us    1000ms  pid 77                   CommandFailed: exit status 3: disk full

                """)
        #expect(HistoryFormatting.lastRuns([], context: context) == "\nLast runs: none recorded\n")
    }

    func record(
        state: TaskState = .scheduled, attempt: UInt32 = 0, lastRunAt: Int64? = nil, lastFailureAt: Int64? = nil
    ) -> TaskRecord {
        TaskRecord(
            id: "t", callback: "cb", runAt: now, schedule: .interval(micros: 60_000_000), kwargs: [], group: nil,
            paused: false, pausedAt: nil, coalesce: true, state: state, attempt: attempt, maxAttempts: 3,
            leaseDeadline: nil, lastError: nil, createdAt: now - 600_000_000, lastRunAt: lastRunAt,
            lastFailureAt: lastFailureAt)
    }

    @Test func listsLastOutcomeComesFromTheRecord() {
        #expect(HistoryFormatting.lastOutcome(of: record()) == "-")
        #expect(HistoryFormatting.lastOutcome(of: record(lastRunAt: now - 60_000_000)) == "ok")
        // A failure older than the last run: a later run succeeded.
        #expect(HistoryFormatting.lastOutcome(of: record(lastRunAt: now - 60_000_000, lastFailureAt: now - 120_000_000)) == "ok")
        // A recurring task that skipped a failed occurrence: failed after its last delivery, attempt back to 0.
        #expect(HistoryFormatting.lastOutcome(of: record(lastRunAt: now - 60_000_000, lastFailureAt: now - 59_000_000)) == "failed")
        // A retry waiting or running.
        #expect(HistoryFormatting.lastOutcome(of: record(attempt: 1, lastRunAt: now - 1, lastFailureAt: now)) == "failed")
        #expect(HistoryFormatting.lastOutcome(of: record(state: .leased, attempt: 2, lastRunAt: now)) == "failed")
        // Running its first attempt: the previous run is not in the record.
        #expect(HistoryFormatting.lastOutcome(of: record(state: .leased, attempt: 1, lastRunAt: now)) == "-")
        #expect(HistoryFormatting.lastOutcome(of: record(state: .dead, attempt: 3, lastRunAt: now - 2, lastFailureAt: now)) == "dead")
        #expect(TaskFormatting.json(record(lastRunAt: now - 1), nowMicros: now).render(indent: nil).hasSuffix(#","last_outcome":"ok"}"#))
        #expect(TaskFormatting.json(record(), nowMicros: now).render(indent: nil).hasSuffix(#","last_outcome":null}"#))
    }

    @Test func listTableCutsScheduleAndGroupOnANarrowTerminal() {
        let task = TaskRecord(
            id: "berlin-backup", callback: "backup", runAt: now + 60_000_000,
            schedule: .calendar(CalendarSchedule(syntax: .cron, expression: "30 2 * * 1-5", timeZone: "Europe/Berlin")),
            kwargs: [], group: "nightly-maintenance", paused: false, pausedAt: nil, coalesce: true, state: .scheduled,
            attempt: 0, maxAttempts: 0, leaseDeadline: nil, lastError: nil, createdAt: now, lastRunAt: nil,
            lastFailureAt: nil)
        let whole = TaskFormatting.table([task], context: context)
        #expect(whole.contains("cron 30 2 * * 1-5 Europe/Berlin  nightly-maintenance"))
        let narrow = TaskFormatting.table([task], context: context, width: 95)
        #expect(narrow.split(separator: "\n").allSatisfy { $0.count <= 95 }, "\(narrow)")
        // GROUP gives up its room first (down to its floor), then SCHEDULE.
        #expect(narrow.contains("  cron 30 2 * * 1…  nightly…\n"), "\(narrow)")
        #expect(narrow.contains("berlin-backup  backup    pending  -     2026-11-29 11:01:00 (in 1m)"), "\(narrow)")
    }

    @Test func aCutWorkerKeepsItsPid() {
        #expect(HistoryFormatting.cutWorker("taskshedctl 0.1.0 worker/8123", 12) == "tasksh…/8123")
        #expect(HistoryFormatting.cutWorker("w/1", 12) == "w/1")
        #expect(HistoryFormatting.cutWorker("no-pid-here-at-all", 12) == "no-pid-here…")
        #expect(HistoryFormatting.cutWorker("x/12345678901", 12) == "x/123456789…")
    }

    @Test func columnsFromTheEnvironmentOnlyWhenPositive() {
        #expect(TerminalWidth.fromEnvironment(["COLUMNS": "72"]) == 72)
        #expect(TerminalWidth.fromEnvironment(["COLUMNS": "0"]) == nil)
        #expect(TerminalWidth.fromEnvironment(["COLUMNS": "wide"]) == nil)
        #expect(TerminalWidth.fromEnvironment([:]) == nil)
    }

    @Test func showAppendsItsLastRunsToTheTaskObject() {
        let object = JSONOutput.object([("id", .string("t"))]).appending("last_runs", .array([]))
        #expect(object.render(indent: nil) == #"{"id":"t","last_runs":[]}"#)
        #expect(JSONOutput.null.appending("x", .null) == .null)
    }
}
