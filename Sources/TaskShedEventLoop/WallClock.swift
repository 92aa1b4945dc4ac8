import Glibc

/// The wall clock the scheduler runs by: `CLOCK_REALTIME` in microseconds since the Unix epoch.
///
/// Always read fresh: the loop's cached time (`uv_now`) is milliseconds and stale after a long callback, and
/// deciding "is it due?" from it makes tasks fire early or late.
public enum WallClock {
    /// The current wall-clock time in microseconds since the epoch. Corresponds to `clock_gettime(CLOCK_REALTIME)`.
    /// - Returns: Microseconds since 1970-01-01T00:00:00Z.
    public static func nowMicros() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    /// The monotonic clock in nanoseconds (for measuring durations that must not jump with the wall clock).
    /// Corresponds to `clock_gettime(CLOCK_MONOTONIC)`.
    /// - Returns: Nanoseconds since an arbitrary fixed point.
    public static func monotonicNanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
