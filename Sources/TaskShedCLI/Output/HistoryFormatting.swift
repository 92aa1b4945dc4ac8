import TaskShedProtocol

/// Human and JSON renderings of the run history (`taskshedctl history`, the "last runs" of `show`) and the
/// last-outcome word of `list`.
///
/// Works on the protocol's `RunEntry`, whose times are microseconds, as `TaskFormatting` works on `TaskRecord`,
/// so the output can be tested without a daemon.
public enum HistoryFormatting {
    /// How a run ended, as the JSON `outcome` field spells it: the protocol's names (`succeeded`, `failed`,
    /// `lease_expired`, `worker_disconnected`, `released`, `skipped`).
    public static func outcomeName(_ outcome: RunOutcome) -> String {
        switch outcome {
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .leaseExpired: return "lease_expired"
        case .workerDisconnected: return "worker_disconnected"
        case .released: return "released"
        case .skipped: return "skipped"
        }
    }

    /// What became of the task, as the JSON `then` field spells it (`finished`, `retry`, `dead_lettered`,
    /// `next_run`).
    public static func followUpName(_ then: RunFollowUp) -> String {
        switch then {
        case .finished: return "finished"
        case .retry: return "retry"
        case .deadLettered: return "dead_lettered"
        case .nextRun: return "next_run"
        }
    }

    /// The table's spelling of an outcome: the JSON name with spaces, and the disconnect shortened so that the
    /// column stays narrow.
    static func outcomeText(_ outcome: RunOutcome) -> String {
        switch outcome {
        case .leaseExpired: return "lease expired"
        case .workerDisconnected: return "disconnected"
        default: return outcomeName(outcome)
        }
    }

    /// The table's spelling of a follow-up.
    static func followUpText(_ then: RunFollowUp) -> String {
        switch then {
        case .deadLettered: return "dead"
        case .nextRun: return "next run"
        default: return followUpName(then)
        }
    }

    /// The worker as `name/pid`, either part left out when the daemon does not know it; `-` for none (skipped
    /// occurrences).
    static func workerText(_ run: RunEntry) -> String {
        let pid = run.workerPID == 0 ? nil : String(run.workerPID)
        switch (run.workerName.isEmpty ? nil : run.workerName, pid) {
        case (let name?, let pid?): return "\(name)/\(pid)"
        case (let name?, nil): return name
        case (nil, let pid?): return "pid \(pid)"
        case (nil, nil): return "-"
        }
    }

    /// A worker cell cut to `width`: the name gives up its end, the `/pid` stays whole, since the pid is what
    /// tells two workers of one name apart (`taskshedctl 0.1.0 worker/8123` at 12 → `tasksh…/8123`).
    @Sendable static func cutWorker(_ text: String, _ width: Int) -> String {
        guard text.count > width else { return text }
        guard let slash = text.lastIndex(of: "/") else { return TextTable.cutEnd(text, width) }
        let pid = String(text[slash...])
        let room = width - pid.count - 1
        guard room >= 1 else { return TextTable.cutEnd(text, width) }
        return String(text[..<slash].prefix(room)) + "…" + pid
    }

    /// An error on one line: the first line that is not empty (a callback's stderr often ends in several).
    static func errorText(_ error: String?) -> String {
        guard let error else { return "-" }
        let first = error.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        return first.isEmpty ? "-" : first
    }

    /// The runs as a table, in the order given (the daemon's: newest first): FINISHED (local time), TASK,
    /// CALLBACK, ATTEMPT, OUTCOME, THEN, LATE, DURATION, WORKER (name/pid), ERROR (its first line).
    /// - Parameters:
    ///   - runs: The runs.
    ///   - context: The zone to show times in.
    ///   - width: The terminal's width: ERROR, then WORKER, are cut to fit it; `nil` leaves them whole.
    /// - Returns: The table text.
    public static func table(_ runs: [RunEntry], context: TimeContext, width: Int? = nil) -> String {
        var table = TextTable(columns: [
            .init("FINISHED"), .init("TASK"), .init("CALLBACK"), .init("ATTEMPT", alignment: .right), .init("OUTCOME"),
            .init("THEN"), .init("LATE", alignment: .right), .init("DURATION", alignment: .right),
            .init("WORKER", shrinkableTo: 12, cut: cutWorker), .init("ERROR", shrinkableTo: 16),
        ])
        for run in runs {
            table.append([
                TimeFormatting.local(micros: run.finishedAt, context: context), run.taskID, run.callback,
                String(run.attempt), outcomeText(run.outcome), followUpText(run.then),
                run.latenessMicros.map { TimeFormatting.measurement(micros: $0) } ?? "-",
                run.durationMicros.map { TimeFormatting.measurement(micros: $0) } ?? "-",
                workerText(run), errorText(run.error),
            ])
        }
        return table.render(width: width)
    }

    /// The "last runs" section of `taskshedctl show`: a heading and the task's runs without the columns that
    /// the task itself already names (task, callback), newest first; a line saying so when it has none.
    /// - Parameters:
    ///   - runs: The task's runs, newest first.
    ///   - context: The zone and "now", for the finished times' hints.
    ///   - width: The terminal's width, as for `table`.
    /// - Returns: The section's text, starting with an empty line.
    public static func lastRuns(_ runs: [RunEntry], context: TimeContext, width: Int? = nil) -> String {
        guard !runs.isEmpty else { return "\nLast runs: none recorded\n" }
        var table = TextTable(columns: [
            .init("FINISHED"), .init("ATTEMPT", alignment: .right), .init("OUTCOME"), .init("THEN"),
            .init("LATE", alignment: .right), .init("DURATION", alignment: .right), .init("WORKER", shrinkableTo: 12, cut: cutWorker),
            .init("ERROR", shrinkableTo: 16),
        ])
        for run in runs {
            table.append([
                TimeFormatting.localWithHint(micros: run.finishedAt, context: context), String(run.attempt),
                outcomeText(run.outcome), followUpText(run.then),
                run.latenessMicros.map { TimeFormatting.measurement(micros: $0) } ?? "-",
                run.durationMicros.map { TimeFormatting.measurement(micros: $0) } ?? "-",
                workerText(run), errorText(run.error),
            ])
        }
        // Indented by two, as a sub-table of the task.
        let lines = table.render(width: width.map { $0 - 2 }).split(separator: "\n", omittingEmptySubsequences: false)
        return "\nLast runs:\n" + lines.dropLast().map { "  " + $0 }.joined(separator: "\n") + "\n"
    }

    /// The documented JSON object of a run (docs/taskshedctl.md, "JSON output"): snake_case keys in a fixed
    /// order, times twice (RFC 3339 UTC text and `_us` microseconds), durations in microseconds (`_us`), as
    /// everywhere in the CLI's JSON; absent values are `null`.
    /// - Parameter run: The run.
    /// - Returns: The object.
    public static func json(_ run: RunEntry) -> JSONOutput {
        var members: [(String, JSONOutput)] = [
            ("seq", .uint(run.seq)),
            ("task_id", .string(run.taskID)),
            ("callback", .string(run.callback)),
            ("attempt", .uint(UInt64(run.attempt))),
            ("outcome", .string(outcomeName(run.outcome))),
            ("then", .string(followUpName(run.then))),
            ("failure", .bool(run.outcome.isFailure)),
        ]
        members += TaskFormatting.timeMembers("scheduled_at", run.scheduledAt)
        members += TaskFormatting.timeMembers("delivered_at", run.deliveredAt)
        members += TaskFormatting.timeMembers("finished_at", run.finishedAt)
        members += [
            ("lateness_us", .optional(run.latenessMicros)),
            ("duration_us", .optional(run.durationMicros)),
            ("error", .optional(run.error)),
            ("worker_name", .optional(run.workerName.isEmpty ? nil : run.workerName)),
            ("worker_pid", run.workerPID == 0 ? .null : .uint(UInt64(run.workerPID))),
            ("worker_uid", run.workerUID == .max ? .null : .uint(UInt64(run.workerUID))),
            ("daemon", .string(run.daemon)),
        ]
        return .object(members)
    }

    /// The last outcome of a task as `list` shows it, derived from the task's own record (one request for the
    /// whole page, rather than one history request per task):
    ///
    /// - `dead`: dead-lettered;
    /// - `failed`: its last finished delivery failed: a retry is pending or running (`attempt` counts the
    ///   deliveries of the current occurrence), or its last failure came after its last delivery (a recurring
    ///   task that skipped a failed occurrence);
    /// - `ok`: delivered before, and that delivery did not fail (a recurring task; a one-off task that
    ///   succeeds is removed);
    /// - `-`: never delivered, or running its first attempt (the record keeps only the current delivery's
    ///   time, so the previous run's outcome is not known; `taskshedctl history ID` has it).
    public static func lastOutcome(of task: TaskRecord) -> String {
        switch task.state {
        case .dead:
            return "dead"
        case .leased:
            return task.attempt > 1 ? "failed" : "-"
        case .scheduled:
            if task.attempt > 0 { return "failed" }
            guard let lastRun = task.lastRunAt else { return "-" }
            if let lastFailure = task.lastFailureAt, lastFailure >= lastRun { return "failed" }
            return "ok"
        }
    }
}
