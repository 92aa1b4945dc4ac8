import CLibUV
import Glibc

/// A one-shot timer for absolute wall-clock deadlines with microsecond precision: a `timerfd` on
/// `CLOCK_REALTIME` armed with `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`, watched by the loop (`uv_poll_t`).
///
/// libuv's own timers have millisecond resolution and fire up to a millisecond early or late; a timerfd fires
/// about 50 µs after its deadline here (with a 1 ns timer slack, see `EventLoop.setTimerSlack`) and never early.
/// Because the deadline is absolute on the realtime clock, a task due at 12:00:00 fires at 12:00:00 by the wall
/// clock even after the clock is stepped. The step itself is reported through `onClockChange`: the kernel
/// reports it as `ECANCELED`, from the read of the timerfd or from the next `timerfd_settime`.
///
/// After a step the timer stays armed at the same absolute deadline (measured by the new clock): the kernel's
/// cancellation drops an expiry that happened just before the read, so the timer re-arms itself rather than
/// trust the kernel timer's state. An owner whose deadlines depend on the old clock re-arms or disarms in
/// `onClockChange`.
///
/// - Important: Loop-thread only (see `LoopHandle`). Closing the handle also closes the timerfd.
public final class PreciseTimer: LoopHandle {
    /// Runs when the armed deadline has passed. The timer is disarmed at that point.
    public var onFire: () -> Void
    /// Runs when the wall clock was set (stepped) while the timer was registered for it (armed, or fired since
    /// its last arming). An armed timer is still armed at the same absolute deadline; the owner may re-arm for
    /// another deadline or disarm.
    /// - Important: May run from inside `arm(atMicros:)` (when the kernel reports the step there, after the
    ///   timer has been armed for the new deadline), so it must not rely on `arm` having returned.
    public var onClockChange: () -> Void
    /// The armed deadline in µs since the epoch, or `nil` when disarmed (or fired).
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
    ///
    /// When the wall clock was set since the timerfd was last read, `timerfd_settime` arms the timer and then
    /// fails with `ECANCELED` (and clears the readiness the step had raised, so the read would never report
    /// it): the timer is armed all the same, and `onClockChange` runs before this method returns.
    /// - Parameter micros: The deadline in µs since the epoch.
    /// - Throws: `UVError` with the `errno` of `timerfd_settime` (never `ECANCELED`).
    public func arm(atMicros micros: Int64) throws(UVError) {
        if deadline == micros { return }
        let clockWasSet = try program(micros)
        deadline = micros
        if clockWasSet { onClockChange() }
    }

    /// Disarms the timer. Corresponds to `timerfd_settime` with a zero value.
    public func disarm() {
        guard deadline != nil else { return }
        var spec = itimerspec()
        timerfd_settime(descriptor, 0, &spec, nil)
        deadline = nil
    }

    /// Sets the kernel timer to `micros`.
    /// - Returns: Whether the kernel reported a clock step (`ECANCELED`); the timer is armed either way.
    private func program(_ micros: Int64) throws(UVError) -> Bool {
        // An all-zero it_value would disarm the timer; the earliest representable deadline is 1 ns.
        let clamped = max(micros, 0)
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(clamped / 1_000_000)
        spec.it_value.tv_nsec = Int(clamped % 1_000_000) * 1_000
        if clamped == 0 { spec.it_value.tv_nsec = 1 }
        let flags = Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET)
        if timerfd_settime(descriptor, flags, &spec, nil) == 0 { return false }
        // The kernel starts the timer before it checks for (and consumes) a pending clock step.
        if errno == ECANCELED { return true }
        throw UVError.fromErrno("timerfd_settime")
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
            // The cancelled read also discarded an expiry that may have happened just before the step, and the
            // kernel does not restart an expired timer: program the same deadline again (at once if it is past).
            if let deadline {
                do {
                    _ = try program(deadline)
                } catch {
                    // EINVAL/EBADF cannot happen for a deadline that was accepted before on this descriptor.
                    self.deadline = nil
                }
            }
            onClockChange()
        }
        // EAGAIN: the timer was re-armed or disarmed between the readiness event and the read; nothing is due.
    }

    override func didClose() {
        Glibc.close(descriptor)
    }
}
