/// What a fixed-time rule does when its local time occurs twice that day (the clock is set back).
public enum FoldPolicy: Sendable, Hashable, CaseIterable {
    /// Run once, at the first occurrence (RFC 5545, cron, systemd). The default.
    case first
    /// Run once, at the last occurrence.
    case last
    /// Run at every occurrence.
    case both
}
