import CLibUV

/// Wakes the loop from another thread (`uv_async_t`): the other thread calls `signal()`, and `onWake` runs on
/// the loop thread soon after. Several signals before the loop runs coalesce into one `onWake`.
///
/// - Important: Create, close and set `onWake` on the loop thread (see `LoopHandle`); only `signal()` may be
///   called from any thread, and only while the handle is open (its owner closes it after stopping the
///   threads that signal).
public final class CrossThreadWakeup: LoopHandle, @unchecked Sendable {
    /// Runs on the loop thread after one or more `signal()` calls.
    public var onWake: () -> Void

    /// Creates the handle. Corresponds to `uv_async_init`.
    /// - Throws: `UVError` from `uv_async_init`.
    public init(loop: EventLoop, onWake: @escaping () -> Void) throws(UVError) {
        self.onWake = onWake
        super.init(loop: loop, type: uv_async_t.self)
        let status = uv_async_init(loop.loop, rawHandle.assumingMemoryBound(to: uv_async_t.self)) { async in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(async), as: CrossThreadWakeup.self) else {
                return
            }
            owner.onWake()
        }
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_async_init")
        }
        didInitialise()
        // A wake-up handle alone must not keep a stopping loop alive.
        uv_unref(handle)
    }

    /// Asks the loop to run `onWake` (`uv_async_send`; safe from any thread).
    public func signal() {
        uv_async_send(rawHandle.assumingMemoryBound(to: uv_async_t.self))
    }
}
