/// What a fixed-time rule does when its local time does not exist that day (the clock jumps over it: a DST
/// spring-forward, Lord Howe's 30-minute shift, or a whole day such as Pacific/Apia's 2011-12-30).
public enum GapPolicy: Sendable, Hashable, CaseIterable {
    /// Run once at the instant RFC 5545 (§3.3.5) gives the time: read with the UTC offset in effect before
    /// the gap, so New York 02:30 on 2026-03-08 runs at 07:30Z (03:30 EDT). The default.
    case shift
    /// Do not run that day (what systemd and Temporal do).
    case skip
    /// Run at the transition instant itself (New York: 07:00Z = 03:00 EDT), as cron runs such jobs "soon after
    /// the change".
    case atChange
}
