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

    private struct State {
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
    private let fd: Int32
    private let state: Mutex<State>
    private let writerWake = DispatchSemaphore(value: 0)
    private let writerStopped = DispatchSemaphore(value: 0)
    private let idleReaderWake = DispatchSemaphore(value: 0)
    private let logger: Logger

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

    private func startReaderThread(_ reader: ReaderState?) {
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

    // MARK: Reader threads

    /// A reader thread: reads while it holds the reading turn, waits as an idle reader after a push handler
    /// kept it, and ends with the connection.
    private func readerThread(first: ReaderState?) {
        var reader = first
        while true {
            if reader == nil {
                idleReaderWake.wait()
                // Nil: the wake-up came from `finish`, the connection is over.
                reader = state.withLock { state -> ReaderState? in
                    let handed = state.handedOffReader
                    state.handedOffReader = nil
                    return handed
                }
                guard reader != nil else { return }
            }
            guard let current = reader, read(with: current) else { return }
            reader = nil
            let stay = state.withLock { state -> Bool in
                state.keptThreads -= 1
                if state.readersEnded { return false }
                state.idleReaders += 1
                return true
            }
            guard stay else { return }
        }
    }

    /// Reads and dispatches frames until the connection ends (returns `false`) or a push handler keeps this
    /// thread (returns `true`; `reader` then belongs to another thread).
    private func read(with reader: ReaderState) -> Bool {
        var reason: TaskShedError
        reading: while true {
            // Frames that arrived with an earlier read wait in the decoder: a kept thread left them behind.
            while true {
                let frame: Frame?
                do {
                    frame = try reader.decoder.next()
                } catch {
                    let violation = TaskShedError(
                        .protocolViolation, field: error.field,
                        message: "undecodable frame from the daemon at \(path): \(error)")
                    if error.isFatal {
                        reason = violation
                        break reading
                    }
                    if let requestID = error.requestID, requestID != 0 {
                        fail(requestID: requestID, with: violation)
                    } else {
                        logger.warning("\(violation)")
                    }
                    continue
                }
                guard let frame else { break }
                if dispatch(frame, reader: reader) { return true }
            }
            // A delivery sent ahead starts at its due time, once what the daemon wrote by then has been read (a
            // REVOKE among it cancels the start).
            var wait = true
            if let first = reader.deferred.first {
                let now = ReadingLoan.realtimeNanos()
                if first.startNanos <= now {
                    if reader.drainedNanos >= first.startNanos {
                        if startDeferred(reader.deferred.removeFirst(), reader: reader) { return true }
                        continue
                    }
                    wait = false
                } else if !reader.deferred.wait(socket: fd) {
                    continue
                }
            }
            let readStart = ReadingLoan.realtimeNanos()
            let count = reader.buffer.withUnsafeMutableBytes {
                wait ? Glibc.read(fd, $0.baseAddress, $0.count) : recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            reader.readNanos = ReadingLoan.realtimeNanos()
            if count < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK) {
                reader.drainedNanos = readStart
                continue
            }
            if count > 0 && count < reader.buffer.count { reader.drainedNanos = readStart }
            if count < 0 {
                if errno == EINTR { continue }
                reason = TaskShedError(
                    .connectionClosed, message: "reading from \(path) failed: \(String(cString: strerror(errno)))")
                break
            }
            if count == 0 {
                reason = TaskShedError(.connectionClosed, message: "the daemon closed the connection to \(path)")
                break
            }
            reader.buffer.withUnsafeBytes { reader.decoder.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
        finish(reason, reader: reader)
        return false
    }

    /// How the reading moves to another thread.
    private enum Handoff {
        case wakeIdle
        case spawn
    }

    /// Lends the reading thread to the push handler running on it (see `ReaderTurn.keepThread()`), unless
    /// `maxKeptThreads` are kept already or the connection is closing. Without a loan timer (timerfd creation
    /// failed) the reading moves at once, as it did before loans.
    /// - Returns: How the thread is kept, or `nil` when the handler must hand its work off.
    func lendReading(_ reader: ReaderState) -> ReaderTurn.Keep? {
        let loan = reader.loanTimer()
        let now = ReadingLoan.monotonicNanos()
        enum Lend {
            case refused
            case lent
            case handOff(Handoff)
        }
        let lend = state.withLock { state -> Lend in
            guard state.closeReason == nil, state.keptThreads < Connection.maxKeptThreads else { return .refused }
            state.keptThreads += 1
            guard loan != nil else { return .handOff(Connection.prepareHandoff(&state, reader)) }
            state.loan = (reader, now)
            return .lent
        }
        switch lend {
        case .refused:
            return nil
        case .handOff(let handoff):
            perform(handoff, reader)
            return .handedOff
        case .lent:
            loan?.arm(afterNanos: Connection.loanGraceNanos)
            return .lent
        }
    }

    /// Ends the loan after the push handler returned on the reading thread.
    /// - Returns: Whether the reading moved meanwhile (this thread is then kept and must stop reading).
    private func endLoan(_ reader: ReaderState) -> Bool {
        let taken = state.withLock { state -> Bool in
            state.loan = nil
            if state.loanTaken {
                state.loanTaken = false
                // The kept thread is uncounted by `readerThread` when it stops reading.
                return true
            }
            state.keptThreads -= 1
            return false
        }
        // Still the reading's holder: nobody else arms the timer meanwhile. A taken reading's timer belongs to
        // its new holder.
        if !taken { reader.loanTimer()?.disarm() }
        return taken
    }

    /// The loan timer fired (on its own thread): moves the reading if the handler still holds it after its grace.
    func loanExpired() {
        let now = ReadingLoan.monotonicNanos()
        let move = state.withLock { state -> (Handoff, ReaderState)? in
            // An expiry that outlived its loan (disarmed too late, or a later loan just begun) is ignored.
            guard let loan = state.loan, !state.loanTaken, now - loan.since >= Connection.loanGraceNanos else {
                return nil
            }
            state.loanTaken = true
            return (Connection.prepareHandoff(&state, loan.reader), loan.reader)
        }
        if let (handoff, reader) = move { perform(handoff, reader) }
    }

    /// Under the lock: gives the reading state to an idle reader, or asks for a new reader thread.
    private static func prepareHandoff(_ state: inout State, _ reader: ReaderState) -> Handoff {
        guard state.idleReaders > 0 else { return .spawn }
        state.idleReaders -= 1
        state.handedOffReader = reader
        return .wakeIdle
    }

    private func perform(_ handoff: Handoff, _ reader: ReaderState) {
        switch handoff {
        case .wakeIdle: idleReaderWake.signal()
        case .spawn: startReaderThread(reader)
        }
    }

    /// Routes one frame; returns whether a push handler kept this thread.
    private func dispatch(_ frame: Frame, reader: ReaderState) -> Bool {
        if frame.requestID == 0 {
            if case .error(let reply) = frame.message {
                let error = TaskShedError(reply)
                logger.debug("connection error from the daemon", metadata: ["taskshed.error": "\(error)"])
                state.withLock { $0.connectionError = error }
            } else {
                logger.warning("unexpected \(frame.message.type) frame with request id 0 from the daemon at \(path)")
            }
            return false
        }
        enum Route {
            case reply(CheckedContinuation<Message, any Error>)
            case push(PushHandler)
            case deferUntilDue(TaskRecord)
            case drop
        }
        if case .revoke(let lease) = frame.message {
            // Revoked before its start: the daemon has ended the lease, nothing to answer. After its start the
            // callback's outcome gets LEASE_LOST.
            let waiting = reader.deferred.revoke(lease)
            logger.debug("delivery revoked", metadata: ["taskshed.task.id": "\(lease.id)", "taskshed.started": "\(!waiting)"])
            return false
        }
        let route = state.withLock { state -> Route in
            if case .delivery(let task) = frame.message {
                guard let handler = state.pushHandlers[frame.requestID] else { return .drop }
                // Version 3 daemons send deliveries ahead of time only when asked (SUBSCRIBE_AHEAD); the task
                // starts at its due time, not before.
                if (state.helloOK?.version ?? 1) >= 3 && task.runAt &* 1_000 > ReadingLoan.realtimeNanos() {
                    return .deferUntilDue(task)
                }
                return .push(handler)
            }
            if let continuation = state.pending.removeValue(forKey: frame.requestID) { return .reply(continuation) }
            // An error after SUBSCRIBED concerns the subscription.
            if let handler = state.pushHandlers[frame.requestID] { return .push(handler) }
            return .drop
        }
        switch route {
        case .reply(let continuation):
            continuation.resume(returning: frame.message)
            return false
        case .push(let handler):
            return runPush(handler, frame.message, reader: reader)
        case .deferUntilDue(let task):
            reader.deferred.add(DeferredDelivery(requestID: frame.requestID, task: task))
            return false
        case .drop:
            // The reply to a cancelled call, or a push after its subscription ended.
            logger.trace("dropped \(frame.message.type) frame for request \(frame.requestID)")
            return false
        }
    }

    /// Runs a push handler on the reading thread; returns whether it kept this thread.
    private func runPush(_ handler: PushHandler, _ message: Message, reader: ReaderState) -> Bool {
        let turn = ReaderTurn(connection: self, reader: reader)
        handler(message, turn)
        switch turn.keep {
        case nil: return false
        case .handedOff: return true
        case .lent: return endLoan(reader)
        }
    }

    /// Starts a delivery sent ahead, now due; returns whether its handler kept this thread. When its
    /// subscription has ended meanwhile the task is given back (RELEASE, uncounted) so another worker runs it.
    private func startDeferred(_ delivery: DeferredDelivery, reader: ReaderState) -> Bool {
        reader.readNanos = ReadingLoan.realtimeNanos()
        let handler = state.withLock { $0.pushHandlers[delivery.requestID] }
        guard let handler else {
            sendUnanswered(.release(LeaseRef(id: delivery.task.id, attempt: delivery.task.attempt)))
            return false
        }
        return runPush(handler, .delivery(delivery.task), reader: reader)
    }

    /// Queues a request whose reply nobody waits for (it is dropped on arrival).
    private func sendUnanswered(_ message: Message) {
        let queued = state.withLock { state -> Bool in
            guard state.closeReason == nil else { return false }
            state.nextRequestID &+= 1
            if state.nextRequestID == 0 { state.nextRequestID = 1 }
            state.output.append(contentsOf: FrameEncoder.encode(Frame(requestID: state.nextRequestID, message: message)))
            return true
        }
        if queued { writerWake.signal() }
    }

    private func fail(requestID: UInt32, with error: TaskShedError) {
        state.withLock { $0.pending.removeValue(forKey: requestID) }?.resume(throwing: error)
    }

    private func finish(_ readerReason: TaskShedError, reader: ReaderState) {
        // No loan is open while the reading runs: the timer's thread has nothing left to do. Deliveries still
        // deferred were never started: the daemon gives them back uncounted when it sees the close.
        reader.stopTimers()
        let (pending, handlers, reason) = state.withLock { state in
            // The daemon's own explanation (SHUTTING_DOWN, PERMISSION_DENIED…) beats "closed".
            let reason = state.closeReason ?? state.connectionError ?? readerReason
            state.closeReason = reason
            state.finished = true
            let pending = state.pending.values
            state.pending.removeAll()
            state.pushHandlers.removeAll()
            let handlers = state.closeHandlers
            state.closeHandlers.removeAll()
            return (Array(pending), handlers, reason)
        }
        for continuation in pending { continuation.resume(throwing: reason) }
        logger.debug("connection closed", metadata: ["taskshed.socket": "\(path)", "taskshed.reason": "\(reason)"])
        writerWake.signal()
        writerStopped.wait()
        let idle = state.withLock { state -> Int in
            state.descriptorOpen = false
            Glibc.close(fd)
            state.readersEnded = true
            let idle = state.idleReaders
            state.idleReaders = 0
            return idle
        }
        for _ in 0..<idle { idleReaderWake.signal() }
        for handler in handlers { handler(reason) }
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
