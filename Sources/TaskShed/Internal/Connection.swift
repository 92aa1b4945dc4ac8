import Glibc
import Dispatch
import Foundation
import Logging
import Synchronization
import TaskShedProtocol

/// One Unix-socket connection to taskshedd: requests pipelined by request id, replies matched back to the
/// awaiting callers, pushes (`DELIVERY`) handed to the subscription that asked for them.
///
/// Two threads serve each connection: a reader doing blocking `read(2)` into a `FrameDecoder` and resuming the
/// continuations of the calls whose replies arrive, and a writer that sends whatever frames were queued since
/// its last write in one `send(2)` (so many concurrent acks leave in one system call). Callers never block on
/// the socket.
///
/// A push handler may keep the reader thread (`ReaderTurn.keepThread()`) to start a worker callback on it at
/// once, instead of handing the task to another thread. Waking another thread costs ~15–25 µs on the path to
/// the callback, so the reading is only lent: a `ReadingLoan` timer is armed, and if the handler has not
/// returned within `loanGraceNanos` the reading moves, with the decoder and any frames it still holds, to an
/// idle reader thread (or a new one); the kept thread becomes an idle reader once the handler returns. A
/// handler that returns in time (a callback that suspends or ends quickly) goes back to reading with no thread
/// woken. At most `maxKeptThreads` threads are kept at a time, so a burst of callbacks that do not suspend
/// cannot multiply threads; past that, handlers are told to hand off as before.
///
/// - Important: Thread-safe. The connection lives until `close()` or until the daemon closes it; either way
///   every pending call fails (with the daemon's closing error when it sent one, else `.connectionClosed`), the
///   close handlers run once, and the descriptor is closed by the reader thread after the writer has stopped.
final class Connection: Sendable {
    /// Callback for pushed frames of one subscription; runs on the reader thread, so it must not block unless
    /// it first keeps the thread (`ReaderTurn.keepThread()` returned `true`).
    typealias PushHandler = @Sendable (Message, ReaderTurn) -> Void

    /// Most threads that push handlers may keep at once (see `ReaderTurn.keepThread()`).
    static let maxKeptThreads = max(2, ProcessInfo.processInfo.activeProcessorCount)

    /// How long a push handler may hold the lent reading thread before the reading moves to another thread:
    /// the most a callback that blocks its thread delays the frames behind its task.
    ///
    /// Longer than the kernel's scheduler tick (4 ms at Debian's `HZ=250`) on purpose: a timer due after the
    /// next tick is queued without reprogramming the CPU's timer device, so arming costs ~1.5 µs; a timer due
    /// sooner reprograms it, which in a VM is a trap to the hypervisor (measured 8–12 µs at 250 µs or 1 ms here,
    /// as much as the thread wake-up the loan saves).
    static let loanGraceNanos: Int64 = 5_000_000

    /// How long `open` waits for HELLO_OK.
    static let handshakeTimeout = Duration.seconds(10)

    /// Largest frame accepted from the daemon: the most a daemon may be configured to announce (16 × the
    /// default). The daemon never sends a reply larger than its own announced maximum; the decoder only holds
    /// bytes that actually arrived, so a high bound costs nothing.
    static let maxIncomingFrameBytes = ProtocolLimits.defaultMaxFrameBytes * 16

    struct State {
        var nextRequestID: UInt32 = 0
        var pending: [UInt32: CheckedContinuation<Message, any Error>] = [:]
        var pushHandlers: [UInt32: PushHandler] = [:]
        var output: [UInt8] = []
        /// Set once: why the connection is (being) closed.
        var closeReason: TaskShedError?
        /// An `ERROR` with request id 0 that the daemon sent (it usually closes right after).
        var connectionError: TaskShedError?
        var closeHandlers: [@Sendable (TaskShedError) -> Void] = []
        /// Whether `fd` is still open (only the reader thread closes it).
        var descriptorOpen = true
        var helloOK: HelloOK?
        var finished = false
        /// Reader threads waiting on `idleReaderWake` for the reading turn.
        var idleReaders = 0
        /// The reading state on its way to an idle reader (set together with one `idleReaderWake` signal).
        var handedOffReader: ReaderState?
        /// Threads kept by push handlers (see `ReaderTurn.keepThread()`), lent readings included.
        var keptThreads = 0
        /// The reading lent to the push handler running on the reading thread, and when (monotonic ns).
        var loan: (reader: ReaderState, since: Int64)?
        /// The loan's grace ran out and its reading moved to another thread.
        var loanTaken = false
        /// Set once the reading has ended: kept threads exit instead of becoming idle readers.
        var readersEnded = false
    }

    /// The socket path, for messages.
    let path: String
    // The members below are internal, not private, for the reading's half of the type
    // (Connection+Reading.swift); nothing outside the two files touches them.
    let fd: Int32
    let state: Mutex<State>
    let writerWake = DispatchSemaphore(value: 0)
    let writerStopped = DispatchSemaphore(value: 0)
    let idleReaderWake = DispatchSemaphore(value: 0)
    let logger: Logger

    private init(path: String, fd: Int32, logger: Logger) {
        self.path = path
        self.fd = fd
        self.logger = logger
        self.state = Mutex(State())
    }

    // MARK: Opening

    /// Connects to the daemon and performs the HELLO handshake.
    /// - Parameters:
    ///   - path: The socket path.
    ///   - clientName: Sent in HELLO for the daemon's logs.
    ///   - logger: Logs connection-level events at debug level.
    /// - Returns: A connection ready for requests.
    /// - Throws: `TaskShedError` `.connectionFailed` (no daemon, bad path, access denied), the daemon's error
    ///   (`.unsupportedVersion`, `.permissionDenied`, `.tooManyConnections`, `.shuttingDown`), or
    ///   `CancellationError`.
    static func open(
        path: String, clientName: String, logger: Logger, handshakeTimeout: Duration = Connection.handshakeTimeout
    ) async throws -> Connection {
        let fd = try connectSocket(path: path)
        let connection = Connection(path: path, fd: fd, logger: logger)
        connection.startThreads()
        // A daemon that accepted but does not answer (stopped, hung) must not hang the caller, nor a worker's
        // reconnection loop, forever.
        let watchdog = Task {
            do {
                try await Task.sleep(for: handshakeTimeout)
            } catch {
                return
            }
            connection.close(
                reason: TaskShedError(
                    .connectionFailed,
                    message: "cannot connect to \(path): the daemon did not answer the handshake within \(handshakeTimeout)"))
        }
        defer { watchdog.cancel() }
        do {
            let reply = try await connection.request(
                .hello(Hello(minVersion: ProtocolLimits.versions.lowerBound, maxVersion: ProtocolLimits.versions.upperBound,
                             clientName: clientName)))
            guard case .helloOK(let helloOK) = reply else {
                throw TaskShedError(
                    .protocolViolation, message: "the daemon at \(path) answered HELLO with \(reply.type), not HELLO_OK")
            }
            connection.state.withLock { $0.helloOK = helloOK }
            logger.debug(
                "connected to taskshedd",
                metadata: [
                    "taskshed.socket": "\(path)", "taskshed.connection.id": "\(helloOK.connectionID)",
                    "taskshed.server.version": "\(helloOK.serverVersion)",
                ])
            return connection
        } catch {
            connection.close()
            throw error
        }
    }

    /// Opens a connected `AF_UNIX` stream socket. Corresponds to `socket(2)` + `connect(2)`.
    private static func connectSocket(path: String) throws(TaskShedError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty else {
            throw TaskShedError(.connectionFailed, field: "socketPath", message: "the socket path is empty")
        }
        guard pathBytes.count < capacity, !pathBytes.contains(0) else {
            throw TaskShedError(
                .connectionFailed, field: "socketPath",
                message: "cannot connect to \(path): a Unix socket path has at most \(capacity - 1) bytes, this one has \(pathBytes.count)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw TaskShedError(.connectionFailed, message: "cannot create a socket: \(String(cString: strerror(errno)))")
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count + 1)
        var result: Int32
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            }
        } while result != 0 && errno == EINTR
        // After an interrupted connect(2) the connection completes in the background; EISCONN reports that.
        if result != 0 && errno != EISCONN {
            let code = errno
            Glibc.close(fd)
            throw connectError(errno: code, path: path)
        }
        return fd
    }

    /// The error for a failed `connect(2)`: "is taskshedd running?" when nothing listens there, the group hint
    /// when the socket's permissions keep the caller out.
    static func connectError(errno code: Int32, path: String) -> TaskShedError {
        switch code {
        case EACCES, EPERM:
            return TaskShedError(
                .connectionFailed, message: "permission denied on \(path): join the group that owns the socket")
        case ENOENT, ECONNREFUSED, ENOTDIR:
            return TaskShedError(.connectionFailed, message: "cannot connect to \(path): is taskshedd running?")
        default:
            return TaskShedError(
                .connectionFailed,
                message: "cannot connect to \(path): \(String(cString: strerror(code))); is taskshedd running?")
        }
    }

    private func startThreads() {
        let writer = Thread { [self] in writeLoop() }
        writer.name = "taskshed-writer"
        writer.start()
        startReaderThread(ReaderState(onLoanExpired: { [weak self] in self?.loanExpired() }))
    }

    func startReaderThread(_ reader: ReaderState?) {
        let thread = Thread { [self] in readerThread(first: reader) }
        thread.name = "taskshed-reader"
        thread.start()
    }

    // MARK: Properties

    /// The daemon's handshake reply (limits, default lease).
    var helloOK: HelloOK? { state.withLock { $0.helloOK } }

    /// Largest batch the daemon accepts.
    var maxBatch: Int { Int(helloOK?.maxBatch ?? ProtocolLimits.defaultMaxBatch) }

    /// Whether the connection is closed or closing.
    var isClosed: Bool { state.withLock { $0.closeReason != nil } }

    // MARK: Requests

    /// Sends one request and returns its reply.
    /// - Parameter message: The request.
    /// - Returns: The reply message (never `.error`: that is thrown).
    /// - Throws: `TaskShedError` from the daemon's `ERROR` reply; `.connectionClosed` when the connection is
    ///   closed or closes before the reply; `.invalidUsage` when the encoded frame exceeds the daemon's maximum;
    ///   `CancellationError` when the calling task is cancelled (the reply, if it comes, is dropped).
    func request(_ message: Message) async throws -> Message {
        try await request(message, pushHandler: nil).reply
    }

    /// Sends one request, registering `pushHandler` for pushes carrying its request id before it is sent.
    /// - Returns: The request id and the reply.
    /// - Throws: As `request(_:)`; the push handler is removed when the request fails.
    func request(_ message: Message, pushHandler: PushHandler?) async throws -> (requestID: UInt32, reply: Message) {
        let requestID = state.withLock { state -> UInt32 in
            state.nextRequestID &+= 1
            // 0 is reserved for errors that concern no request.
            if state.nextRequestID == 0 { state.nextRequestID = 1 }
            return state.nextRequestID
        }
        let bytes = FrameEncoder.encode(Frame(requestID: requestID, message: message))
        if let helloOK, bytes.count - 4 > Int(helloOK.maxFrameBytes) {
            throw TaskShedError(
                .invalidUsage,
                message: "the request is \(bytes.count - 4) bytes, more than the daemon's frame limit of \(helloOK.maxFrameBytes) bytes; send fewer or smaller tasks")
        }
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Message, any Error>) in
                let failure = state.withLock { state -> (any Error)? in
                    if let reason = state.closeReason { return reason }
                    if Task.isCancelled { return CancellationError() }
                    state.pending[requestID] = continuation
                    if let pushHandler { state.pushHandlers[requestID] = pushHandler }
                    state.output.append(contentsOf: bytes)
                    return nil
                }
                if let failure {
                    continuation.resume(throwing: failure)
                } else {
                    writerWake.signal()
                }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Message, any Error>? in
                state.pushHandlers[requestID] = nil
                return state.pending.removeValue(forKey: requestID)
            }
            continuation?.resume(throwing: CancellationError())
        }
        if case .error(let errorReply) = reply {
            state.withLock { _ = $0.pushHandlers.removeValue(forKey: requestID) }
            throw TaskShedError(errorReply)
        }
        return (requestID, reply)
    }

    /// Stops routing pushes for a request id (after UNSUBSCRIBE, late pushes are dropped).
    func removePushHandler(_ requestID: UInt32) {
        state.withLock { _ = $0.pushHandlers.removeValue(forKey: requestID) }
    }

    /// Registers a handler that runs once when the connection closes (at once if it already has).
    /// - Parameter handler: Receives the reason. Runs on the reader thread or the caller's.
    func onClose(_ handler: @escaping @Sendable (TaskShedError) -> Void) {
        let reason = state.withLock { state -> TaskShedError? in
            if state.finished { return state.closeReason }
            state.closeHandlers.append(handler)
            return nil
        }
        if let reason { handler(reason) }
    }

    /// Waits until the connection has closed.
    /// - Returns: Why it closed.
    func waitUntilClosed() async -> TaskShedError {
        await withCheckedContinuation { continuation in
            onClose { continuation.resume(returning: $0) }
        }
    }

    /// Closes the connection: pending calls fail with `reason` (default: `.connectionClosed`); idempotent.
    func close(reason: TaskShedError? = nil) {
        state.withLock { state in
            if state.closeReason == nil {
                state.closeReason =
                    reason ?? TaskShedError(.connectionClosed, message: "the connection to \(path) was closed by the client")
            }
            // Under the lock so that the reader cannot have closed (and the kernel reused) the descriptor.
            if state.descriptorOpen { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
        writerWake.signal()
    }

    // MARK: Writer thread

    private func writeLoop() {
        while true {
            writerWake.wait()
            let (bytes, stop) = state.withLock { state -> ([UInt8], Bool) in
                var bytes: [UInt8] = []
                swap(&bytes, &state.output)
                return (bytes, state.closeReason != nil)
            }
            if stop { break }
            if !bytes.isEmpty && !writeAll(bytes) { break }
        }
        writerStopped.signal()
    }

    /// Writes every byte, retrying partial writes and `EINTR`. Corresponds to `send(2)` with `MSG_NOSIGNAL`
    /// (a closed peer gives `EPIPE` instead of killing the process with SIGPIPE).
    private func writeAll(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 {
                    if errno == EINTR { continue }
                    logger.debug("writing to \(path) failed: \(String(cString: strerror(errno)))")
                    // Wakes the reader, which fails the pending calls and closes the descriptor.
                    state.withLock { state in
                        if state.descriptorOpen { _ = shutdown(fd, Int32(SHUT_RDWR)) }
                    }
                    return false
                }
                offset += written
            }
            return true
        }
    }
}
