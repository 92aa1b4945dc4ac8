/// How a task repeats: once, at a fixed interval, or by a calendar rule (version 3). A schedule travels as a kind
/// byte plus a length-prefixed body, so a receiver that meets a kind it does not know still finds the end.
///
/// On the wire (see `proto-spec/PROTOCOL.md`, "Schedule"):
/// ```
/// +---------+----------------+------------------+
/// | kind u8 | body_len u32   | body (body_len)  |
/// +---------+----------------+------------------+
///   0 once:      body is empty
///   1 interval:  body is i64 interval_us (> 0)
///   2 calendar:  body is a CalendarSchedule (protocol version 3)
/// ```
public enum Schedule: Sendable, Hashable {
    /// Runs one time at `runAt`, then the task is removed when the worker acknowledges it.
    case once
    /// Runs at `runAt`, then every `micros` microseconds (must be > 0).
    case interval(micros: Int64)
    /// Runs at each occurrence of a cron or systemd calendar rule (protocol version 3).
    ///
    /// `indirect`: the rule and its policies live in a box, so a schedule stays one word and a tag, as small as
    /// an interval's. Inline, the payload made every `TaskRecord` ~70 bytes larger, and the drain's CPU per task
    /// (records copied through claims, leases and pushes) rose by about a fifth.
    indirect case calendar(CalendarSchedule)

    /// The wire kind byte of this schedule.
    public var kind: ScheduleKind {
        switch self {
        case .once: return .once
        case .interval: return .interval
        case .calendar: return .calendar
        }
    }

    /// Whether the task runs more than once (the original's `run_type == "recurring"`).
    public var isRecurring: Bool {
        if case .once = self { return false }
        return true
    }

    /// The interval in microseconds, or `nil` for a one-off task.
    public var intervalMicros: Int64? {
        if case .interval(let micros) = self { return micros }
        return nil
    }

    /// The calendar rule and its policies, or `nil` for the other kinds.
    public var calendar: CalendarSchedule? {
        if case .calendar(let calendar) = self { return calendar }
        return nil
    }
}

/// The kind byte that introduces a `Schedule` on the wire.
public enum ScheduleKind: UInt8, Sendable, Hashable, CaseIterable {
    /// A one-off task.
    case once = 0
    /// A recurring task with a fixed interval.
    case interval = 1
    /// A recurring task on a calendar rule (protocol version 3).
    case calendar = 2
}
