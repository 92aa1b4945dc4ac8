/// Where a task is in its delivery lifecycle, as stored and as sent on the wire (`state u8`).
///
/// Whether a scheduled task is *due* (its `runAt` has passed) or *paused* is not a separate state: it follows
/// from `runAt` and `paused`. A one-off task that succeeds is removed, so "succeeded" is never stored.
/// See the lifecycle diagram in `proto-spec/PROTOCOL.md`.
public enum TaskState: UInt8, Sendable, Hashable, CaseIterable {
    /// Waiting for `runAt` (or already due and waiting for a worker), possibly paused.
    case scheduled = 0
    /// Delivered to a worker that holds a lease on it until `leaseDeadline`.
    case leased = 1
    /// Out of attempts: kept on the dead-letter list with its last error until retried or purged.
    case dead = 2
}

/// A state filter for listing tasks: the stored states plus the derived ones an operator asks about.
public enum StateFilter: UInt8, Sendable, Hashable, CaseIterable {
    /// Scheduled, not paused, and not yet due.
    case pending = 0
    /// Scheduled, not paused, and due (`runAt <= now`), waiting for a worker.
    case due = 1
    /// Scheduled and paused.
    case paused = 2
    /// Leased to a worker (running).
    case leased = 3
    /// Dead-lettered.
    case dead = 4
}
