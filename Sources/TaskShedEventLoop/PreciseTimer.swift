import CLibUV
import Glibc

/// A one-shot timer for absolute wall-clock deadlines with microsecond precision: a `timerfd` on
/// `CLOCK_REALTIME` armed with `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`, watched by the loop (`uv_poll_t`).
///
/// libuv's own timers have millisecond resolution and fire up to a millisecond early or late; a timerfd fires
/// about 50 µs after its deadline here (with a 1 ns timer slack, see `EventLoop.setTimerSlack`) and never early.
/// Because the deadline is absolute on the realtime clock, a task due at 12:00:00 fires at 12:00:00 by the wall
/// clock even after the clock is stepped; the step itself is reported through `onClockChange` (the kernel
/// cancels the timer and the read fails with `ECANCELED`), and the owner must re-arm.
///
/// - Important: Loop-thread only (see `LoopHandle`). Closing the handle also closes the timerfd.
public final class PreciseTimer: LoopHandle {
    /// Runs when the armed deadline has passed. The timer is disarmed at that point.
    public var onFire: () -> Void
    /// Runs when the wall clock was set (stepped) while the timer was armed; the timer is disarmed and must be
    /// re-armed by the owner (deadlines are compared against the new wall clock).
    public var onClockChange: () -> Void
    /// The armed deadline in µs since the epoch, or `nil` when disarmed.
    public private(set) var deadline: Int64?
    private let descriptor: Int32

    /// Creates a disarmed timer. Corresponds to `timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC)`,
    /// `uv_poll_init` and `uv_poll_start(UV_READABLE)`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - onFire: Runs at the deadline.
    ///   - onClockChange: Runs when the wall clock was stepped.
    /// - Throws: `UVError` with the `errno` of `timerfd_create`, or from `uv_poll_init`/`uv_poll_start`.
    public init(loop: EventLoop, onFire: @escaping () -> Void, onClockChange: @escaping () -> Void) throws(UVError) {
        self.onFire = onFire
        self.onClockChange = onClockChange
        let fd = timerfd_create(CLOCK_REALTIME, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        if fd < 0 {
            throw UVError.fromErrno("timerfd_create")
        }
        descriptor = fd
        super.init(loop: loop, type: uv_poll_t.self)
        let poll = rawHandle.assumingMemoryBound(to: uv_poll_t.self)
        let status = uv_poll_init(loop.loop, poll, fd)
        if status < 0 {
            discardUninitialised()
            Glibc.close(fd)
            throw UVError(code: status, operation: "uv_poll_init", detail: "timerfd")
        }
        didInitialise()
        let started = uv_poll_start(poll, Int32(UV_READABLE.rawValue)) { poll, status, _ in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(poll), as: PreciseTimer.self) else {
                return
            }
            owner.readable(status: status)
        }
        if started < 0 {
            close()
            throw UVError(code: started, operation: "uv_poll_start", detail: "timerfd")
        }
    }

    /// Lets the loop end while this timer's poll handle is active (`uv_unref`).
    public func unreference() {
        uv_unref(handle)
    }

    /// Arms the timer for an absolute wall-clock deadline, replacing any previous one; a deadline in the past
    /// fires at the next loop iteration. Corresponds to `timerfd_settime(TFD_TIMER_ABSTIME |
    /// TFD_TIMER_CANCEL_ON_SET)`.
    /// - Parameter micros: The deadline in µs since the epoch.
    /// - Throws: `UVError` with the `errno` of `timerfd_settime`.
    public func arm(atMicros micros: Int64) throws(UVError) {
        if deadline == micros { return }
        // An all-zero it_value would disarm the timer; the earliest representable deadline is 1 ns.
        let clamped = max(micros, 0)
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(clamped / 1_000_000)
        spec.it_value.tv_nsec = Int(clamped % 1_000_000) * 1_000
        if clamped == 0 { spec.it_value.tv_nsec = 1 }
        let flags = Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET)
        if timerfd_settime(descriptor, flags, &spec, nil) != 0 {
            throw UVError.fromErrno("timerfd_settime")
        }
        deadline = micros
    }

    /// Disarms the timer. Corresponds to `timerfd_settime` with a zero value.
    public func disarm() {
        guard deadline != nil else { return }
        var spec = itimerspec()
        timerfd_settime(descriptor, 0, &spec, nil)
        deadline = nil
    }

    private func readable(status: Int32) {
        var expirations: UInt64 = 0
        let count = read(descriptor, &expirations, MemoryLayout<UInt64>.size)
        if count == MemoryLayout<UInt64>.size {
            deadline = nil
            onFire()
            return
        }
        if count < 0 && errno == ECANCELED {
            deadline = nil
            onClockChange()
        }
        // EAGAIN: the timer was re-armed or disarmed between the readiness event and the read; nothing is due.
    }

    override func didClose() {
        Glibc.close(descriptor)
    }
}
