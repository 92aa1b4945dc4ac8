import Foundation
import TaskShedCalendar
import TaskShedProtocol

/// Where a task is in its delivery lifecycle (scheduled, leased to a worker, dead-lettered).
public typealias TaskState = TaskShedProtocol.TaskState
/// A state filter for listing tasks (pending, due, paused, leased, dead).
public typealias StateFilter = TaskShedProtocol.StateFilter
/// What happened to one added task (inserted, replaced, kept).
public typealias AddOutcome = TaskShedProtocol.AddOutcome

/// A calendar rule with its policies (DST gap and fold, catch-up, overlap, jitter): see ``TaskSchedule/cron(_:timeZone:gap:fold:catchUp:catchUpWindow:overlap:jitter:jitterMode:)``.
public typealias CalendarSchedule = TaskShedProtocol.CalendarSchedule

/// How a task repeats: the original's `run_type` ("once" or "recurring") together with its `interval`, or a
/// calendar rule (cron or systemd syntax, in any time zone; a daemon speaking protocol version 3).
public enum TaskSchedule: Sendable, Hashable, CustomStringConvertible {
    /// Runs one time; the task is removed when a worker acknowledges it.
    case once
    /// Runs at `runAt`, then every `interval` (which must be positive; the daemon rejects other values with
    /// `.invalidArgument`). Microsecond resolution.
    case every(Duration)
    /// Runs at each occurrence of a calendar rule, the first at or after the task's `runAt`. Build one with
    /// ``cron(_:timeZone:gap:fold:catchUp:catchUpWindow:overlap:jitter:jitterMode:)`` or
    /// ``systemd(_:timeZone:gap:fold:catchUp:catchUpWindow:overlap:jitter:jitterMode:)``.
    case calendar(CalendarSchedule)

    /// Catch-up after downtime: what a calendar task does with occurrences that passed without a run.
    public enum CatchUp: Sendable, Hashable {
        /// Run none of them; wait for the next occurrence.
        case skip
        /// Run once, for the latest missed occurrence (the default).
        case one
        /// Run each missed occurrence in the window, at most the latest `max` (1 … 1000), oldest first.
        case all(max: Int)
    }

    /// A Vixie cron rule (`30 2 * * *`, `@daily`, `0 9 * * MON-FRI`, `0 0 L * *`, `CRON_TZ=Zone` prefix).
    ///
    /// ```swift
    /// try await scheduler.addTask(callback: "backup", schedule: .cron("30 2 * * *", timeZone: "Europe/Berlin"))
    /// ```
    /// The daemon parses the rule when the task is added and refuses an invalid one (`.invalidArgument` naming
    /// the field and token). Every policy is documented in the README ("Calendar schedules").
    /// - Parameters:
    ///   - expression: The rule.
    ///   - timeZone: The IANA zone it is read in (default UTC); a `CRON_TZ=` prefix wins.
    ///   - gap: A fixed local time that does not exist that day (spring forward): `.shift` (RFC 5545, default),
    ///     `.skip`, `.atChange`.
    ///   - fold: A fixed local time that occurs twice (fall back): `.first` (default), `.last`, `.both`.
    ///   - catchUp: Missed occurrences after downtime (default `.one`).
    ///   - catchUpWindow: How far back a missed occurrence still runs (default one hour; 1 s … 366 days).
    ///   - overlap: Occurrences due while the previous run still runs: `.skip` (default), `.queueOne`, or
    ///     `.allow` (each run is a one-off task of its own, `ID@OCCURRENCE`, beside the others).
    ///   - jitter: A random delay up to this, never reaching the next occurrence (default none; at most a day).
    ///   - jitterMode: `.random` (default) or `.fixed` (derived from the task id).
    public static func cron(
        _ expression: String, timeZone: String = "UTC", gap: CalendarSchedule.Gap = .shift,
        fold: CalendarSchedule.Fold = .first, catchUp: CatchUp = .one, catchUpWindow: Duration = .seconds(3600),
        overlap: CalendarSchedule.Overlap = .skip, jitter: Duration = .zero,
        jitterMode: CalendarSchedule.JitterMode = .random
    ) -> TaskSchedule {
        calendar(.cron, expression, timeZone, gap, fold, catchUp, catchUpWindow, overlap, jitter, jitterMode)
    }

    /// A systemd calendar rule (`Mon..Fri 09:00`, `*-*-~1 00:00`, `daily`, with an optional trailing zone);
    /// the parameters are those of ``cron(_:timeZone:gap:fold:catchUp:catchUpWindow:overlap:jitter:jitterMode:)``.
    public static func systemd(
        _ expression: String, timeZone: String = "UTC", gap: CalendarSchedule.Gap = .shift,
        fold: CalendarSchedule.Fold = .first, catchUp: CatchUp = .one, catchUpWindow: Duration = .seconds(3600),
        overlap: CalendarSchedule.Overlap = .skip, jitter: Duration = .zero,
        jitterMode: CalendarSchedule.JitterMode = .random
    ) -> TaskSchedule {
        calendar(.systemd, expression, timeZone, gap, fold, catchUp, catchUpWindow, overlap, jitter, jitterMode)
    }

    private static func calendar(
        _ syntax: CalendarSchedule.Syntax, _ expression: String, _ timeZone: String, _ gap: CalendarSchedule.Gap,
        _ fold: CalendarSchedule.Fold, _ catchUp: CatchUp, _ window: Duration, _ overlap: CalendarSchedule.Overlap,
        _ jitter: Duration, _ jitterMode: CalendarSchedule.JitterMode
    ) -> TaskSchedule {
        let policy: CalendarSchedule.CatchUp
        var maximum: UInt32 = 0
        switch catchUp {
        case .skip: policy = .skip
        case .one: policy = .one
        case .all(let max):
            policy = .all
            // Out-of-range values go to the daemon as they are (clamped into u32), which names the field.
            maximum = UInt32(clamping: max)
        }
        return .calendar(CalendarSchedule(
            syntax: syntax, expression: expression, timeZone: timeZone, gap: gap, fold: fold, catchUp: policy,
            catchUpMaximum: maximum, catchUpWindowMicros: window.saturatingMicros, overlap: overlap,
            jitterMicros: jitter.saturatingMicros, jitterMode: jitterMode))
    }

    /// Whether the task runs more than once (`run_type == "recurring"`).
    public var isRecurring: Bool {
        if case .once = self { return false }
        return true
    }

    /// The interval of a recurring task, `nil` for a one-off task.
    public var interval: Duration? {
        if case .every(let interval) = self { return interval }
        return nil
    }

    /// `"once"`, `"every 3.0 seconds"`, `"cron 30 2 * * * (Europe/Berlin)"`.
    public var description: String {
        switch self {
        case .once: return "once"
        case .every(let interval): return "every \(interval)"
        case .calendar(let calendar):
            return "\(calendar.syntax) \(calendar.expression) (\(calendar.timeZone.isEmpty ? "UTC" : calendar.timeZone))"
        }
    }

    /// The next `count` run times of a calendar schedule after `date` (occurrences, before jitter), computed by
    /// the same function the daemon uses; empty for the other kinds.
    /// - Throws: `TaskShedError(.invalidArgument)` naming `schedule` when the rule or its zone is invalid.
    public func nextRuns(after date: Date = .now, count: Int = 10) throws(TaskShedError) -> [Date] {
        guard case .calendar(let calendar) = self else { return [] }
        let rule: CalendarRule
        do {
            rule = try CalendarRule(calendar.expression, syntax: calendar.syntax == .cron ? .cron : .systemd,
                                    defaultTimeZone: calendar.timeZone.isEmpty ? "UTC" : calendar.timeZone)
        } catch {
            throw TaskShedError(.invalidArgument, field: "schedule", message: "\(error)")
        }
        let gap: GapPolicy
        switch calendar.gap {
        case .shift: gap = .shift
        case .skip: gap = .skip
        case .atChange: gap = .atChange
        }
        let fold: FoldPolicy
        switch calendar.fold {
        case .first: fold = .first
        case .last: fold = .last
        case .both: fold = .both
        }
        let dst = DSTPolicy(gap: gap, fold: fold)
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        return rule.occurrences(after: micros, count: max(0, count), dst: dst).map { Date(micros: $0.instant) }
    }
}

/// A task: what the scheduler adds, and what fetch, list and the workers return (the original's `Task`).
///
/// Build one to pass to ``Scheduler/addTasks(_:replaceExisting:)``; the fields below "Delivery state" are filled
/// in by the daemon and ignored when adding.
///
/// ```swift
/// let task = ScheduledTask(callback: "send_email", runAt: .now + 60, kwargs: ["to": "ada@example.com"])
/// ```
public struct ScheduledTask: Sendable, Hashable, Identifiable {
    /// Unique id; unless given, `randomID(runAt:)`: a version 7 UUID of the first run time, in lowercase hex
    /// without dashes.
    public var id: String
    /// The callback name a worker looks up in its callback map.
    public var callback: String
    /// The next execution time (for a task being run: the occurrence being run).
    public var runAt: Date
    /// Once or recurring.
    public var schedule: TaskSchedule
    /// Keyword arguments passed to the callback.
    public var kwargs: Kwargs
    /// Group for bulk operations, if any.
    public var group: String?
    /// A paused task never runs until resumed.
    public var paused: Bool
    /// Recurring only: after falling behind, run once and jump past now (`true`), or once per missed interval.
    public var coalesce: Bool
    /// Deliveries allowed before a failing one-off task is dead-lettered; `nil` means the daemon's default (3).
    public var maxAttempts: Int?

    // MARK: Delivery state (set by the daemon)

    /// When the task was paused; `nil` when it is not paused.
    public internal(set) var pausedAt: Date?
    /// Scheduled, leased or dead.
    public internal(set) var state: TaskState
    /// Deliveries of the current occurrence so far, this one included when the task is being run (1 on the
    /// first run).
    public internal(set) var attempt: Int
    /// The lease deadline while the task is leased to a worker.
    public internal(set) var leaseDeadline: Date?
    /// The last failure's message (a callback's error, "lease expired", "worker disconnected").
    public internal(set) var lastError: String?
    /// When the task was first added (`nil` for a task that was never stored).
    public internal(set) var createdAt: Date?
    /// When it was last delivered to a worker.
    public internal(set) var lastRunAt: Date?
    /// When it last failed.
    public internal(set) var lastFailureAt: Date?
    /// Calendar tasks: occurrences skipped so far by the catch-up or overlap policy.
    public internal(set) var skippedRuns: Int
    /// Calendar tasks: why the last occurrences were skipped, with when.
    public internal(set) var lastSkip: String?

    /// Creates a task to add, with the original's defaults.
    /// - Parameters:
    ///   - callback: The callback name.
    ///   - runAt: The first execution time (default: now).
    ///   - kwargs: Keyword arguments (default: `{}`).
    ///   - schedule: `.once` (default), `.every(interval)`, or a calendar rule (`.cron(…)`, `.systemd(…)`): its
    ///     first run is its first occurrence at or after `runAt`.
    ///   - id: The task id (default: `randomID(runAt:)`, a UUIDv7 of `runAt` in hex).
    ///   - group: A group for bulk operations.
    ///   - paused: Create it paused.
    ///   - coalesce: Recurring only: catch up with one run (default) or one run per missed interval.
    ///   - maxAttempts: Deliveries before a failing one-off task is dead-lettered (`nil`: the daemon's default).
    public init(
        callback: String,
        runAt: Date = Date(),
        kwargs: Kwargs = Kwargs(),
        schedule: TaskSchedule = .once,
        id: String? = nil,
        group: String? = nil,
        paused: Bool = false,
        coalesce: Bool = true,
        maxAttempts: Int? = nil
    ) {
        self.id = id ?? Self.randomID(runAt: runAt)
        self.callback = callback
        self.runAt = runAt
        self.schedule = schedule
        self.kwargs = kwargs
        self.group = group
        self.paused = paused
        self.coalesce = coalesce
        self.maxAttempts = maxAttempts
        self.pausedAt = nil
        self.state = .scheduled
        self.attempt = 0
        self.leaseDeadline = nil
        self.lastError = nil
        self.createdAt = nil
        self.lastRunAt = nil
        self.lastFailureAt = nil
        self.skippedRuns = 0
        self.lastSkip = nil
    }

    /// A random task id: a UUID in lowercase hex without dashes (the original's `uuid4().hex`).
    /// - Returns: 32 hex digits.
    public static func randomID() -> String {
        UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// A task id for a task first due at `runAt`: a version 7 UUID (RFC 9562) whose timestamp is `runAt`, in
    /// lowercase hex without dashes, so that it has the form of the original's `uuid4().hex`. The default id of a
    /// new task.
    ///
    /// Why the run time: the daemon's store keeps tasks in id order, and a one-off task is read and deleted when
    /// it falls due, so ids that sort by run time keep the tasks a worker receives together on disk (a batch of
    /// deliveries then touches a few pages instead of one random page each). Ids of one millisecond are ordered
    /// by their 74 random bits. Times before 1970 or after the year 10889 are clamped.
    /// - Parameter runAt: The task's first execution time.
    /// - Returns: 32 hex digits.
    public static func randomID(runAt: Date) -> String {
        let millis = (runAt.timeIntervalSince1970 * 1000).rounded(.down)
        let clamped = millis.isNaN || millis < 0 ? 0 : UInt64(Swift.min(millis, Double((1 << 48) - 1)))
        var random = SystemRandomNumberGenerator()
        // 48 bits of time, version 7, 12 random bits; variant 0b10, 62 random bits.
        let high = clamped << 16 | 0x7000 | random.next() & 0x0FFF
        let low = 0x8000_0000_0000_0000 | random.next() & 0x3FFF_FFFF_FFFF_FFFF
        return hex(high) + hex(low)
    }

    /// `v` as 16 lowercase hex digits.
    private static func hex(_ v: UInt64) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Decodes the kwargs as `type` (shorthand for `kwargs.decode(type)`).
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - decoder: The decoder to use.
    /// - Returns: The decoded value.
    /// - Throws: ``TaskShedError`` `.kwargsCoding`.
    public func decodeKwargs<T: Decodable>(as type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder())
        throws(TaskShedError) -> T
    {
        try kwargs.decode(type, decoder: decoder)
    }
}

// MARK: - Conversions to and from the wire model

extension ScheduledTask {
    /// A task from a record the daemon sent.
    init(record: TaskRecord) {
        self.id = record.id
        self.callback = record.callback
        self.runAt = Date(micros: record.runAt)
        switch record.schedule {
        case .once: self.schedule = .once
        case .interval(let micros): self.schedule = .every(.microseconds(micros))
        case .calendar(let calendar): self.schedule = .calendar(calendar)
        }
        self.kwargs = Kwargs(trustedBytes: record.kwargs)
        self.group = record.group
        self.paused = record.paused
        self.coalesce = record.coalesce
        self.maxAttempts = Int(record.maxAttempts)
        self.pausedAt = record.pausedAt.map(Date.init(micros:))
        self.state = record.state
        self.attempt = Int(record.attempt)
        self.leaseDeadline = record.leaseDeadline.map(Date.init(micros:))
        self.lastError = record.lastError
        self.createdAt = Date(micros: record.createdAt)
        self.lastRunAt = record.lastRunAt.map(Date.init(micros:))
        self.lastFailureAt = record.lastFailureAt.map(Date.init(micros:))
        self.skippedRuns = Int(clamping: record.skippedRuns)
        self.lastSkip = record.lastSkip
    }

    /// The wire specification of this task; `field` prefixes error field paths ("tasks[3]").
    func spec(field: String) throws(TaskShedError) -> TaskSpec {
        let schedule: Schedule
        switch self.schedule {
        case .once: schedule = .once
        case .every(let interval): schedule = .interval(micros: try interval.micros(field: field + ".schedule"))
        case .calendar(let calendar): schedule = .calendar(calendar)
        }
        var maxAttempts: UInt32 = 0
        if let requested = self.maxAttempts {
            guard requested >= 1, let value = UInt32(exactly: requested) else {
                throw TaskShedError(
                    .invalidUsage, field: field + ".max_attempts",
                    message: "maxAttempts must be between 1 and \(UInt32.max), or nil for the daemon's default; got \(requested)")
            }
            maxAttempts = value
        }
        return TaskSpec(
            id: id, callback: callback, runAt: try runAt.micros(field: field + ".run_at"), schedule: schedule,
            kwargs: kwargs.jsonBytes, group: group, paused: paused, coalesce: coalesce, maxAttempts: maxAttempts)
    }
}

extension Date {
    /// A date from microseconds since the Unix epoch.
    init(micros: Int64) {
        self.init(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// Microseconds since the Unix epoch, rounded to the nearest microsecond.
    func micros(field: String) throws(TaskShedError) -> Int64 {
        let value = (timeIntervalSince1970 * 1_000_000).rounded()
        guard let micros = Int64(exactly: value) else {
            throw TaskShedError(.invalidUsage, field: field, message: "date \(self) is outside the representable range")
        }
        return micros
    }
}

extension Duration {
    /// Whole microseconds (rounded towards zero), or `.invalidUsage` when the duration does not fit.
    func micros(field: String) throws(TaskShedError) -> Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000)
        guard !overflow, !overflow2 else {
            throw TaskShedError(.invalidUsage, field: field, message: "duration \(self) does not fit in 64-bit microseconds")
        }
        return sum
    }

    /// Whole microseconds, saturating (for durations the client itself chose, such as a lease length).
    var saturatingMicros: Int64 {
        (try? micros(field: "")) ?? (self < .zero ? Int64.min : Int64.max)
    }
}
