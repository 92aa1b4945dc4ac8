import Logging
import TaskShedEventLoop

/// One HTTP connection of the metrics endpoint: parses requests, answers one at a time, and closes itself on a
/// timeout, an error response, `Connection: close` or the client's end.
///
/// ```
///  accept ─► awaitingRequest ◄─────────── first byte ─────────── idle
///                 │ request complete                              ▲
///                 ▼                                               │ no request buffered
///            rendering ─► answer it ── the kernel took it all ────┤
///                 │ it did not                                    │
///                 ▼                                               │
///            responding ── the kernel took the rest ──────────────┘
///
///  a request buffered after an answer is answered next; after 4 in a row: yielding, for 1 ms
///  rendering: the text may come later (the daemon reads the store first); reading stops until it does
///  error response, Connection: close, request timeout ──► closing ──► closed (client's end, or timer)
///  idle timeout, the client's end, a write error ─────────────────────► closed
/// ```
///
/// One timer bounds every phase: `requestTimeoutMillis` while a request is awaited (a timeout after some of its
/// bytes is answered `408`), `idleTimeoutMillis` while idle, while the text is being made, or while a response
/// waits for the client to read it, `lingerMillis` while closing (the idle timeout while the last response is
/// still queued); at 1 ms it resumes pipelined requests after a yield (`responsesPerTurn`).
///
/// - Important: Loop-thread only. The owner keeps the object while it is open; `close()` closes the socket and the
///   timer at once, and `closed` runs from the socket's close callback.
final class MetricsConnection {
    /// What the connection is doing.
    enum Phase: Equatable {
        /// Waiting for (the rest of) a request.
        case awaitingRequest
        /// Between requests of a keep-alive connection.
        case idle
        /// A response is queued in the socket; reading is stopped until the kernel took it.
        case responding
        /// The last response is being written (or was); the socket closes when the client closes its end.
        case closing
        /// Pipelined requests wait for a later loop iteration (the timer, at 1 ms); reading is stopped.
        case yielding
        /// The exposition for a request is being made (the daemon reads the store on the thread pool first);
        /// reading is stopped.
        case rendering
    }

    /// Makes the exposition and passes it to its argument, at once or later, on the loop thread.
    typealias Render = (@escaping ([UInt8]) -> Void) -> Void

    /// Most requests answered in a row before the connection lets the loop do other work.
    static let responsesPerTurn = 4

    /// The connection's number, for logs.
    let id: UInt64
    /// What the connection is doing.
    private(set) var phase: Phase = .awaitingRequest
    /// Whether a response was handed to the socket since the last wait for bytes (the timer then restarts).
    private var answeredSinceWait = false

    private let connection: Connection
    private let timer: CoarseTimer
    private let parser: HTTPRequestParser
    private let limits: MetricsListener.Limits
    private let logger: Logger
    private let render: Render
    /// Set by `close()`: a rendering that completes afterwards is dropped.
    private var isClosed = false
    /// Whether `respond(to:)` is inside `render` (a render that completes at once answers within it).
    private var isInsideRender = false
    private let responded: () -> Void
    private let closed: () -> Void

    /// Wraps an accepted connection; `start()` begins reading.
    /// - Parameters:
    ///   - id: The connection's number.
    ///   - connection: The accepted TCP connection, not reading yet.
    ///   - loop: The loop (for the timer).
    ///   - limits: The endpoint's bounds.
    ///   - logger: Where rejected requests go (debug level).
    ///   - render: Makes the exposition.
    ///   - responded: Runs after each response is handed to the socket.
    ///   - closed: Runs once, from the socket's close callback.
    /// - Throws: `UVError` from `uv_timer_init`.
    init(id: UInt64, connection: Connection, loop: EventLoop, limits: MetricsListener.Limits, logger: Logger,
         render: @escaping Render, responded: @escaping () -> Void,
         closed: @escaping () -> Void) throws(UVError) {
        self.id = id
        self.connection = connection
        self.limits = limits
        self.logger = logger
        self.render = render
        self.responded = responded
        self.closed = closed
        parser = HTTPRequestParser(maxHeadBytes: limits.maxHeadBytes)
        timer = try CoarseTimer(loop: loop) {}
        timer.onFire = { [weak self] in self?.timedOut() }
        connection.onData = { [weak self] bytes in self?.received(bytes) }
        connection.onDrained = { [weak self] in self?.drained() }
        connection.onEnd = { [weak self] error in self?.ended(error) }
        connection.onClose = { [weak self] in self?.didClose() }
    }

    /// Starts reading and the timer for the first request. Corresponds to `uv_read_start`.
    func start() {
        timer.start(afterMillis: limits.requestTimeoutMillis)
        do {
            try connection.startReading()
        } catch {
            logger.debug("metrics: cannot read a connection: \(error)", metadata: metadata)
            close()
        }
    }

    /// Closes the socket and the timer now, whatever is unsent.
    func close() {
        isClosed = true
        timer.close()
        connection.close()
    }

    private var metadata: Logger.Metadata { ["taskshed.metrics.conn": "\(id)"] }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        if phase == .idle {
            // A new request began: from now on it has the request timeout, not what is left of the idle one.
            phase = .awaitingRequest
            timer.start(afterMillis: limits.requestTimeoutMillis)
        }
        parser.append(bytes)
        if phase == .awaitingRequest { serveBuffered() }
    }

    /// Answers the complete requests buffered, one at a time, until one has to wait for the socket or more bytes
    /// are needed, or `responsesPerTurn` were answered: then the rest wait for the loop's next iteration, so that
    /// one read full of pipelined requests cannot keep the loop rendering while other work waits.
    private func serveBuffered() {
        var answered = 0
        while phase == .awaitingRequest || phase == .idle {
            if answered == Self.responsesPerTurn && parser.hasBufferedBytes {
                phase = .yielding
                connection.stopReading()
                // 1 ms, not 0: libuv 1.44 runs a timer restarted at 0 ms again within the same iteration.
                timer.start(afterMillis: 1)
                return
            }
            answered += 1
            let request: HTTPRequest?
            do {
                request = try parser.next()
            } catch {
                logger.debug("metrics: bad request: \(error)", metadata: metadata)
                send(HTTPResponse.error(error.status, error.detail), includeBody: true, closing: true)
                return
            }
            guard let request else {
                waitForMoreBytes()
                return
            }
            respond(to: request)
        }
    }

    /// Every buffered byte is parsed and no request is complete: wait for the rest of a request, or idle. The timer
    /// restarts only when the phase changes or a response went out since, so that a slow request keeps the
    /// deadline of its first byte.
    private func waitForMoreBytes() {
        let restart = answeredSinceWait
        answeredSinceWait = false
        if parser.isInsideRequest {
            if phase != .awaitingRequest || restart {
                phase = .awaitingRequest
                timer.start(afterMillis: limits.requestTimeoutMillis)
            }
        } else if phase != .idle || restart {
            phase = .idle
            timer.start(afterMillis: limits.idleTimeoutMillis)
        }
    }

    private func respond(to request: HTTPRequest) {
        let isHead = request.method == "HEAD"
        guard request.path == "/metrics" else {
            logger.debug("metrics: \(request.method) \(request.target): not found", metadata: metadata)
            send(HTTPResponse.error(.notFound, "only /metrics is served here"), includeBody: !isHead, closing: true)
            return
        }
        guard request.method == "GET" || isHead else {
            logger.debug("metrics: \(request.method) \(request.target): method not allowed", metadata: metadata)
            send(HTTPResponse.error(.methodNotAllowed, "/metrics answers GET and HEAD only",
                                    headers: [("Allow", "GET, HEAD")]),
                 includeBody: true, closing: true)
            return
        }
        phase = .rendering
        let closing = !request.keepAlive
        isInsideRender = true
        render { [weak self] text in self?.rendered(text, includeBody: !isHead, closing: closing) }
        isInsideRender = false
        if phase == .rendering && !isClosed {
            // The text comes later: read no more requests until this one is answered, and let the idle timeout
            // bound a render that never ends, as it bounds a response the client does not read.
            connection.stopReading()
            timer.start(afterMillis: limits.idleTimeoutMillis)
        }
    }

    /// The exposition for the request being answered arrived: send it; after a render that completed later, read
    /// again and go on with the buffered requests (one that completed at once returns to `serveBuffered`'s loop,
    /// which called `respond`).
    private func rendered(_ text: [UInt8], includeBody: Bool, closing: Bool) {
        guard !isClosed, phase == .rendering else { return }
        phase = .awaitingRequest
        let later = !isInsideRender
        send(HTTPResponse.metrics(text), includeBody: includeBody, closing: closing)
        guard later, phase == .awaitingRequest else { return }
        do {
            try connection.startReading()
        } catch {
            close()
            return
        }
        serveBuffered()
    }

    private func send(_ response: HTTPResponse, includeBody: Bool, closing: Bool) {
        connection.write(response.serialized(includeBody: includeBody, closing: closing))
        responded()
        if closing {
            phase = .closing
            // Reads and drops what the client still sends, half-closes once the response is written, and closes
            // at the client's end: closing at once with unread bytes would make the kernel reset the connection,
            // and the client could lose the response.
            connection.closeAfterFlush(awaitingPeerClose: true)
            // A response the kernel took whole leaves only the wait for the client's close; one still queued (a
            // large exposition to a slow scraper) gets the time a kept-alive response would.
            timer.start(afterMillis: connection.pendingOutputBytes > 0 ? limits.idleTimeoutMillis : limits.lingerMillis)
            return
        }
        do {
            try connection.flush()
        } catch {
            logger.debug("metrics: write failed: \(error)", metadata: metadata)
            close()
            return
        }
        if connection.pendingOutputBytes > 0 {
            // The client has not read enough to take the whole response: read no more requests until it has, and
            // give it the idle timeout to do so. The queued response is the only output this connection holds.
            phase = .responding
            connection.stopReading()
            timer.start(afterMillis: limits.idleTimeoutMillis)
        } else {
            // Written at once: the next buffered request (or the wait for one) follows in serveBuffered's loop.
            answeredSinceWait = true
        }
    }

    private func drained() {
        guard phase == .responding else { return }
        phase = .awaitingRequest
        answeredSinceWait = true
        do {
            try connection.startReading()
        } catch {
            close()
            return
        }
        serveBuffered()
    }

    private func ended(_ error: UVError?) {
        if let error, !error.isEndOfFile {
            logger.debug("metrics: connection error: \(error)", metadata: metadata)
        }
        // The client closed its end (or the socket failed): no more requests can come, and every complete one
        // was answered in onData already.
        close()
    }

    private func timedOut() {
        switch phase {
        case .awaitingRequest where parser.isInsideRequest:
            logger.debug("metrics: request timeout", metadata: metadata)
            send(HTTPResponse.error(.requestTimeout,
                                    "the request did not arrive within \(limits.requestTimeoutMillis) ms"),
                 includeBody: true, closing: true)
        case .awaitingRequest, .idle:
            close()
        case .responding:
            logger.debug("metrics: the client did not read its response in time", metadata: metadata)
            close()
        case .closing:
            close()
        case .rendering:
            logger.debug("metrics: the exposition was not ready in time", metadata: metadata)
            close()
        case .yielding:
            phase = .awaitingRequest
            answeredSinceWait = true
            do {
                try connection.startReading()
            } catch {
                close()
                return
            }
            serveBuffered()
        }
    }

    private func didClose() {
        timer.close()
        closed()
    }
}
