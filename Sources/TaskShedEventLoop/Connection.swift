import CLibUV
import Glibc

/// One accepted client connection (`uv_pipe_t` from a `UnixListener`, or `uv_tcp_t` from a `TCPListener`): reads
/// into the loop's shared buffer, gathers writes.
///
/// Output is gathered: `write(_:)` (or appending to `outputBuffer` directly, which the frame encoder does)
/// only stores bytes; `flush()` hands everything gathered since the last flush to the kernel in one
/// `uv_try_write`, and whatever the socket does not take at once goes to `uv_write` requests (of at most
/// `maxWriteRequestBytes` each) that own a copy. The owner flushes once per loop iteration, so a burst of
/// replies costs one system call.
///
/// Flow control: `onDrained` says when the kernel took every queued byte (the owner can produce more), and
/// `outputWaitingSinceNanos` how long the queued bytes have waited without the peer reading any of them.
///
/// - Important: Loop-thread only (see `LoopHandle`). The bytes passed to `onData` are valid only during the
///   callback.
public final class Connection: LoopHandle {
    /// Receives each chunk of bytes read (valid only during the call).
    public var onData: (UnsafeRawBufferPointer) -> Void = { _ in }
    /// Runs once when the peer closed its end (`nil`) or reading failed; the connection is not closed by it.
    public var onEnd: (UVError?) -> Void = { _ in }
    /// Bytes gathered for the next `flush()`. Appending here directly avoids a copy.
    public var outputBuffer: [UInt8] = []
    /// Bytes handed to `uv_write` whose write callback has not run yet (the kernel did not take them).
    public private(set) var queuedOutputBytes = 0
    /// Total bytes written to the socket (for statistics and tests).
    public private(set) var bytesWritten: UInt64 = 0
    /// Runs when the write requests queued by `flush()` have all completed (the kernel took every byte): the
    /// owner may gather more output.
    public var onDrained: () -> Void = {}
    /// Set by `closeAfterFlush()`: stop reading, close when the last byte is written.
    public private(set) var isClosingAfterFlush = false
    /// Set by `closeAfterFlush(awaitingPeerClose: true)`: input is read and discarded, and once the output is
    /// written the write side is shut down and the connection closes when the peer closes its end.
    public private(set) var awaitsPeerClose = false
    /// When (monotonic ns) output began waiting in write requests, or the peer last read some of it; `nil`
    /// while no write request is queued.
    public private(set) var outputWaitingSinceNanos: UInt64?
    /// The largest single `uv_write` request: each completion is a sign of progress (a peer that reads slowly
    /// but steadily keeps completing requests), and each request's copy stays small.
    public static let maxWriteRequestBytes = 1 << 20
    private var isReading = false
    private var isShutDown = false
    /// Bytes read and dropped while awaiting the peer's close.
    private var discardedBytes = 0
    /// Most bytes a closing connection reads and drops before it closes without waiting any more.
    static let maxDiscardedBytes = 1 << 20

    /// Bytes not yet taken by the kernel: gathered plus queued. Compare with the slow-consumer cap.
    public var pendingOutputBytes: Int { outputBuffer.count + queuedOutputBytes }

    /// The kind of stream handle a connection wraps: everything but its creation goes through `uv_stream_t`.
    enum Transport {
        /// A Unix stream socket (`uv_pipe_t`).
        case unix
        /// A TCP socket (`uv_tcp_t`).
        case tcp
    }

    init(loop: EventLoop, transport: Transport = .unix) throws(UVError) {
        let status: Int32
        switch transport {
        case .unix:
            super.init(loop: loop, type: uv_pipe_t.self)
            status = uv_pipe_init(loop.loop, rawHandle.assumingMemoryBound(to: uv_pipe_t.self), 0)
        case .tcp:
            super.init(loop: loop, type: uv_tcp_t.self)
            status = uv_tcp_init(loop.loop, rawHandle.assumingMemoryBound(to: uv_tcp_t.self))
        }
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: transport == .unix ? "uv_pipe_init" : "uv_tcp_init")
        }
        didInitialise()
    }

    /// The socket descriptor. Corresponds to `uv_fileno`.
    /// - Throws: `UVError` (`UV_EBADF` once closing).
    public func descriptor() throws(UVError) -> Int32 {
        var fd: uv_os_fd_t = -1
        try check(uv_fileno(handle, &fd), "uv_fileno")
        return fd
    }

    /// The peer's credentials (Unix sockets only). Corresponds to `getsockopt(SO_PEERCRED)`.
    /// - Throws: `UVError` from `uv_fileno` or `getsockopt`.
    public func peerCredentials() throws(UVError) -> PeerCredentials {
        try PeerCredentials.of(descriptor: descriptor())
    }

    /// Starts delivering reads to `onData`. Corresponds to `uv_read_start`.
    /// - Throws: `UVError` from `uv_read_start`.
    public func startReading() throws(UVError) {
        guard !isReading, !isClosing else { return }
        try check(uv_read_start(stream, { handle, _, buffer in
            guard let buffer, let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(handle), as: Connection.self)
            else { return }
            let shared = owner.loop.readBuffer
            buffer.pointee.base = shared.baseAddress?.assumingMemoryBound(to: CChar.self)
            buffer.pointee.len = shared.count
        }, { handle, count, _ in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(handle), as: Connection.self) else {
                return
            }
            owner.didRead(count: count)
        }), "uv_read_start")
        isReading = true
    }

    /// Stops reading (for example while the connection is being closed). Corresponds to `uv_read_stop`.
    public func stopReading() {
        guard isReading, !isClosing else { return }
        uv_read_stop(stream)
        isReading = false
    }

    private func didRead(count: Int) {
        if awaitsPeerClose {
            // Closing: what the peer still sends is dropped; its end (or a read error) completes the close. A peer
            // that goes on streaming gets the reset it asks for.
            discardedBytes += max(0, count)
            if count < 0 || discardedBytes > Self.maxDiscardedBytes { close() }
            return
        }
        if count > 0 {
            onData(UnsafeRawBufferPointer(start: loop.readBuffer.baseAddress, count: count))
        } else if count < 0 {
            stopReading()
            let code = Int32(truncatingIfNeeded: count)
            onEnd(code == UV_EOF.rawValue ? nil : UVError(code: code, operation: "read"))
        }
        // count == 0 is libuv's "nothing this time" (EAGAIN); there is nothing to do.
    }

    /// Gathers bytes for the next `flush()`.
    /// - Parameter bytes: The bytes to send.
    public func write(_ bytes: some Sequence<UInt8>) {
        outputBuffer.append(contentsOf: bytes)
    }

    /// Sends everything gathered: one `uv_try_write` (a `write` system call), and the rest, if the socket buffer
    /// is full or an earlier write is still queued, in one `uv_write` request that keeps its own copy.
    /// - Throws: `UVError` from `uv_try_write` (other than `EAGAIN`) or `uv_write`: the connection is broken
    ///   and should be closed.
    public func flush() throws(UVError) {
        guard !outputBuffer.isEmpty, !isClosing else { return }
        var written = 0
        if queuedOutputBytes == 0 {
            let result = outputBuffer.withUnsafeMutableBytes { bytes -> Int32 in
                var buffer = uv_buf_init(bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                                         UInt32(bytes.count))
                return uv_try_write(stream, &buffer, 1)
            }
            if result >= 0 {
                written = Int(result)
            } else if result != UV_EAGAIN.rawValue {
                outputBuffer.removeAll(keepingCapacity: true)
                throw UVError(code: result, operation: "uv_try_write")
            }
        }
        bytesWritten += UInt64(written)
        if written == outputBuffer.count {
            outputBuffer.removeAll(keepingCapacity: true)
            return
        }
        if queuedOutputBytes == 0 { outputWaitingSinceNanos = WallClock.monotonicNanos() }
        var start = written
        defer { outputBuffer.removeAll(keepingCapacity: true) }
        while start < outputBuffer.count {
            let end = min(outputBuffer.count, start + Self.maxWriteRequestBytes)
            let request = WriteRequest(count: end - start)
            outputBuffer.withUnsafeBytes { bytes in
                request.bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            }
            queuedOutputBytes += end - start
            let status = request.submit(on: stream)
            if status < 0 {
                queuedOutputBytes -= end - start
                throw UVError(code: status, operation: "uv_write")
            }
            start = end
        }
    }

    fileprivate func writeCompleted(count: Int, status: Int32) {
        queuedOutputBytes -= count
        if status == 0 {
            bytesWritten += UInt64(count)
            outputWaitingSinceNanos = queuedOutputBytes == 0 ? nil : WallClock.monotonicNanos()
        }
        if isClosingAfterFlush && queuedOutputBytes == 0 {
            finishClosing()
        } else if status < 0 && !isClosing {
            onEnd(UVError(code: status, operation: "write"))
        } else if queuedOutputBytes == 0 && !isClosing {
            onDrained()
        }
    }

    /// Stops reading, flushes what is gathered, and closes once every byte is written (or at once if nothing is
    /// pending or the socket is broken). Used after a fatal protocol error and at shutdown.
    ///
    /// With `awaitingPeerClose`, the connection keeps reading (and discarding) instead, and once every byte is
    /// written it shuts its write side down (`uv_shutdown`) and closes when the peer closes its end. Closing a
    /// Unix socket whose receive queue still holds bytes makes the peer's next read fail with `ECONNRESET`, so a
    /// client that had already sent requests would see a reset instead of the error frame and the end of the
    /// stream. The owner bounds the wait with a timer that calls `close()`.
    /// - Parameter awaitingPeerClose: Wait for the peer's end before closing.
    public func closeAfterFlush(awaitingPeerClose: Bool = false) {
        guard !isClosing, !isClosingAfterFlush else { return }
        isClosingAfterFlush = true
        if awaitingPeerClose {
            awaitsPeerClose = true
            do {
                try startReading()
            } catch {
                awaitsPeerClose = false
            }
        }
        if !awaitsPeerClose { stopReading() }
        do {
            try flush()
        } catch {
            close()
            return
        }
        if queuedOutputBytes == 0 {
            finishClosing()
        }
    }

    /// Every byte of a closing connection is written: close, or half-close and wait for the peer's end.
    private func finishClosing() {
        guard awaitsPeerClose, !isShutDown, !isClosing else {
            if !awaitsPeerClose { close() }
            return
        }
        isShutDown = true
        if ShutdownRequest().submit(on: stream) < 0 { close() }
    }

    /// Discards unsent output, makes one non-blocking attempt to send `finalBytes` (an error frame), and closes
    /// at once. For a peer that stopped reading: waiting for its socket to drain could take forever.
    /// - Parameter finalBytes: Bytes to try to send before closing.
    public func abort(sendingIfPossible finalBytes: [UInt8]) {
        guard !isClosing else { return }
        outputBuffer.removeAll()
        if queuedOutputBytes == 0 && !finalBytes.isEmpty {
            var copy = finalBytes
            copy.withUnsafeMutableBytes { bytes in
                var buffer = uv_buf_init(bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                                         UInt32(bytes.count))
                _ = uv_try_write(stream, &buffer, 1)
            }
        }
        close()
    }

    override func willClose() {
        isReading = false
    }
}

/// A `uv_shutdown_t`, freed in its callback. A failed shutdown closes the connection; a successful one leaves
/// it open until the peer's end arrives (`Connection.didRead`).
private final class ShutdownRequest {
    let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)

    /// Submits the shutdown; on success the request retains itself until the callback.
    func submit(on stream: UnsafeMutablePointer<uv_stream_t>) -> Int32 {
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let status = uv_shutdown(request, stream) { request, status in
            guard let request, let data = request.pointee.data else { return }
            _ = Unmanaged<ShutdownRequest>.fromOpaque(data).takeRetainedValue()
            if status < 0, status != UV_ECANCELED.rawValue,
               let connection = LoopHandle.owner(of: UnsafeMutableRawPointer(request.pointee.handle),
                                                 as: Connection.self) {
                connection.close()
            }
        }
        if status < 0 { Unmanaged.passUnretained(self).release() }
        return status
    }

    deinit { request.deallocate() }
}

/// A `uv_write_t` with the bytes it writes; both freed in the write callback.
private final class WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t>
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
    }

    /// Submits the write; on success the request retains itself until the write callback.
    func submit(on stream: UnsafeMutablePointer<uv_stream_t>) -> Int32 {
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        var buffer = uv_buf_init(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let status = uv_write(request, stream, &buffer, 1) { request, status in
            guard let request, let data = request.pointee.data else { return }
            let owner = Unmanaged<WriteRequest>.fromOpaque(data).takeRetainedValue()
            // The write callback runs before the stream's close callback, so the stream's owner is still alive.
            if let connection = LoopHandle.owner(of: UnsafeMutableRawPointer(request.pointee.handle),
                                                 as: Connection.self) {
                connection.writeCompleted(count: owner.bytes.count, status: status)
            }
        }
        if status < 0 {
            Unmanaged.passUnretained(self).release()
        }
        return status
    }

    deinit {
        request.deallocate()
        bytes.deallocate()
    }
}
