import Foundation
import TaskShed
import TaskShedProtocol

/// Human and JSON renderings of tasks and of the daemon's statistics.
///
/// Works on the protocol's value types (`TaskRecord`, `Stats`), whose times are microseconds, so the output
/// can be tested without a daemon; commands convert the client library's types to them.
public enum TaskFormatting {
    /// What an operator calls a task's state: `pending`, `due`, `paused`, `leased` or `dead` (the `--state`
    /// filter values).
    /// - Parameters:
    ///   - task: The task.
    ///   - nowMicros: Now, for telling due from pending.
    /// - Returns: The status word.
    public static func status(of task: TaskRecord, nowMicros: Int64) -> String {
        switch task.state {
        case .dead: return "dead"
        case .leased: return "leased"
        case .scheduled:
            if task.paused { return "paused" }
            return task.runAt <= nowMicros ? "due" : "pending"
        }
    }

    /// `once`, `every 5m` (with `, no coalesce` when the task catches up one run per missed interval), or
    /// `cron 30 2 * * * Europe/Berlin` (the rule as given, and its zone).
    public static func schedule(of task: TaskRecord) -> String {
        switch task.schedule {
        case .once: return "once"
        case .interval(let micros):
            return "every \(TimeFormatting.duration(micros: micros))" + (task.coalesce ? "" : ", no coalesce")
        case .calendar(let calendar):
            return "\(calendar.syntax) \(calendar.expression)" + (calendar.timeZone.isEmpty ? "" : " \(calendar.timeZone)")
        }
    }

    /// A calendar schedule's policies, as `taskshedctl show` prints them and `add` takes them.
    public static func calendarPolicies(_ calendar: CalendarSchedule) -> String {
        var parts = ["gap \(name(calendar.gap))", "fold \(calendar.fold)", "catch-up \(name(calendar.catchUp))"]
        if calendar.catchUp == .all { parts[2] += " (max \(calendar.catchUpMaximum))" }
        parts.append("window \(TimeFormatting.duration(micros: calendar.catchUpWindowMicros))")
        parts.append("overlap \(name(calendar.overlap))")
        if calendar.jitterMicros > 0 {
            parts.append("jitter \(TimeFormatting.duration(micros: calendar.jitterMicros)) \(calendar.jitterMode)")
        }
        return parts.joined(separator: ", ")
    }

    /// The policy names `add` takes (`at-change`, `queue-one`).
    static func name(_ gap: CalendarSchedule.Gap) -> String { gap == .atChange ? "at-change" : "\(gap)" }
    /// The overlap policy's name as `add` takes it.
    static func name(_ overlap: CalendarSchedule.Overlap) -> String { overlap == .queueOne ? "queue-one" : "\(overlap)" }
    /// The catch-up policy's name as `add` takes it.
    static func name(_ catchUp: CalendarSchedule.CatchUp) -> String { "\(catchUp)" }

    /// The task list as an aligned table: ID, CALLBACK, STATUS, LAST (the last outcome:
    /// `HistoryFormatting.lastOutcome`), NEXT RUN (local, with a hint), SCHEDULE, GROUP.
    /// - Parameters:
    ///   - tasks: The tasks, in order.
    ///   - context: The zone and "now".
    ///   - width: The terminal's width: SCHEDULE and GROUP, the columns most often long (a cron rule and its
    ///     zone), are cut to fit it; `nil` leaves them whole.
    /// - Returns: The table text.
    public static func table(_ tasks: [TaskRecord], context: TimeContext, width: Int? = nil) -> String {
        var table = TextTable(columns: [
            .init("ID"), .init("CALLBACK"), .init("STATUS"), .init("LAST"), .init("NEXT RUN"),
            .init("SCHEDULE", shrinkableTo: 12), .init("GROUP", shrinkableTo: 8),
        ])
        for task in tasks {
            table.append([
                task.id, task.callback, status(of: task, nowMicros: context.nowMicros),
                HistoryFormatting.lastOutcome(of: task),
                TimeFormatting.localWithHint(micros: task.runAt, context: context), schedule(of: task),
                task.group ?? "-",
            ])
        }
        return table.render(width: width)
    }

    /// Dead-lettered tasks as a table: ID, CALLBACK, ATTEMPTS, FAILED (local, with a hint), LAST ERROR (first
    /// line, cut to 60 characters).
    public static func deadLetterTable(_ tasks: [TaskRecord], context: TimeContext) -> String {
        var table = TextTable(columns: [
            .init("ID"), .init("CALLBACK"), .init("ATTEMPTS", alignment: .right), .init("FAILED"), .init("LAST ERROR"),
        ])
        for task in tasks {
            var error = task.lastError.map { String($0.split(separator: "\n", omittingEmptySubsequences: true).first ?? "") } ?? "-"
            if error.count > 60 { error = String(error.prefix(57)) + "..." }
            table.append([
                task.id, task.callback, String(task.attempt),
                task.lastFailureAt.map { TimeFormatting.localWithHint(micros: $0, context: context) } ?? "-", error,
            ])
        }
        return table.render()
    }

    /// One task in detail, one `label: value` line per field (`-` for absent values).
    public static func detail(_ task: TaskRecord, context: TimeContext) -> String {
        func time(_ micros: Int64?) -> String {
            micros.map { TimeFormatting.localWithHint(micros: $0, context: context) } ?? "-"
        }
        let maxAttempts = task.maxAttempts == 0 ? "default" : String(task.maxAttempts)
        var rows: [(String, String)] = [
            ("id", task.id),
            ("callback", task.callback),
            ("status", status(of: task, nowMicros: context.nowMicros)),
            ("next run", time(task.runAt)),
            ("schedule", schedule(of: task)),
            ("group", task.group ?? "-"),
            ("kwargs", kwargsText(task.kwargs)),
            ("attempt", "\(task.attempt) (max \(maxAttempts))"),
            ("paused at", time(task.pausedAt)),
            ("lease until", time(task.leaseDeadline)),
            ("last run", time(task.lastRunAt)),
            ("last failure", time(task.lastFailureAt)),
            ("last error", task.lastError.map { $0.replacingNewlines } ?? "-"),
            ("created", time(task.createdAt)),
        ]
        if let calendar = task.schedule.calendar {
            rows.insert(("policies", calendarPolicies(calendar)), at: 5)
            let runs = nextRuns(task, count: 5)
            rows.insert(("then", runs.dropFirst().map { time($0) }.joined(separator: "; ")), at: 4)
            rows.append(("skipped runs", "\(task.skippedRuns)" + (task.lastSkip.map { " (last: \($0))" } ?? "")))
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { label, value in
            label + ":" + String(repeating: " ", count: width - label.count + 2) + value
        }.joined(separator: "\n") + "\n"
    }

    /// A calendar schedule as JSON: the rule, its zone and every policy, with the names `add` takes.
    static func calendarJSON(_ calendar: CalendarSchedule) -> JSONOutput {
        .object([
            ("syntax", .string("\(calendar.syntax)")),
            ("expression", .string(calendar.expression)),
            ("time_zone", .string(calendar.timeZone.isEmpty ? "UTC" : calendar.timeZone)),
            ("gap", .string(name(calendar.gap))),
            ("fold", .string("\(calendar.fold)")),
            ("catch_up", .string(name(calendar.catchUp))),
            ("catch_up_max", .uint(UInt64(calendar.catchUpMaximum))),
            ("catch_up_window_us", .int(calendar.catchUpWindowMicros)),
            ("overlap", .string(name(calendar.overlap))),
            ("jitter_us", .int(calendar.jitterMicros)),
            ("jitter_mode", .string("\(calendar.jitterMode)")),
        ])
    }

    /// A calendar task's next `count` runs: its stored next run, then the rule's following occurrences (before
    /// their jitter), from the library's `TaskSchedule.nextRuns`, whose computation the daemon schedules with.
    /// Empty for other tasks or a rule that no longer parses.
    static func nextRuns(_ task: TaskRecord, count: Int) -> [Int64] {
        guard let calendar = task.schedule.calendar, count > 0,
              let following = try? TaskSchedule.calendar(calendar).nextRuns(
                after: Date(timeIntervalSince1970: Double(task.runAt) / 1_000_000), count: count - 1)
        else { return [] }
        return [task.runAt] + following.map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) }
    }

    /// The documented JSON object of a task (README-cli.md, "JSON output"): snake_case keys in a fixed order;
    /// every time twice, as RFC 3339 UTC text and as microseconds (`_us`); absent values are `null`.
    /// - Parameters:
    ///   - task: The task.
    ///   - nowMicros: Now, for the derived `status`.
    /// - Returns: The object.
    public static func json(_ task: TaskRecord, nowMicros: Int64) -> JSONOutput {
        var members: [(String, JSONOutput)] = [
            ("id", .string(task.id)),
            ("callback", .string(task.callback)),
            ("status", .string(status(of: task, nowMicros: nowMicros))),
            ("state", .string(stateName(task.state))),
        ]
        members += timeMembers("run_at", task.runAt)
        members += [
            ("schedule", .string(["once", "interval", "calendar"][Int(task.schedule.kind.rawValue)])),
            ("interval", .optional(task.schedule.intervalMicros.map { TimeFormatting.duration(micros: $0) })),
            ("interval_us", .optional(task.schedule.intervalMicros)),
            ("coalesce", .bool(task.coalesce)),
            ("kwargs", kwargsJSON(task.kwargs)),
            ("group", .optional(task.group)),
            ("paused", .bool(task.paused)),
        ]
        members += timeMembers("paused_at", task.pausedAt)
        members += [
            ("attempt", .uint(UInt64(task.attempt))),
            ("max_attempts", task.maxAttempts == 0 ? .null : .uint(UInt64(task.maxAttempts))),
        ]
        members += timeMembers("lease_deadline", task.leaseDeadline)
        members.append(("last_error", .optional(task.lastError)))
        members += timeMembers("created_at", task.createdAt)
        members += timeMembers("last_run_at", task.lastRunAt)
        members += timeMembers("last_failure_at", task.lastFailureAt)
        // Added after the fields of version 1 of this document, whose order is fixed.
        members += [
            ("calendar", task.schedule.calendar.map(calendarJSON) ?? .null),
            ("skipped_runs", .uint(task.skippedRuns)),
            ("last_skip", .optional(task.lastSkip)),
            ("next_runs", .array(nextRuns(task, count: 5).map { .string(TimeFormatting.rfc3339UTC(micros: $0)) })),
            ("last_outcome", lastOutcomeJSON(task)),
        ]
        return .object(members)
    }

    /// The last outcome as `list` shows it (`ok`, `failed`, `dead`), `null` when not known.
    static func lastOutcomeJSON(_ task: TaskRecord) -> JSONOutput {
        let word = HistoryFormatting.lastOutcome(of: task)
        return word == "-" ? .null : .string(word)
    }

    /// `name` as RFC 3339 UTC text and `name_us` as microseconds (both `null` when absent).
    static func timeMembers(_ name: String, _ micros: Int64?) -> [(String, JSONOutput)] {
        [(name, .optional(micros.map { TimeFormatting.rfc3339UTC(micros: $0) })), (name + "_us", .optional(micros))]
    }

    /// The stored state's wire name.
    static func stateName(_ state: TaskState) -> String {
        switch state {
        case .scheduled: return "scheduled"
        case .leased: return "leased"
        case .dead: return "dead"
        }
    }

    /// The kwargs as compact text (`{}` when empty).
    static func kwargsText(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "{}" : String(decoding: bytes, as: UTF8.self).replacingNewlines
    }

    /// The kwargs embedded as JSON: the daemon only stores validated JSON objects, so the text goes in as it
    /// is; anything else (which would be a daemon bug) is embedded as a string rather than breaking the output.
    static func kwargsJSON(_ bytes: [UInt8]) -> JSONOutput {
        let text = bytes.isEmpty ? "{}" : String(decoding: bytes, as: UTF8.self)
        if (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any] {
            return .raw(text.trimmingSpaces)
        }
        return .string(text)
    }
}

extension String {
    /// Newlines shown as `⏎` so that a multi-line value stays on one output line.
    var replacingNewlines: String {
        split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ⏎ ")
    }
}
