import CLibUV

/// Delivers a POSIX signal to the loop thread as an ordinary callback (`uv_signal_t`), so that a handler can
/// touch loop state safely.
///
/// - Important: Loop-thread only (see `LoopHandle`).
public final class SignalWatcher: LoopHandle {
    /// Runs with the signal number each time the signal arrives.
    public var onSignal: (Int32) -> Void

    /// Watches `signal`. Corresponds to `uv_signal_init` and `uv_signal_start`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - signal: The signal number (`SIGTERM`, `SIGINT`...).
    ///   - onSignal: The handler.
    /// - Throws: `UVError` from `uv_signal_init` or `uv_signal_start`.
    public init(loop: EventLoop, signal: Int32, onSignal: @escaping (Int32) -> Void) throws(UVError) {
        self.onSignal = onSignal
        super.init(loop: loop, type: uv_signal_t.self)
        let handle = rawHandle.assumingMemoryBound(to: uv_signal_t.self)
        let status = uv_signal_init(loop.loop, handle)
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_signal_init")
        }
        didInitialise()
        let started = uv_signal_start(handle, { handle, signum in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(handle), as: SignalWatcher.self) else {
                return
            }
            owner.onSignal(signum)
        }, signal)
        if started < 0 {
            close()
            throw UVError(code: started, operation: "uv_signal_start", detail: "signal \(signal)")
        }
    }

    /// Lets the loop end while this watcher is active (`uv_unref`).
    public func unreference() {
        uv_unref(handle)
    }
}
