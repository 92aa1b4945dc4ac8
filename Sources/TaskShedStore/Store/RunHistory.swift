import TaskShedProtocol

/// How much run history a store keeps (`taskshedd --history-per-task`, `--history-max-runs`,
/// `--history-max-age`). The oldest entries go first: past `perTask` entries of one task, past `maxRuns` in
/// the whole store, and entries that finished more than `maxAgeMicros` ago. Removing a task keeps its entries
/// until these bounds drop them.
public struct HistoryLimits: Sendable, Hashable {
    /// Entries kept per task (default 20); 0 records no history at all.
    public var perTask: Int
    /// Entries kept in the whole store (default 100,000).
    public var maxRuns: Int
    /// How long an entry is kept after its run ended (µs; default 7 days).
    public var maxAgeMicros: Int64

    /// The defaults: 20 runs per task, 100,000 runs, 7 days.
    public static let standard = HistoryLimits()
    /// Records nothing.
    public static let none = HistoryLimits(perTask: 0)

    /// Creates limits (the arguments as the properties of the same names).
    public init(perTask: Int = 20, maxRuns: Int = 100_000, maxAgeMicros: Int64 = 7 * 86_400 * 1_000_000) {
        self.perTask = max(0, perTask)
        self.maxRuns = max(0, maxRuns)
        self.maxAgeMicros = max(0, maxAgeMicros)
    }

    /// Whether history is recorded at all.
    public var records: Bool { perTask > 0 && maxRuns > 0 && maxAgeMicros > 0 }
}

/// A delivery (or calendar occurrence) that an operation of a write batch ended, before the daemon adds who
/// ran it: `TaskStoreWriteBatch.endedRuns`.
public struct EndedRun: Sendable, Hashable {
    /// The entry, with `seq` 0 and the worker fields empty.
    public var entry: RunEntry
    /// The lease holder whose delivery ended (the daemon's connection id); 0 for a skipped occurrence.
    public var holder: UInt64

    /// Creates one.
    public init(entry: RunEntry, holder: UInt64) {
        self.entry = entry
        self.holder = holder
    }
}

extension EndedRun {
    /// The end of a delivery, from the task's record as leased (`leased`: its attempt, `runAt` and `lastRunAt`
    /// are the delivery's) and what the operation left (`after`: `nil` when the task was removed). Both stores
    /// build their entries here, so that the history means the same on each.
    package static func ending(_ leased: TaskRecord, holder: UInt64, outcome: RunOutcome, error: String?,
                               after: TaskRecord?, now: Int64) -> EndedRun
    {
        ending(id: leased.id, callback: leased.callback, attempt: leased.attempt, runAt: leased.runAt,
               lastRunAt: leased.lastRunAt, holder: holder, outcome: outcome, error: error,
               then: followUp(leased, outcome: outcome, after: after), now: now)
    }

    /// `ending`, followed by the calendar occurrences that the step from `leased` to `after` skipped (a
    /// recurring task's advance past occurrences its policy does not run).
    package static func endings(_ leased: TaskRecord, holder: UInt64, outcome: RunOutcome, error: String?,
                                after: TaskRecord?, now: Int64) -> [EndedRun]
    {
        let end = ending(leased, holder: holder, outcome: outcome, error: error, after: after, now: now)
        guard let skipped = skips(from: leased, to: after, now: now) else { return [end] }
        return [end, skipped]
    }

    /// The outcome of a lease ended for `reason` by `releaseHolder` or a lost daemon's rescue: the daemon's
    /// reasons are "worker disconnected" and, on a shared datastore, "daemon lost: …"; "lease expired" is the
    /// expiry's.
    package static func outcome(ofLeaseEnd reason: String) -> RunOutcome {
        reason == "lease expired" ? .leaseExpired : .workerDisconnected
    }

    /// The end of a delivery from its parts (a store that ends a lease without reading the record: LMDB's ack
    /// of a one-off task).
    package static func ending(id: String, callback: String, attempt: UInt32, runAt: Int64, lastRunAt: Int64?,
                               holder: UInt64, outcome: RunOutcome, error: String?, then: RunFollowUp,
                               now: Int64) -> EndedRun
    {
        EndedRun(
            entry: RunEntry(taskID: id, callback: callback, attempt: attempt, scheduledAt: runAt,
                            deliveredAt: lastRunAt ?? runAt, finishedAt: now, outcome: outcome, then: then,
                            error: error.map { truncateUTF8($0, limit: ProtocolLimits.maxErrorBytes) }),
            holder: holder)
    }

    /// What became of a task whose delivery ended with `outcome` and left `after`.
    package static func followUp(_ leased: TaskRecord, outcome: RunOutcome, after: TaskRecord?) -> RunFollowUp {
        guard let after else { return .finished }
        if after.state == .dead { return .deadLettered }
        if outcome == .released { return .retry }
        // A recurring task that moved on starts its next run at attempt 0; one whose lease ended with attempts
        // left is due again at the same occurrence (a retry), with the attempt counted.
        if leased.schedule.isRecurring && after.attempt == 0 { return .nextRun }
        return .retry
    }

    /// The calendar occurrences skipped between `old` and `new` (the skip counter grew), as one entry: the
    /// occurrence `old` was at, and `lastSkip` (when, how many, why). `nil` when nothing was skipped.
    package static func skips(from old: TaskRecord, to new: TaskRecord?, now: Int64) -> EndedRun? {
        guard let new, new.skippedRuns > old.skippedRuns else { return nil }
        // `lastSkip` says when, how many and why (CalendarTiming).
        let why = new.lastSkip ?? "\(new.skippedRuns - old.skippedRuns) skipped by the schedule's policy"
        return EndedRun(
            entry: RunEntry(taskID: old.id, callback: old.callback, attempt: 0, scheduledAt: old.runAt,
                            deliveredAt: nil, finishedAt: now, outcome: .skipped,
                            then: new.state == .dead ? .deadLettered : .nextRun,
                            error: truncateUTF8(why, limit: ProtocolLimits.maxErrorBytes)),
            holder: 0)
    }
}
