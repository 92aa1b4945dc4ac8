import Foundation
import TaskShedProtocol

/// Where a task is in its delivery lifecycle (scheduled, leased to a worker, dead-lettered).
public typealias TaskState = TaskShedProtocol.TaskState
/// A state filter for listing tasks (pending, due, paused, leased, dead).
public typealias StateFilter = TaskShedProtocol.StateFilter
/// What happened to one added task (inserted, replaced, kept).
public typealias AddOutcome = TaskShedProtocol.AddOutcome

/// How a task repeats: the original's `run_type` ("once" or "recurring") together with its `interval`.
public enum TaskSchedule: Sendable, Hashable, CustomStringConvertible {
    /// Runs one time; the task is removed when a worker acknowledges it.
    case once
    /// Runs at `runAt`, then every `interval` (which must be positive; the daemon rejects other values with
    /// `.invalidArgument`). Microsecond resolution.
    case every(Duration)

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

    /// `"once"` or `"every 3.0 seconds"`.
    public var description: String {
        switch self {
        case .once: return "once"
        case .every(let interval): return "every \(interval)"
        }
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

    /// Creates a task to add, with the original's defaults.
    /// - Parameters:
    ///   - callback: The callback name.
    ///   - runAt: The first execution time (default: now).
    ///   - kwargs: Keyword arguments (default: `{}`).
    ///   - schedule: `.once` (default) or `.every(interval)`.
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
    }

    /// The wire specification of this task; `field` prefixes error field paths ("tasks[3]").
    func spec(field: String) throws(TaskShedError) -> TaskSpec {
        let schedule: Schedule
        switch self.schedule {
        case .once: schedule = .once
        case .every(let interval): schedule = .interval(micros: try interval.micros(field: field + ".schedule"))
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
