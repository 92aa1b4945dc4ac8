/// What to do with occurrences missed while the daemon was down or no worker took them.
///
/// Only occurrences inside the catch-up window (the last `window` before now) are candidates; older ones are
/// skipped and counted (`CatchUpPlan.skippedOutsideWindow`). Never a flood: at most `max` runs for `all`.
public enum CatchUpPolicy: Sendable, Hashable {
    /// Run none of them; wait for the next occurrence.
    case skip
    /// Run once for everything missed, at once (the latest missed occurrence is the one recorded). The default,
    /// like systemd's `Persistent=true` and TaskShed's `coalesce`.
    case one
    /// Run each missed occurrence in the window, but at most `max` (the most recent ones), in order.
    case all(max: Int)
}
