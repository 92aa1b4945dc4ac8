import CLibUV

/// Runs a callback at the end of every loop iteration, after all I/O callbacks of that iteration
/// (`uv_check_t`).
///
/// The daemon uses it to act once per iteration on everything its I/O callbacks gathered: push the staged
/// tasks that are due, start the next store job with the requests queued so far (group commit), re-arm the
/// timer, and write each connection's output in one go.
///
/// - Important: Loop-thread only (see `LoopHandle`). The hook does not keep the loop alive on its own
///   (it is unreferenced), so a stopping daemon is not held up by it.
public final class IterationHook: LoopHandle {
    /// Runs once per iteration.
    public var onIteration: () -> Void

    /// Creates and starts the hook. Corresponds to `uv_check_init` and `uv_check_start`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - onIteration: The callback.
    /// - Throws: `UVError` from `uv_check_init`.
    public init(loop: EventLoop, onIteration: @escaping () -> Void) throws(UVError) {
        self.onIteration = onIteration
        super.init(loop: loop, type: uv_check_t.self)
        let check = rawHandle.assumingMemoryBound(to: uv_check_t.self)
        let status = uv_check_init(loop.loop, check)
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_check_init")
        }
        didInitialise()
        uv_check_start(check) { check in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(check), as: IterationHook.self) else {
                return
            }
            owner.onIteration()
        }
        uv_unref(handle)
    }
}
