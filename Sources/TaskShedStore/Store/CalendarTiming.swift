import Synchronization
import TaskShedCalendar
import TaskShedProtocol

/// When a calendar task runs: its first run, the decision at a claim (catch-up after downtime), and its next
/// run after a run ended (overlap). Every store uses these, so LMDB and PostgreSQL schedule alike; the occurrence
/// arithmetic itself is TaskShedCalendar's (one pure function of rule, zone and instant).
///
/// A task's `run_at` is its occurrence plus its jitter (at most up to just before the next occurrence), so the
/// occurrence a run belongs to is always the latest occurrence at or before `run_at`; nothing else is stored.
package struct CalendarTiming {
    /// The parsed rule.
    package let rule: CalendarRule
    /// The schedule as stored (its policies).
    package let schedule: CalendarSchedule
    let dst: DSTPolicy

    /// Parses the rule; the server has already refused every schedule this throws for, so a store meets the
    /// error only with a record it did not write.
    package init(_ schedule: CalendarSchedule) throws(CalendarExpressionError) {
        self.schedule = schedule
        rule = try Self.cache.rule(for: schedule)
        dst = DSTPolicy(gap: schedule.gap.policy, fold: schedule.fold.policy)
    }

    /// What is wrong with a calendar schedule of a task to add, or `nil` if nothing: the expression (parsed, so
    /// its error names the field and the token), the zone, every policy's range, and that the rule still has an
    /// occurrence at or after `notBefore` (the task's `run_at`, or now). The server answers with it as
    /// `INVALID_ARGUMENT` naming `tasks[i].schedule`, before the store sees the task.
    package static func problem(with schedule: CalendarSchedule, taskID: String?, notBefore: Int64) -> String? {
        let length = schedule.expression.utf8.count
        guard (1...CalendarSchedule.maxExpressionBytes).contains(length) else {
            return "the calendar expression must be 1 … \(CalendarSchedule.maxExpressionBytes) bytes, got \(length)"
        }
        guard schedule.timeZone.utf8.count <= ProtocolLimits.maxNameBytes else {
            return "the time zone must be at most \(ProtocolLimits.maxNameBytes) bytes"
        }
        if schedule.catchUp == .all {
            guard (1...CalendarSchedule.maxCatchUpMaximum).contains(schedule.catchUpMaximum) else {
                return "catch_up all needs catch_up_max 1 … \(CalendarSchedule.maxCatchUpMaximum), "
                    + "got \(schedule.catchUpMaximum)"
            }
        } else if schedule.catchUpMaximum != 0 {
            return "catch_up_max applies to catch_up all only and must be 0 with catch_up \(schedule.catchUp), "
                + "got \(schedule.catchUpMaximum)"
        }
        let window = schedule.catchUpWindowMicros
        guard (CalendarSchedule.minCatchUpWindowMicros...CalendarSchedule.maxCatchUpWindowMicros).contains(window) else {
            return "catch_up_window must be \(CalendarSchedule.minCatchUpWindowMicros) … "
                + "\(CalendarSchedule.maxCatchUpWindowMicros) µs (1 s … 366 days), got \(window)"
        }
        if schedule.overlap == .allow, let id = taskID, id.utf8.count > CalendarSchedule.maxAllowTaskIDBytes {
            return "overlap allow names each run ID@OCCURRENCE, so the id must be at most "
                + "\(CalendarSchedule.maxAllowTaskIDBytes) bytes, got \(id.utf8.count)"
        }
        guard (0...CalendarSchedule.maxJitterMicros).contains(schedule.jitterMicros) else {
            return "jitter must be 0 … \(CalendarSchedule.maxJitterMicros) µs (one day), got \(schedule.jitterMicros)"
        }
        let timing: CalendarTiming
        do {
            timing = try CalendarTiming(schedule)
        } catch {
            return "calendar expression \"\(schedule.expression)\": \(error)"
        }
        guard timing.rule.next(after: notBefore - 1, dst: timing.dst) != nil else {
            return "\"\(timing.rule.normalized)\" has no occurrence at or after \(utc(notBefore))"
        }
        return nil
    }

    /// The schedule's policies as TaskShedCalendar's types.
    package var catchUpPolicy: CatchUpPolicy {
        switch schedule.catchUp {
        case .skip: return .skip
        case .one: return .one
        case .all: return .all(max: Int(schedule.catchUpMaximum))
        }
    }

    /// The first occurrence at or after `notBefore`, with its jitter, or `nil` if the rule has none left.
    package func firstRun(notBefore: Int64, taskID: String) -> Int64? {
        guard let first = rule.next(after: notBefore - 1, dst: dst) else { return nil }
        return jittered(first.instant, taskID: taskID)
    }

    /// `occurrence` plus the task's jitter, kept before the following occurrence.
    package func jittered(_ occurrence: Int64, taskID: String) -> Int64 {
        guard schedule.jitterMicros > 0 else { return occurrence }
        let jitter = Jitter(maximum: schedule.jitterMicros, mode: schedule.jitterMode == .fixed ? .fixed : .random)
        return jitter.runTime(scheduled: occurrence, next: rule.next(after: occurrence, dst: dst)?.instant,
                              taskID: taskID)
    }

    /// The occurrence a stored `run_at` belongs to (`run_at` minus its jitter).
    package func occurrence(of runAt: Int64) -> Int64 {
        guard schedule.jitterMicros > 0 else { return runAt }
        return rule.previous(before: runAt &+ 1, dst: dst)?.instant ?? runAt
    }

    /// What a claim at `now` does with a due calendar task.
    package enum ClaimDecision: Equatable {
        /// Run the stored occurrence.
        case run
        /// Run `occurrence` instead (catch-up picked a later missed one); `skipped` occurrences before it were
        /// missed, for `reason`.
        case runInstead(occurrence: Int64, skipped: UInt64, reason: String)
        /// Run nothing now: the task waits for `nextRunAt` (`nil`: the rule has no occurrence left, the task is
        /// finished); `skipped` occurrences were missed, for `reason`.
        case skip(nextRunAt: Int64?, skipped: UInt64, reason: String)
    }

    /// The catch-up decision for a task whose stored `run_at` is due at `now`. An occurrence is missed when it
    /// is no longer the latest one (a later one is due too), or older than the catch-up window; the policy then
    /// says which of the missed occurrences in the window run (`CalendarRule.catchUp`). A run that is only late,
    /// but still the latest occurrence and inside the window, runs as it is.
    package func claimDecision(runAt: Int64, now: Int64, taskID: String) -> ClaimDecision {
        let stored = occurrence(of: runAt)
        let following = rule.next(after: stored, dst: dst)?.instant
        if stored >= now - schedule.catchUpWindowMicros, following.map({ $0 > now }) ?? true { return .run }
        let plan = rule.catchUp(lastHandled: stored - 1, now: now, window: schedule.catchUpWindowMicros,
                                policy: catchUpPolicy, dst: dst)
        let skipped = UInt64(plan.skipped)
        let reason = Self.missedReason(plan, from: stored, now: now, window: schedule.catchUpWindowMicros,
                                       policy: schedule.catchUp)
        if let first = plan.runNow.first {
            if first.instant == stored && skipped == 0 { return .run }
            return .runInstead(occurrence: first.instant, skipped: skipped, reason: reason)
        }
        return .skip(nextRunAt: plan.next.map { jittered($0.instant, taskID: taskID) }, skipped: skipped,
                     reason: reason)
    }

    /// The next run after the run of `runAt`, delivered at `deliveredAt`, ended at `now` (acknowledged, failed
    /// or given up on): the following occurrence; a missed occurrence the `all` catch-up still owes; or, when
    /// occurrences fell due while the run held its lease, what the overlap policy says (`skip`: the first
    /// occurrence after now; `queue_one`: the latest that fell due, at once). `nil`: the rule has no occurrence
    /// left and the task is finished.
    package func nextRun(after runAt: Int64, deliveredAt: Int64?, now: Int64, taskID: String)
        -> (runAt: Int64?, skipped: UInt64, reason: String?)
    {
        let ran = occurrence(of: runAt)
        let started = max(ran, deliveredAt ?? ran)
        if schedule.catchUp == .all, let owed = rule.next(after: ran, dst: dst), owed.instant <= started {
            return (owed.instant, 0, nil)
        }
        guard let following = rule.next(after: started, dst: dst) else { return (nil, 0, nil) }
        guard following.instant <= now else { return (jittered(following.instant, taskID: taskID), 0, nil) }
        // Occurrences fell due while the run held its lease: count them (bounded, as catch-up counts).
        var overlapped: UInt64 = 1
        var latest = following.instant
        while overlapped < UInt64(CalendarRule.catchUpCountLimit), let o = rule.next(after: latest, dst: dst),
              o.instant <= now {
            overlapped += 1
            latest = o.instant
        }
        let span = overlapped == 1
            ? "the occurrence of \(Self.utc(following.instant))"
            : "\(overlapped) occurrences from \(Self.utc(following.instant)) to \(Self.utc(latest))"
        switch schedule.overlap {
        case .skip:
            let next = rule.next(after: now, dst: dst).map { jittered($0.instant, taskID: taskID) }
            return (next, overlapped,
                    "overlap skip: \(span) fell due while the run of \(Self.utc(ran)) still held its lease")
        case .queueOne, .allow:
            // (`allow` never gets here: its task is not leased, its runs are one-off tasks of their own.)
            guard overlapped > 1 else { return (latest, 0, nil) }
            let dropped = overlapped - 1
            return (latest, dropped,
                    "overlap queue_one: \(span) fell due while the run of \(Self.utc(ran)) still held its lease; "
                        + "the latest runs, \(dropped) skipped")
        }
    }

    /// The run of `occurrence` for a task with overlap `allow`: a one-off task of its own, `ID@OCCURRENCE`, due at
    /// `runAt` (the occurrence plus its jitter), with the task's callback, kwargs, group and attempt limit; and
    /// the task's next run (`nil`: none left), to which it moves at once, so that the next occurrence is claimed
    /// on time whether or not this run has ended.
    package func allowRun(of task: TaskRecord, occurrence: Int64, runAt: Int64, now: Int64)
        -> (run: TaskRecord, nextRunAt: Int64?)
    {
        let run = TaskRecord(
            id: task.id + "@" + Self.utc(occurrence), callback: task.callback, runAt: runAt, schedule: .once,
            kwargs: task.kwargs, group: task.group, paused: false, pausedAt: nil, coalesce: true, state: .scheduled,
            attempt: 0, maxAttempts: task.maxAttempts, leaseDeadline: nil, lastError: nil, createdAt: now,
            lastRunAt: nil, lastFailureAt: nil)
        let next = rule.next(after: occurrence, dst: dst).map { jittered($0.instant, taskID: task.id) }
        return (run, next)
    }

    /// Why a catch-up plan skipped what it skipped, for `last_skip`.
    static func missedReason(_ plan: CatchUpPlan, from stored: Int64, now: Int64, window: Int64,
                             policy: CalendarSchedule.CatchUp) -> String {
        var parts: [String] = []
        if plan.skippedOutsideWindow > 0 {
            let count = plan.skippedOutsideWindowIsExact ? "\(plan.skippedOutsideWindow)" : "over \(plan.skippedOutsideWindow)"
            parts.append("\(count) outside the catch-up window of \(window / 1_000_000) s")
        }
        if plan.skippedByPolicy > 0 { parts.append("\(plan.skippedByPolicy) by catch-up \(policy)") }
        if plan.skippedOverMaximum > 0 { parts.append("\(plan.skippedOverMaximum) over the catch-up maximum") }
        let what = parts.isEmpty ? "none skipped" : parts.joined(separator: ", ") + " skipped"
        return "\(utc(now)): occurrences since \(utc(stored)) were missed: \(what)"
    }

    /// An instant as `2026-03-08T07:30:00Z` (whole seconds; occurrences have no fraction).
    static func utc(_ micros: Int64) -> String {
        let text = LocalDateTime(wallSeconds: micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000)
            .description
        return text.prefix(10) + "T" + text.suffix(8) + "Z"
    }

    /// Parsed rules by schedule: a store parses each rule once, not at every claim and ack.
    private static let cache = RuleCache()
}

/// A bounded cache of parsed rules, shared by every store thread.
private final class RuleCache: Sendable {
    private let rules = Mutex<[CalendarSchedule: CalendarRule]>([:])
    private static let capacity = 4096

    func rule(for schedule: CalendarSchedule) throws(CalendarExpressionError) -> CalendarRule {
        if let rule = rules.withLock({ $0[schedule] }) { return rule }
        let rule = try CalendarRule(schedule.expression, syntax: schedule.syntax.calendarSyntax,
                                    defaultTimeZone: schedule.timeZone.isEmpty ? "UTC" : schedule.timeZone)
        rules.withLock {
            // Simple and bounded: a daemon with more distinct rules than this parses the rest each time.
            if $0.count < Self.capacity { $0[schedule] = rule }
        }
        return rule
    }
}

extension CalendarSchedule.Syntax {
    /// The calendar module's name for the syntax.
    package var calendarSyntax: CalendarSyntax { self == .cron ? .cron : .systemd }
}

extension CalendarSchedule.Gap {
    /// The calendar module's gap policy.
    package var policy: GapPolicy {
        switch self {
        case .shift: return .shift
        case .skip: return .skip
        case .atChange: return .atChange
        }
    }
}

extension CalendarSchedule.Fold {
    /// The calendar module's fold policy.
    package var policy: FoldPolicy {
        switch self {
        case .first: return .first
        case .last: return .last
        case .both: return .both
        }
    }
}
