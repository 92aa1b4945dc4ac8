#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// A blocking raw-protocol connection to `taskshedd`, with no client-library machinery between the socket and
/// the measurement: frames are encoded straight into one buffer and written with one `write`, and every `read`
/// is timestamped the moment it returns.
///
/// - Important: Not thread-safe; one thread drives one connection. The descriptor is closed in `deinit`.
public final class BenchConnection {
    /// The socket descriptor.
    public let fd: Int32
    private var decoder = FrameDecoder()
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 20)
    private var nextRequestID: UInt32 = 1
    /// The server's limits from `HELLO_OK` (after `handshake`).
    public private(set) var serverLimits: HelloOK?

    /// Connects to a Unix socket.
    /// - Parameter path: The socket path (at most 107 bytes).
    /// - Throws: `BenchError` when the socket cannot be created or connected.
    public init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.errno("socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw BenchError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = BenchError.errno("connect(\(path))")
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// A fresh request id (never 0).
    public func makeRequestID() -> UInt32 {
        defer { nextRequestID = nextRequestID == UInt32.max ? 1 : nextRequestID + 1 }
        return nextRequestID
    }

    /// Sends `HELLO` and waits for `HELLO_OK`.
    /// - Parameter clientName: Name for the daemon's logs.
    /// - Returns: The server's limits.
    /// - Throws: `BenchError` on an error reply or I/O failure.
    @discardableResult
    public func handshake(clientName: String = "taskshed-bench") throws -> HelloOK {
        let reply = try request(.hello(Hello(minVersion: 1, maxVersion: 1, clientName: clientName)))
        guard case .helloOK(let ok) = reply else { throw BenchError("HELLO answered with \(reply.type)") }
        decoder.version = ok.version
        serverLimits = ok
        return ok
    }

    /// Encodes frames into one buffer and writes it whole.
    /// - Parameter frames: The frames, in order.
    /// - Throws: `BenchError` when the write fails.
    public func send(_ frames: [Frame]) throws {
        var bytes: [UInt8] = []
        for frame in frames { FrameEncoder.encode(frame, into: &bytes) }
        try send(bytes: bytes)
    }

    /// Writes already encoded bytes whole.
    /// - Parameter bytes: Encoded frames.
    /// - Throws: `BenchError` when the write fails or the peer closed.
    public func send(bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError.errno("write") }
            offset += n
        }
    }

    /// Blocks until at least one whole frame is available and returns every whole frame read so far, with the
    /// `CLOCK_REALTIME` instant (ns) at which the `read` that completed them returned.
    /// - Parameter timeoutMillis: Longest wait for data, or -1 for no limit.
    /// - Returns: The frames (empty on timeout) and the receive time.
    /// - Throws: `BenchError` when the peer closes, a read fails, or the bytes do not decode.
    public func receive(timeoutMillis: Int32 = -1) throws -> (frames: [Frame], receivedNanos: Int64) {
        var frames: [Frame] = []
        var received: Int64 = 0
        while frames.isEmpty {
            if timeoutMillis >= 0 {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, timeoutMillis)
                if ready < 0 && errno == EINTR { continue }
                if ready == 0 { return ([], BenchTime.realtimeNanos()) }
            }
            let n = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            received = BenchTime.realtimeNanos()
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw BenchError("the daemon closed the connection") }
            guard n > 0 else { throw BenchError.errno("read") }
            readBuffer.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do {
                while let frame = try decoder.next() { frames.append(frame) }
            } catch {
                throw BenchError("undecodable frame from the daemon: \(error)")
            }
        }
        return (frames, received)
    }

    /// Sends one request and waits for its reply, skipping pushes and other replies.
    /// - Parameter message: The request.
    /// - Returns: The reply (an `ERROR` reply is returned, not thrown, except for HELLO's caller).
    /// - Throws: `BenchError` on I/O failure.
    public func request(_ message: Message) throws -> Message {
        let id = makeRequestID()
        try send([Frame(requestID: id, message: message)])
        while true {
            for frame in try receive().frames where frame.requestID == id { return frame.message }
        }
    }

    /// Sends a request and fails unless the reply is not an error.
    /// - Parameter message: The request.
    /// - Returns: The reply.
    /// - Throws: `BenchError` for an `ERROR` reply or I/O failure.
    @discardableResult
    public func expectSuccess(_ message: Message) throws -> Message {
        let reply = try request(message)
        if case .error(let error) = reply {
            throw BenchError("\(message.type) failed: \(error.code) \(error.field ?? "") \(error.message)")
        }
        return reply
    }

    /// Adds `count` tasks, `spec(i)` for i in 0..<count, in `ADD_TASKS` requests of the server's largest batch
    /// (100,000 when the handshake did not say), each waited for.
    /// - Parameters:
    ///   - count: Tasks.
    ///   - afterBatch: Called after each request with the tasks added so far.
    ///   - spec: The i-th task.
    /// - Throws: `BenchError` for an `ERROR` reply or I/O failure.
    public func addInBatches(
        _ count: Int, afterBatch: (Int) -> Void = { _ in }, _ spec: (Int) throws -> TaskSpec
    ) throws {
        let batch = Int(serverLimits?.maxBatch ?? 100_000)
        for chunk in stride(from: 0, to: count, by: batch) {
            let specs = try (chunk..<min(chunk + batch, count)).map(spec)
            try expectSuccess(.addTasks(AddTasks(tasks: specs)))
            afterBatch(chunk + specs.count)
        }
    }
}
