/// How a task repeats: once, or at a fixed interval (more kinds, such as cron, can be added without a
/// protocol version break because a schedule travels as a kind byte plus a length-prefixed body).
///
/// On the wire (see `proto-spec/PROTOCOL.md`, "Schedule"):
/// ```
/// +---------+----------------+------------------+
/// | kind u8 | body_len u32   | body (body_len)  |
/// +---------+----------------+------------------+
///   0 once:      body is empty
///   1 interval:  body is i64 interval_us (> 0)
/// ```
public enum Schedule: Sendable, Hashable {
    /// Runs one time at `runAt`, then the task is removed when the worker acknowledges it.
    case once
    /// Runs at `runAt`, then every `micros` microseconds (must be > 0).
    case interval(micros: Int64)

    /// The wire kind byte of this schedule.
    public var kind: ScheduleKind {
        switch self {
        case .once: return .once
        case .interval: return .interval
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
}

/// The kind byte that introduces a `Schedule` on the wire.
public enum ScheduleKind: UInt8, Sendable, Hashable, CaseIterable {
    /// A one-off task.
    case once = 0
    /// A recurring task with a fixed interval.
    case interval = 1
}
