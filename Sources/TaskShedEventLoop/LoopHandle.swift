import CLibUV

/// A libuv handle owned by a Swift object: the base of every handle type in this module.
///
/// The handle's memory is allocated with the object and freed only in libuv's close callback. While the handle
/// is open, libuv's `data` pointer holds a strong reference to the object, so the object lives at least until
/// the close callback even if its owner lets go of it; call `close()` to end it.
///
/// - Important: Every handle belongs to the loop thread: create, use and close it only from that thread (inside
///   loop callbacks, or before/after `EventLoop.run()` on the thread that calls it).
public class LoopHandle {
    /// The `uv_*_t` memory, sized for the concrete handle type.
    let rawHandle: UnsafeMutableRawPointer
    /// The loop this handle belongs to.
    public let loop: EventLoop
    /// Whether `close()` has been called (the close callback may not have run yet).
    public private(set) var isClosing = false
    /// Whether libuv initialised the handle (until then closing means freeing the memory only).
    private var isInitialised = false
    /// Called once from the close callback, after libuv is done with the handle.
    public var onClose: (() -> Void)?

    init<Handle>(loop: EventLoop, type: Handle.Type) {
        self.loop = loop
        rawHandle = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Handle>.size, alignment: MemoryLayout<Handle>.alignment)
    }

    /// The handle as `uv_handle_t`.
    var handle: UnsafeMutablePointer<uv_handle_t> { rawHandle.assumingMemoryBound(to: uv_handle_t.self) }

    /// The handle as a stream (only for stream handles).
    var stream: UnsafeMutablePointer<uv_stream_t> { rawHandle.assumingMemoryBound(to: uv_stream_t.self) }

    /// Records that `uv_*_init` succeeded: from now on the handle retains `self` until its close callback.
    func didInitialise() {
        isInitialised = true
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Frees the memory of a handle whose `uv_*_init` failed (no close callback will come).
    func discardUninitialised() {
        precondition(!isInitialised, "an initialised handle must be closed with close()")
        rawHandle.deallocate()
    }

    /// Closes the handle (`uv_close`); `onClose` runs from libuv's close callback. Closing twice does nothing.
    ///
    /// Pending write requests on a stream are cancelled (their callbacks run with `UV_ECANCELED` first).
    public func close() {
        guard !isClosing else { return }
        isClosing = true
        willClose()
        uv_close(handle) { handle in
            guard let handle, let data = handle.pointee.data else { return }
            let owner = Unmanaged<LoopHandle>.fromOpaque(data).takeRetainedValue()
            handle.pointee.data = nil
            owner.rawHandle.deallocate()
            owner.didClose()
            owner.onClose?()
            owner.onClose = nil
        }
    }

    /// Hook for subclasses: runs in `close()` before `uv_close`.
    func willClose() {}

    /// Hook for subclasses: runs in the close callback after the handle memory is freed.
    func didClose() {}

    /// Reaches the Swift owner of a handle from a C callback.
    static func owner<T: LoopHandle>(of handle: UnsafeMutableRawPointer?, as type: T.Type) -> T? {
        guard let handle else { return nil }
        let base = handle.assumingMemoryBound(to: uv_handle_t.self)
        guard let data = base.pointee.data else { return nil }
        return unsafeDowncast(Unmanaged<LoopHandle>.fromOpaque(data).takeUnretainedValue(), to: T.self)
    }
}
