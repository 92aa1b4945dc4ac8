import Logging
import TaskShedEventLoop

/// The daemon's opt-in HTTP endpoint (`--metrics-listen`): serves `GET /metrics` and `HEAD /metrics` in the
/// Prometheus text format on a TCP address, on the daemon's own loop.
///
/// Each request calls `render` on the loop thread and answers with the text it hands back (at once, or later
/// from the loop thread: the daemon reads its task counts on the thread pool first); nothing else of the daemon
/// is reachable over HTTP. The endpoint is small on purpose: HTTP/1.1 with keep-alive, one request answered at a
/// time per connection (pipelined requests wait in the connection's parser, and the socket is not read while a
/// response is being written), every error answered with its status and then the connection closed.
///
/// Bounds, so that a scraper gone wrong or a hostile client cannot hurt the task protocol:
/// - at most `Limits.maxConnections` connections; one more is answered `503` if the socket takes it at once,
///   and closed;
/// - a request must arrive whole within `Limits.requestTimeoutMillis` of the connection or of its first byte
///   (slowloris), a keep-alive connection may sit idle for `Limits.idleTimeoutMillis`, and a response must be
///   taken by the client within that same time;
/// - a request head of at most `Limits.maxHeadBytes`, and no body.
///
/// - Important: Loop-thread only, like every handle it holds. `close()` closes the listening socket, every
///   connection and their timers at once; the loop can then run dry.
final class MetricsListener {
    /// The endpoint's bounds.
    struct Limits: Sendable, Hashable {
        /// Most connections open at once.
        var maxConnections = 16
        /// Time a connection has to send a complete request, from its accept or from the first byte of the
        /// request.
        var requestTimeoutMillis: UInt64 = 10_000
        /// Time a keep-alive connection may wait for its next request, and a client may take to read a response.
        var idleTimeoutMillis: UInt64 = 30_000
        /// Time a closing connection waits for the client to close its end after the last response (so that
        /// the client reads it instead of a reset), before it is closed anyway; a last response the kernel did
        /// not take at once gets `idleTimeoutMillis` instead.
        var lingerMillis: UInt64 = 2_000
        /// Largest request line plus headers.
        var maxHeadBytes = HTTPRequestParser.defaultMaxHeadBytes

        /// The defaults: 16 connections, 10 s per request, 30 s idle, 8 KiB heads.
        init() {}
    }

    /// The address the socket is bound to (with the kernel's port for port 0).
    let address: TCPListener.Address
    /// The bounds.
    let limits: Limits
    /// The scrape URL, for the start-up log line: `http://127.0.0.1:9464/metrics`.
    var url: String { "http://\(address)/metrics" }
    /// Connections open now (a closing one counts until libuv closed it).
    var openConnections: Int { connections.count }
    /// Requests answered so far (any status), for tests.
    private(set) var responsesSent = 0
    /// Connections closed at once because `Limits.maxConnections` were open, for tests.
    private(set) var refusedConnections = 0

    private let listener: TCPListener
    private let loop: EventLoop
    private let logger: Logger
    private let render: MetricsConnection.Render
    private var connections: [UInt64: MetricsConnection] = [:]
    private var nextID: UInt64 = 1
    private var isClosed = false

    /// Binds and starts serving. Corresponds to `TCPListener.init` (`uv_tcp_bind`, `uv_listen`).
    /// - Parameters:
    ///   - loop: The daemon's loop.
    ///   - address: Where to listen (port 0: a free port, see `address`).
    ///   - limits: The bounds.
    ///   - logger: Where refused and failed requests go (debug level: a scraper gone wrong must not flood the log).
    ///   - render: Makes the exposition for one request and passes it to its argument; called on the loop
    ///     thread, and the argument must be called on the loop thread too.
    /// - Throws: `UVError` from binding or listening (`UV_EADDRINUSE`, `UV_EACCES`, `UV_EADDRNOTAVAIL`); the
    ///   half-made socket is closed (run the loop for its close callback).
    init(loop: EventLoop, address: TCPListener.Address, limits: Limits = Limits(), logger: Logger,
         render: @escaping MetricsConnection.Render) throws(UVError) {
        self.loop = loop
        self.limits = limits
        self.logger = logger
        self.render = render
        listener = try TCPListener(loop: loop, address: address)
        do {
            self.address = try listener.boundAddress()
        } catch {
            listener.close()
            throw error
        }
        listener.onConnection = { [weak self] error in self?.acceptConnection(error: error) }
    }

    /// Stops listening and closes every connection now (no response is waited for). Closing twice does nothing.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        listener.close()
        for connection in Array(connections.values) { connection.close() }
        connections = [:]
    }

    private func acceptConnection(error: UVError?) {
        if let error {
            logger.warning("metrics: accept failed: \(error)")
            return
        }
        guard !isClosed else { return }
        let accepted: Connection
        do {
            accepted = try listener.accept()
        } catch {
            logger.warning("metrics: accept failed: \(error)")
            return
        }
        if connections.count >= limits.maxConnections {
            // Accepted and closed rather than left in the backlog, where it would wait for a slot that a slow
            // client may hold for the whole request timeout.
            refusedConnections += 1
            logger.debug("metrics: connection refused: limit reached",
                         metadata: ["taskshed.metrics.max_connections": "\(limits.maxConnections)"])
            let refusal = HTTPResponse.error(.serviceUnavailable,
                                             "at most \(limits.maxConnections) connections at once; retry later")
            accepted.abort(sendingIfPossible: refusal.serialized(includeBody: true, closing: true))
            return
        }
        let id = nextID
        nextID += 1
        let connection: MetricsConnection
        do {
            connection = try MetricsConnection(
                id: id, connection: accepted, loop: loop, limits: limits, logger: logger, render: render,
                responded: { [weak self] in self?.responsesSent += 1 },
                closed: { [weak self] in self?.connections[id] = nil })
        } catch {
            logger.warning("metrics: cannot serve a connection: \(error)")
            accepted.close()
            return
        }
        connections[id] = connection
        connection.start()
    }
}
