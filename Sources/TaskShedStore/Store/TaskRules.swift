import TaskShedCalendar
import TaskShedProtocol

// Rules every task store applies the same way (the LMDB store and the PostgreSQL store in TaskShedPostgres):
// what a valid task is, the list cursor's format, and how a task record changes when a delivery ends. One copy,
// so that the two stores cannot drift apart.

/// What validation adds to a task spec: the kwargs to store (`{}` for none) and the attempt limit (0 → the
/// default). The spec itself stays in the caller's array: copying it into this struct and out again retained
/// each of its strings and arrays twice per task.
package struct PreparedTask {
    package var kwargs: [UInt8]
    package var maxAttempts: UInt32
}

/// Validation of the tasks of an add, before anything is stored.
package enum TaskValidation {
    /// Checks a name's length; `field` is an autoclosure so that a valid name (the usual case, once per task
    /// of a batch) costs no string formatting.
    package static func checkName(_ value: String, field: @autoclosure () -> String, what: String) throws(StoreError) {
        let count = value.utf8.count
        if count == 0 { throw .invalid(field(), "\(what) must not be empty") }
        if count > ProtocolLimits.maxNameBytes {
            throw .invalid(field(), "\(what) is \(count) bytes; at most \(ProtocolLimits.maxNameBytes) are allowed")
        }
    }

    /// Checks every spec (see `TaskStoreWriteBatch.add`) and returns what each stores.
    /// - Throws: `invalidArgument` naming the field (`tasks[i].callback`, ...) of the first fault.
    package static func prepare(_ specs: [TaskSpec], maxKwargsBytes: Int, checksKwargsJSON: Bool)
        throws(StoreError) -> [PreparedTask]
    {
        var prepared: [PreparedTask] = []
        prepared.reserveCapacity(specs.count)
        var ids = Set<NameKey>(minimumCapacity: specs.count)
        let emptyObject: [UInt8] = Array("{}".utf8)
        for (i, spec) in specs.enumerated() {
            // Built only when a check fails: formatting it for every task cost ~2,000 instructions per task.
            var field: String { "tasks[\(i)]" }
            try checkName(spec.callback, field: "\(field).callback", what: "callback")
            if let id = spec.id {
                try checkName(id, field: "\(field).id", what: "id")
                if !ids.insert(NameKey(id)).inserted {
                    throw .invalid("\(field).id", "id \"\(id)\" appears more than once in the batch")
                }
            }
            if let group = spec.group { try checkName(group, field: "\(field).group", what: "group") }
            if case .interval(let micros) = spec.schedule, micros <= 0 {
                throw .invalid("\(field).interval", "a recurring task needs an interval > 0 (got \(micros) µs)")
            }
            var kwargs = spec.kwargs
            if kwargs.isEmpty {
                kwargs = emptyObject
            } else {
                if kwargs.count > maxKwargsBytes {
                    throw .invalid(
                        "\(field).kwargs", "kwargs are \(kwargs.count) bytes; at most \(maxKwargsBytes) are allowed")
                }
                if checksKwargsJSON, let problem = JSONObjectValidator.problem(in: kwargs) {
                    throw .invalid("\(field).kwargs", "kwargs \(problem)")
                }
            }
            let maxAttempts = spec.maxAttempts == 0 ? ProtocolLimits.defaultMaxAttempts : spec.maxAttempts
            prepared.append(PreparedTask(kwargs: kwargs, maxAttempts: maxAttempts))
        }
        return prepared
    }
}

extension TaskValidation {
    /// A new task's first `run_at`: its `run_at` (or now); for a calendar schedule, the first occurrence at or
    /// after that, with its jitter (the server refused a rule without one, so the fallback is never used).
    package static func firstRun(_ spec: TaskSpec, id: String, now: Int64) -> Int64 {
        let notBefore = spec.runAt ?? now
        guard case .calendar(let calendar) = spec.schedule, let timing = try? CalendarTiming(calendar) else {
            return notBefore
        }
        return timing.firstRun(notBefore: notBefore, taskID: id) ?? notBefore
    }

    /// What becomes of a calendar task once the run its leased `record` holds ended at `now` (acknowledged,
    /// failed, or given up on): see `CalendarTiming.nextRun`.
    package static func calendarStep(after record: TaskRecord, _ calendar: CalendarSchedule, now: Int64)
        -> CalendarStep
    {
        let timing: CalendarTiming
        do {
            timing = try CalendarTiming(calendar)
        } catch {
            return .broken(brokenRuleMessage(error))
        }
        let step = timing.nextRun(after: record.runAt, deliveredAt: record.lastRunAt, now: now, taskID: record.id)
        guard let runAt = step.runAt else { return .finished }
        return .next(runAt: runAt, skipped: step.skipped, reason: step.reason)
    }

    /// What a claim at `now` does with the due calendar task `record`: see `CalendarTiming.claimDecision`.
    package static func calendarClaim(_ record: TaskRecord, _ calendar: CalendarSchedule, now: Int64)
        -> CalendarClaim
    {
        let timing: CalendarTiming
        do {
            timing = try CalendarTiming(calendar)
        } catch {
            return .broken(brokenRuleMessage(error))
        }
        let decision = timing.claimDecision(runAt: record.runAt, now: now, taskID: record.id)
        guard calendar.overlap == .allow else { return .decided(decision) }
        let occurrence: Int64
        let runAt: Int64
        var skipped: UInt64 = 0
        var reason: String?
        switch decision {
        case .skip:
            return .decided(decision)
        case .run:
            occurrence = timing.occurrence(of: record.runAt)
            runAt = record.runAt
        case .runInstead(let instead, let count, let why):
            (occurrence, runAt, skipped, reason) = (instead, instead, count, why)
        }
        let (run, next) = timing.allowRun(of: record, occurrence: occurrence, runAt: runAt, now: now)
        return .runSeparately(run: run, nextRunAt: next, skipped: skipped, reason: reason)
    }

    /// The `last_error` of a calendar task whose rule stopped parsing (its zone left the system's tzdata): it is
    /// dead-lettered with this, neither lost nor claimed again and again; fix the zone and retry it.
    static func brokenRuleMessage(_ error: CalendarExpressionError) -> String {
        truncateUTF8("the calendar rule no longer parses: \(error)", limit: ProtocolLimits.maxErrorBytes)
    }
}

/// A calendar task after a run ended.
package enum CalendarStep {
    /// Scheduled again at `runAt`; `skipped` occurrences (overlap) were dropped, for `reason`.
    case next(runAt: Int64, skipped: UInt64, reason: String?)
    /// The rule has no occurrence left: the task is removed like an acknowledged one-off task.
    case finished
    /// The rule no longer parses: the task is dead-lettered with this message.
    case broken(String)
}

/// A due calendar task at a claim.
package enum CalendarClaim {
    /// The catch-up decision.
    case decided(CalendarTiming.ClaimDecision)
    /// Overlap `allow`: lease `run`, a new one-off task, instead of the task, which moves to `nextRunAt` at once
    /// (`nil`: it has no occurrence left and is removed) with `skipped` occurrences counted for `reason`.
    case runSeparately(run: TaskRecord, nextRunAt: Int64?, skipped: UInt64, reason: String?)
    /// The rule no longer parses: the task is dead-lettered with this message, unclaimed.
    case broken(String)
}

extension TaskRecord {
    /// The last state of a task removed on a failed run (a calendar rule with no occurrence left): the record with
    /// the failure recorded, as the reply and the daemon's log show it.
    package func failed(_ error: String, at now: Int64) -> TaskRecord {
        var last = self
        last.lastError = truncateUTF8(error, limit: ProtocolLimits.maxErrorBytes)
        last.lastFailureAt = now
        return last
    }

    /// The record after a claim's catch-up decision (`runAt` and the skip counters; nothing else changes).
    package mutating func applySkips(runAt: Int64, skipped: UInt64, reason: String?) {
        self.runAt = runAt
        guard skipped > 0 else { return }
        skippedRuns &+= skipped
        lastSkip = reason
    }
}

/// The opaque cursor of `list` pages: a format byte, then the last task's position (`runAt`, id).
package enum ListCursor {
    /// Version byte of list cursors.
    static let format: UInt8 = 1

    /// The cursor that continues after the task at `position`.
    package static func encode(_ position: (Int64, String)) -> [UInt8] {
        var sink = ByteSink(capacity: 9 + position.1.utf8.count)
        sink.u8(format)
        sink.timeKey(position.0)
        sink.raw(position.1)
        return sink.bytes
    }

    /// The position a cursor continues after.
    /// - Throws: `invalidArgument` naming `cursor` for bytes that no page returned.
    package static func decode(_ bytes: [UInt8]) throws(StoreError) -> (Int64, String) {
        let decoded: (Int64, String)? = bytes.withUnsafeBytes { b in
            var s = ByteSource(b)
            guard s.u8() == format, let t = s.timeKey() else { return nil }
            return (t, s.restString())
        }
        guard let decoded else { throw .invalid("cursor", "not a cursor returned by a previous page") }
        return decoded
    }
}
