/// What the daemon does when an occurrence falls due while the task's previous run still holds its lease.
///
/// Only the value lives here; the daemon applies it (it knows about leases) and counts what it skips.
public enum OverlapPolicy: Sendable, Hashable, CaseIterable {
    /// Drop the new occurrence and count it as skipped (the default, as in Temporal).
    case skip
    /// Keep at most one occurrence waiting; it runs when the current run ends. Further ones are skipped.
    case queueOne
    /// Run the new occurrence alongside the current one.
    case allow
}
