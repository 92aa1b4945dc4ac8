import Foundation

/// The clock reading and time zone that time parsing and formatting are relative to.
///
/// Commands take `TimeContext.current()`; tests pass a fixed instant and zone so that results never depend on
/// when or where they run.
public struct TimeContext: Sendable {
    /// "Now", in microseconds since the epoch.
    public var nowMicros: Int64
    /// The local time zone for parsing local times and showing times.
    public var timeZone: TimeZone

    /// Creates a context from a fixed instant and zone.
    public init(nowMicros: Int64, timeZone: TimeZone) {
        self.nowMicros = nowMicros
        self.timeZone = timeZone
    }

    /// The system clock and the process's time zone (`TZ`, else the system's).
    public static func current() -> TimeContext {
        TimeContext(nowMicros: currentMicros(), timeZone: TimeZone.current)
    }

    /// The system wall clock in microseconds since the epoch.
    public static func currentMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// The resolver for `timeZone`.
    public var resolver: LocalTimeResolver { LocalTimeResolver(timeZone: timeZone) }
}
