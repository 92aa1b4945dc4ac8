import Glibc
import Logging
import TaskShedEventLoop
import TaskShedTestSupport
import Testing
@testable import TaskShedServer

/// The metrics endpoint on a loop of the test's own, with short timeouts: the bounds that the end-to-end tests
/// cannot wait for. The clients are blocking sockets on the same thread: their requests wait in the kernel until
/// the loop runs, and their responses wait there until the test reads them.
@Suite struct MetricsListenerTests {
    static let exposition = Array("# TYPE taskshed_up gauge\ntaskshed_up 1\n".utf8)

    /// A listener on a free loopback port, with the given limits, whose exposition is ready at once.
    static func listener(_ loop: EventLoop, limits: MetricsListener.Limits = MetricsListener.Limits(),
                         render: @escaping () -> [UInt8] = { exposition }) throws -> MetricsListener {
        try MetricsListener(loop: loop, address: TCPListener.Address(host: "127.0.0.1", port: 0), limits: limits,
                            logger: Logger(label: "metrics-test"), render: { done in done(render()) })
    }

    /// A listener whose exposition arrives `delayMillis` later from a timer, as the daemon's does after its store
    /// read on the thread pool.
    static func laterListener(_ loop: EventLoop, delayMillis: UInt64, limits: MetricsListener.Limits = MetricsListener.Limits(),
                              render: @escaping () -> [UInt8]) throws -> MetricsListener {
        try MetricsListener(loop: loop, address: TCPListener.Address(host: "127.0.0.1", port: 0), limits: limits,
                            logger: Logger(label: "metrics-test"), render: { done in
                                let text = render()
                                let timer = try? CoarseTimer(loop: loop) {}
                                timer?.onFire = {
                                    done(text)
                                    timer?.close()
                                }
                                timer?.start(afterMillis: delayMillis)
                            })
    }

    static func shortLimits() -> MetricsListener.Limits {
        var limits = MetricsListener.Limits()
        limits.requestTimeoutMillis = 300
        limits.idleTimeoutMillis = 400
        limits.lingerMillis = 200
        return limits
    }

    /// Runs the loop until `done()` holds (checked every 5 ms) or `limitMillis` passed.
    /// - Returns: Whether `done()` held.
    @discardableResult
    static func run(_ loop: EventLoop, limitMillis: UInt64 = 5_000, until done: @escaping () -> Bool) throws -> Bool {
        var met = false
        let check = try CoarseTimer(loop: loop) {
            if done() {
                met = true
                loop.stop()
            }
        }
        check.start(afterMillis: 1, repeatMillis: 5)
        let limit = try CoarseTimer(loop: loop) { loop.stop() }
        limit.start(afterMillis: limitMillis)
        loop.run()
        check.close()
        limit.close()
        return met
    }

    /// Closes the listener and checks that the loop closes with no handle left open.
    static func finish(_ listener: MetricsListener, _ loop: EventLoop) throws {
        listener.close()
        try loop.close()
    }

    @Test func pipelinedRequestsAreAnsweredInOrderOnOneConnection() throws {
        let loop = try EventLoop()
        var renders = 0
        let listener = try Self.listener(loop) {
            renders += 1
            return Self.exposition
        }
        let client = try RawHTTPConnection(port: listener.address.port)
        try client.send("GET /metrics HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\nGET /metrics?x HTTP/1.1\r\n\r\n")
        #expect(try Self.run(loop) { listener.responsesSent == 3 })
        let get = try #require(try client.readResponse())
        #expect(get.status == 200 && get.body == Self.exposition)
        let head = try #require(try client.readResponse(hasBody: false))
        #expect(head.status == 200 && head.header("Content-Length") == "\(Self.exposition.count)")
        #expect(try client.readResponse()?.body == Self.exposition)
        #expect(renders == 3)
        #expect(listener.openConnections == 1, "keep-alive: the connection stays open")
        try Self.finish(listener, loop)
    }

    /// An exposition that is ready only later (the daemon reads the store first): pipelined requests wait for it
    /// and are answered in order, and a client that leaves meanwhile is dropped without harm.
    @Test func aLaterExpositionAnswersPipelinedRequestsInOrder() throws {
        let loop = try EventLoop()
        var renders = 0
        let listener = try Self.laterListener(loop, delayMillis: 20) {
            renders += 1
            return Array("n \(renders)\n".utf8)
        }
        let client = try RawHTTPConnection(port: listener.address.port)
        try client.send(String(repeating: "GET /metrics HTTP/1.1\r\n\r\n", count: 6))
        #expect(try Self.run(loop) { listener.responsesSent == 6 })
        for number in 1...6 { #expect(try client.readResponse()?.text == "n \(number)\n") }
        let leaving = try RawHTTPConnection(port: listener.address.port)
        try leaving.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try Self.run(loop) { renders == 7 })
        leaving.close()
        #expect(try Self.run(loop) { listener.openConnections == 1 })
        try client.send("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        // The leaving client's response was handed to its socket too (or dropped with it).
        #expect(try Self.run(loop) { listener.responsesSent == 8 })
        #expect(try client.readResponse()?.text == "n 8\n")
        try Self.finish(listener, loop)
    }

    /// Fifty requests in one write are answered a few per loop iteration (`responsesPerTurn`), all in order.
    @Test func manyPipelinedRequestsAreAnsweredInTurns() throws {
        let loop = try EventLoop()
        var renders = 0
        let listener = try Self.listener(loop) {
            renders += 1
            return Array("n \(renders)\n".utf8)
        }
        var iterations = 0
        let hook = try IterationHook(loop: loop) { iterations += 1 }
        let client = try RawHTTPConnection(port: listener.address.port)
        try client.send(String(repeating: "GET /metrics HTTP/1.1\r\n\r\n", count: 50))
        #expect(try Self.run(loop) { listener.responsesSent == 50 })
        #expect(iterations >= 50 / MetricsConnection.responsesPerTurn, "\(iterations) loop iterations")
        for number in 1...50 { #expect(try client.readResponse()?.text == "n \(number)\n") }
        hook.close()
        try Self.finish(listener, loop)
    }

    /// A slowloris client trickles a byte every 50 ms: the request timeout counts from the connection's start,
    /// not from the last byte, and a partial request is answered 408.
    @Test func aTrickledRequestIsCutAtTheRequestTimeoutWith408() throws {
        let loop = try EventLoop()
        let listener = try Self.listener(loop, limits: Self.shortLimits())
        let started = monotonic()
        let client = try RawHTTPConnection(port: listener.address.port)
        #expect(try Self.run(loop) { listener.openConnections == 1 })
        let bytes = Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8) + [UInt8](repeating: 0x61, count: 200)
        var sent = 0
        let trickle = try CoarseTimer(loop: loop) {
            if sent < bytes.count {
                try? client.send(bytes: [bytes[sent]])
                sent += 1
            }
        }
        trickle.start(afterMillis: 1, repeatMillis: 50)
        #expect(try Self.run(loop) { listener.openConnections == 0 })
        let elapsed = monotonic() - started
        trickle.close()
        #expect(elapsed >= 0.29, "closed after \(elapsed) s")
        #expect(elapsed < 3, "closed after \(elapsed) s")
        let response = try #require(try client.readResponse())
        #expect(response.status == 408)
        #expect(response.header("Connection") == "close")
        #expect(client.isClosedByServer(within: 2))
        try Self.finish(listener, loop)
    }

    @Test func aSilentConnectionIsClosedWithoutAResponse() throws {
        let loop = try EventLoop()
        let listener = try Self.listener(loop, limits: Self.shortLimits())
        let client = try RawHTTPConnection(port: listener.address.port)
        #expect(try Self.run(loop) { listener.refusedConnections == 0 && listener.openConnections == 1 })
        #expect(try Self.run(loop) { listener.openConnections == 0 })
        #expect(try client.readUntilClosed(timeoutSeconds: 2) == [])
        try Self.finish(listener, loop)
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() throws {
        let loop = try EventLoop()
        let listener = try Self.listener(loop, limits: Self.shortLimits())
        let client = try RawHTTPConnection(port: listener.address.port)
        // Before the request: the loop, not running yet, answers it later, so the idle timeout ends after this.
        let sent = monotonic()
        try client.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try Self.run(loop) { listener.responsesSent == 1 })
        #expect(try Self.run(loop) { listener.openConnections == 0 })
        let idle = monotonic() - sent
        #expect(idle >= 0.39 && idle < 3, "closed \(idle) s after the request")
        #expect(try client.readResponse()?.status == 200)
        #expect(try client.readUntilClosed(timeoutSeconds: 2) == [], "an idle close sends nothing")
        try Self.finish(listener, loop)
    }

    /// A client that sends many requests and reads nothing gets one response queued, not one per request; it is
    /// closed when it has not taken that response within the idle timeout.
    @Test func aClientThatDoesNotReadHoldsOneResponseAndIsClosed() throws {
        let loop = try EventLoop()
        let big = [UInt8](repeating: 0x23, count: 16 << 20)
        let listener = try Self.listener(loop, limits: Self.shortLimits()) { big }
        let client = try RawHTTPConnection(port: listener.address.port)
        client.setReceiveBufferSize(4096)
        try client.send(String(repeating: "GET /metrics HTTP/1.1\r\n\r\n", count: 50))
        #expect(try Self.run(loop) { listener.responsesSent >= 1 })
        #expect(try !Self.run(loop, limitMillis: 150) { listener.responsesSent > 1 })
        #expect(listener.responsesSent == 1)
        #expect(try Self.run(loop) { listener.openConnections == 0 })
        #expect(listener.responsesSent == 1)
        try Self.finish(listener, loop)
    }

    @Test func connectionsPastTheLimitAreRefusedAndTheOthersServed() throws {
        let loop = try EventLoop()
        var limits = Self.shortLimits()
        limits.maxConnections = 2
        limits.requestTimeoutMillis = 5_000
        let listener = try Self.listener(loop, limits: limits)
        let first = try RawHTTPConnection(port: listener.address.port)
        let second = try RawHTTPConnection(port: listener.address.port)
        #expect(try Self.run(loop) { listener.openConnections == 2 })
        let third = try RawHTTPConnection(port: listener.address.port)
        #expect(try Self.run(loop) { listener.refusedConnections == 1 })
        let refusal = try third.readUntilClosed(timeoutSeconds: 2)
        #expect(refusal.isEmpty || String(decoding: refusal, as: UTF8.self).hasPrefix("HTTP/1.1 503 "))
        for client in [first, second] { try client.send("GET /metrics HTTP/1.1\r\n\r\n") }
        #expect(try Self.run(loop) { listener.responsesSent == 2 })
        #expect(try first.readResponse()?.status == 200)
        #expect(try second.readResponse()?.status == 200)
        // A slot that frees is taken by the next connection.
        first.close()
        #expect(try Self.run(loop) { listener.openConnections == 1 })
        let fourth = try RawHTTPConnection(port: listener.address.port)
        try fourth.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try Self.run(loop) { listener.responsesSent == 3 })
        #expect(try fourth.readResponse()?.status == 200)
        #expect(listener.refusedConnections == 1)
        try Self.finish(listener, loop)
    }

    @Test func closingTheListenerClosesEveryConnectionAndItsTimer() throws {
        let loop = try EventLoop()
        let listener = try Self.listener(loop)
        let clients = try (0..<3).map { _ in try RawHTTPConnection(port: listener.address.port) }
        try clients[0].send("GET /metr")
        try clients[1].send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try Self.run(loop) { listener.openConnections == 3 && listener.responsesSent == 1 })
        try Self.finish(listener, loop)
        for client in clients { #expect(client.isClosedByServer(within: 2)) }
    }
}
