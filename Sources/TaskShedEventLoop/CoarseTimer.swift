import CLibUV

/// A millisecond timer on the loop's clock (`uv_timer_t`): for deadlines where a millisecond does not matter,
/// such as the handshake deadline, watchdog pings and shutdown grace periods. Not for task due times: see
/// `PreciseTimer`.
///
/// - Important: Loop-thread only (see `LoopHandle`).
public final class CoarseTimer: LoopHandle {
    /// Runs when the timer fires.
    public var onFire: () -> Void

    /// Creates a stopped timer. Corresponds to `uv_timer_init`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - onFire: Runs on every expiry.
    /// - Throws: `UVError` from `uv_timer_init`.
    public init(loop: EventLoop, onFire: @escaping () -> Void) throws(UVError) {
        self.onFire = onFire
        super.init(loop: loop, type: uv_timer_t.self)
        let status = uv_timer_init(loop.loop, rawHandle.assumingMemoryBound(to: uv_timer_t.self))
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_timer_init")
        }
        didInitialise()
    }

    private var timer: UnsafeMutablePointer<uv_timer_t> { rawHandle.assumingMemoryBound(to: uv_timer_t.self) }

    /// Starts (or restarts) the timer. Corresponds to `uv_timer_start`.
    /// - Parameters:
    ///   - afterMillis: Delay before the first expiry.
    ///   - repeatMillis: Period after that, or 0 for a one-shot timer.
    public func start(afterMillis: UInt64, repeatMillis: UInt64 = 0) {
        guard !isClosing else { return }
        uv_timer_start(timer, { timer in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(timer), as: CoarseTimer.self) else {
                return
            }
            owner.onFire()
        }, afterMillis, repeatMillis)
    }

    /// Stops the timer. Corresponds to `uv_timer_stop`.
    public func stop() {
        guard !isClosing else { return }
        uv_timer_stop(timer)
    }

    /// Lets the loop end while this timer is active (`uv_unref`): for periodic housekeeping that must not
    /// keep a stopping loop alive.
    public func unreference() {
        uv_unref(handle)
    }
}
