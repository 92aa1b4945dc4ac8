import Glibc
import TaskShedProtocol

/// A blocking client socket for protocol-level tests: send raw bytes or frames, read frames with a timeout.
///
/// - Important: One thread at a time. Every read takes a timeout so that a broken server fails a test instead
///   of hanging it.
public final class RawConnection: @unchecked Sendable {
    /// The socket descriptor (close-on-exec, so spawned daemons do not inherit it).
    public let descriptor: Int32
    private var decoder: FrameDecoder
    private var isClosed = false
    private var sawEndOfFile = false
    /// Whether `readUntilClosed` ended on a reset (`ECONNRESET`) rather than the end of the stream.
    public private(set) var wasReset = false

    /// Connects to a Unix socket.
    /// - Parameters:
    ///   - path: The socket path.
    ///   - maxFrameBytes: The largest frame the reader accepts.
    /// - Throws: `TestSupportError` when the path is too long or `connect` fails (`errno` in the message).
    public init(path: String, maxFrameBytes: UInt32 = ProtocolLimits.defaultMaxFrameBytes * 2) throws {
        guard path.utf8.count <= 107 else { throw TestSupportError("socket path too long: \(path)") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestSupportError("connect \(path): \(message)")
        }
        descriptor = fd
        decoder = FrameDecoder(maxFrameBytes: maxFrameBytes)
    }

    deinit {
        if !isClosed { Glibc.close(descriptor) }
    }

    /// Closes the socket (an abrupt disconnect, as when a worker process dies).
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    /// Sets the kernel receive buffer (to make a slow reader's buffer fill quickly). Corresponds to
    /// `setsockopt(SO_RCVBUF)`.
    /// - Parameter bytes: The requested size.
    public func setReceiveBufferSize(_ bytes: Int32) {
        var value = bytes
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Writes all bytes.
    /// - Parameter bytes: The bytes.
    /// - Throws: `TestSupportError` when the socket is closed (`EPIPE`) or another write error occurs.
    public func send(bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestSupportError("send: \(String(cString: strerror(errno)))")
            }
            sent += n
        }
    }

    /// Encodes and writes frames in one write.
    /// - Parameter frames: The frames.
    /// - Throws: `TestSupportError` from `send(bytes:)`.
    public func send(_ frames: Frame...) throws {
        var bytes: [UInt8] = []
        for frame in frames { FrameEncoder.encode(frame, into: &bytes) }
        try send(bytes: bytes)
    }

    /// Reads the next frame, waiting up to `timeoutSeconds`.
    /// - Parameter timeoutSeconds: How long to wait for a complete frame.
    /// - Returns: The frame, or `nil` if the server closed the connection first.
    /// - Throws: `TestSupportError` on timeout, a read error, or bytes that do not decode.
    public func receive(timeoutSeconds: Double = 10) throws -> Frame? {
        let deadline = monotonicSeconds() + timeoutSeconds
        while true {
            do {
                if let frame = try decoder.next() { return frame }
            } catch {
                throw TestSupportError("server sent bytes that do not decode: \(error)")
            }
            if sawEndOfFile { return nil }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw TestSupportError("no frame within \(timeoutSeconds) s") }
            try fill(timeoutSeconds: remaining)
        }
    }

    /// Reads frames until one with `requestID` arrives (others, such as pushes, are collected).
    /// - Parameters:
    ///   - requestID: The request id to wait for.
    ///   - timeoutSeconds: How long to wait.
    ///   - skipped: Receives frames with other ids.
    /// - Returns: The frame.
    /// - Throws: `TestSupportError` on timeout or when the server closes first.
    public func receive(requestID: UInt32, timeoutSeconds: Double = 10, skipped: inout [Frame]) throws -> Frame {
        let deadline = monotonicSeconds() + timeoutSeconds
        while true {
            guard let frame = try receive(timeoutSeconds: max(0.001, deadline - monotonicSeconds())) else {
                throw TestSupportError("connection closed while waiting for request \(requestID)")
            }
            if frame.requestID == requestID { return frame }
            skipped.append(frame)
        }
    }

    /// Sends a request and reads frames until its reply (frames with other ids are dropped).
    /// - Parameters:
    ///   - message: The request.
    ///   - requestID: Its id.
    ///   - timeoutSeconds: How long to wait.
    /// - Returns: The reply message.
    /// - Throws: `TestSupportError` on timeout, close, or a write error.
    public func request(_ message: Message, id requestID: UInt32, timeoutSeconds: Double = 10) throws -> Message {
        try send(Frame(requestID: requestID, message: message))
        var skipped: [Frame] = []
        return try receive(requestID: requestID, timeoutSeconds: timeoutSeconds, skipped: &skipped).message
    }

    /// Performs the protocol handshake, offering only `version`.
    /// - Parameters:
    ///   - clientName: The name sent in `HELLO`.
    ///   - version: The protocol version to speak (1 unless a test needs a later version's types).
    /// - Returns: The server's `HELLO_OK`.
    /// - Throws: `TestSupportError` when the reply is not `HELLO_OK`.
    @discardableResult
    public func handshake(clientName: String = "taskshed-tests", version: UInt16 = 1) throws -> HelloOK {
        let reply = try request(.hello(Hello(minVersion: version, maxVersion: version, clientName: clientName)),
                                id: 0xFFFF_FFF0)
        guard case .helloOK(let ok) = reply else { throw TestSupportError("handshake answered with \(reply)") }
        // Frames after HELLO_OK have the layouts of the chosen version (a v1 task record has no skip counters).
        decoder.version = ok.version
        return ok
    }

    /// Waits until the server closes the connection, discarding frames.
    /// - Parameter timeoutSeconds: How long to wait.
    /// - Returns: The frames received before the close.
    /// - Throws: `TestSupportError` when the connection stays open past the timeout.
    public func readUntilClosed(timeoutSeconds: Double = 10) throws -> [Frame] {
        var frames: [Frame] = []
        let deadline = monotonicSeconds() + timeoutSeconds
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { throw TestSupportError("connection still open after \(timeoutSeconds) s") }
            do {
                guard let frame = try receive(timeoutSeconds: remaining) else { return frames }
                frames.append(frame)
            } catch let error as TestSupportError where error.message.hasPrefix("read:") {
                // ECONNRESET: the server closed with unread input; that is a close too.
                wasReset = true
                return frames
            }
        }
    }

    private func fill(timeoutSeconds: Double) throws {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let millis = Int32(min(max(timeoutSeconds * 1000, 1), 600_000))
        let ready = poll(&poller, 1, millis)
        if ready < 0 {
            if errno == EINTR { return }
            throw TestSupportError("poll: \(String(cString: strerror(errno)))")
        }
        if ready == 0 { return }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw TestSupportError("read: \(String(cString: strerror(errno)))")
        }
        if n == 0 {
            sawEndOfFile = true
            return
        }
        chunk.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
}
