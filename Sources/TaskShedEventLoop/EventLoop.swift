import CLibUV
import Glibc

/// One libuv loop (`uv_loop_t`) and the thread-affine state shared by its handles.
///
/// Lifecycle: `init()` → create handles → `run()` (returns after `stop()` or when no handle is left) → close
/// every handle → `close()`, which runs the loop until the close callbacks have run and checks that
/// `uv_loop_close` succeeds.
///
/// - Important: A loop and all its handles belong to the thread that runs it; nothing here is thread-safe.
public final class EventLoop {
    /// The libuv loop.
    let loop: UnsafeMutablePointer<uv_loop_t>
    /// One read buffer for every connection of this loop: a read callback consumes its bytes before returning
    /// (the frame decoder copies what it keeps), so connections never need buffers of their own.
    let readBuffer: UnsafeMutableRawBufferPointer
    private var isClosed = false

    /// Size of the shared read buffer: the most bytes one read callback delivers.
    public static let readBufferBytes = 256 * 1024

    /// Creates and initialises a loop. Corresponds to `uv_loop_init`.
    /// - Throws: `UVError` from `uv_loop_init`.
    public init() throws(UVError) {
        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let status = uv_loop_init(loop)
        if status < 0 {
            loop.deallocate()
            throw UVError(code: status, operation: "uv_loop_init")
        }
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readBufferBytes, alignment: 16)
    }

    deinit {
        // A loop that was never closed properly leaks its memory rather than freeing memory libuv may still
        // reference (handles that are still open point into it).
        if isClosed {
            loop.deallocate()
            readBuffer.deallocate()
        }
    }

    /// Runs the loop until `stop()` is called or no active handle is left. Corresponds to
    /// `uv_run(UV_RUN_DEFAULT)`.
    /// - Returns: `true` if handles are still active (the loop was stopped), `false` if it ran dry.
    @discardableResult
    public func run() -> Bool {
        uv_run(loop, UV_RUN_DEFAULT) != 0
    }

    /// Runs one iteration, polling for I/O without blocking. Corresponds to `uv_run(UV_RUN_NOWAIT)`.
    /// - Returns: `true` if handles are still active.
    @discardableResult
    public func runOnce() -> Bool {
        uv_run(loop, UV_RUN_NOWAIT) != 0
    }

    /// Makes `run()` return at the end of the current iteration. Corresponds to `uv_stop`.
    public func stop() {
        uv_stop(loop)
    }

    /// The loop's cached millisecond time (`uv_now`): good for coarse deadlines only; use `WallClock` for the
    /// scheduler's decisions.
    public var cachedMillis: UInt64 { uv_now(loop) }

    /// The type names of handles that are open and not closing, for diagnostics ("pipe", "timer"...).
    public func openHandleNames() -> [String] {
        final class Names { var list: [String] = [] }
        let names = Names()
        let context = Unmanaged.passUnretained(names).toOpaque()
        uv_walk(loop, { handle, argument in
            guard let handle, let argument else { return }
            if uv_is_closing(handle) == 0 {
                let names = Unmanaged<Names>.fromOpaque(argument).takeUnretainedValue()
                names.list.append(String(cString: uv_handle_type_name(handle.pointee.type)))
            }
        }, context)
        return names.list
    }

    /// Runs the loop dry (so every pending close callback runs) and closes it. Corresponds to `uv_loop_close`.
    ///
    /// Every handle must have been closed with `LoopHandle.close()` before; this does not close handles for the
    /// caller, because the caller's close logic (flushing, releasing leases) must have run.
    /// - Throws: `UVError` with `UV_EBUSY` naming the handles still open (the loop is left usable, nothing
    ///   is freed), or another `uv_loop_close` error.
    public func close() throws(UVError) {
        precondition(!isClosed, "EventLoop.close() called twice")
        let open = openHandleNames()
        if !open.isEmpty {
            throw UVError(code: UV_EBUSY.rawValue, operation: "uv_loop_close",
                          detail: "open handles: " + open.joined(separator: ", "))
        }
        uv_run(loop, UV_RUN_DEFAULT)
        try check(uv_loop_close(loop), "uv_loop_close")
        isClosed = true
    }

    /// Sets the calling thread's timer slack, the most the kernel may delay a timer expiry to batch wake-ups.
    /// The daemon sets 1 ns on its loop thread so the precise timer fires as early as the hardware allows.
    /// Corresponds to `prctl(PR_SET_TIMERSLACK)`.
    /// - Parameter nanoseconds: The slack (1 is the minimum; 0 restores the default).
    /// - Throws: `UVError` with the `errno` of `prctl`.
    public static func setTimerSlack(nanoseconds: UInt) throws(UVError) {
        if clibuv_set_timer_slack(nanoseconds) != 0 {
            throw UVError.fromErrno("prctl", detail: "PR_SET_TIMERSLACK")
        }
    }
}
