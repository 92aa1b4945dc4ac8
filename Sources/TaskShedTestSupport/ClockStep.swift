import Glibc

/// Sets the machine's wall clock to the time it already has, for tests of the wall-clock-step path.
///
/// Any `clock_settime(CLOCK_REALTIME)` that changes the offset between the realtime and monotonic clocks, even
/// by nanoseconds, cancels every timerfd armed with `TFD_TIMER_CANCEL_ON_SET`, exactly as an NTP step or a
/// manual change does. A step of ~0 therefore exercises that path without moving the clock of a machine that
/// other processes share.
///
/// - Important: Needs `CAP_SYS_TIME`. Every process with such a timerfd (other daemons under test, systemd)
///   sees the step; gate tests with `isPermitted` and cancel them (`Test.cancel`) when `stepByZero()` still
///   returns `EPERM`, so that they never pass without having stepped the clock.
public enum ClockStep {
    /// `CAP_SYS_TIME` from `<linux/capability.h>`.
    private static let capSysTime = 25

    /// Whether this process's effective capabilities include `CAP_SYS_TIME` (read from `/proc/self/status`),
    /// i.e. whether `stepByZero()` can be expected to succeed. Probing does not touch the clock.
    public static var isPermitted: Bool {
        guard let status = TextFile.read("/proc/self/status") else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            guard let mask = UInt64(hex, radix: 16) else { return false }
            return mask & (1 << UInt64(capSysTime)) != 0
        }
        return false
    }

    /// Sets `CLOCK_REALTIME` to its own current value (the reading plus the monotonic time that elapsed before
    /// the set, well under a microsecond). Corresponds to `clock_gettime` + `clock_settime(CLOCK_REALTIME)`.
    /// - Returns: 0 on success, else the `errno` of `clock_settime` (`EPERM` without `CAP_SYS_TIME`).
    public static func stepByZero() -> Int32 {
        var wall = timespec()
        var before = timespec()
        var after = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_MONOTONIC, &before)
        clock_gettime(CLOCK_MONOTONIC, &after)
        let elapsed = (after.tv_sec - before.tv_sec) * 1_000_000_000 + (after.tv_nsec - before.tv_nsec)
        var target = wall
        target.tv_nsec += elapsed
        target.tv_sec += target.tv_nsec / 1_000_000_000
        target.tv_nsec %= 1_000_000_000
        return clock_settime(CLOCK_REALTIME, &target) == 0 ? 0 : errno
    }
}
