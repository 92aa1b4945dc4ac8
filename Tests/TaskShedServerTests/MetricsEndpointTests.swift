import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// The real daemon with `--metrics-listen 127.0.0.1:0`, spoken to over plain TCP sockets. The port comes from the
/// daemon's start-up line (`DaemonProcess.metricsAddress()`); after every bad request the task protocol on the
/// Unix socket must still work.
@Suite struct MetricsEndpointTests {
    static func daemon(_ extra: [String] = [], environment: [String: String] = [:]) throws -> DaemonProcess {
        try DaemonProcess(arguments: ["--metrics-listen", "127.0.0.1:0"] + extra, environment: environment)
    }

    /// PING answers, and a task added now is delivered to a subscribed worker and acknowledged.
    static func expectTheTaskProtocolStillWorks(_ daemon: DaemonProcess, callback: String,
                                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let scheduler = try Client(daemon)
        #expect(try scheduler.call(.ping).type == .pong, sourceLocation: sourceLocation)
        let worker = try Client(daemon)
        try worker.subscribe([callback])
        try scheduler.add([task("after-\(callback)", callback: callback, runAt: nowMicros())])
        let delivered = try worker.nextDelivery()
        #expect(delivered?.id == "after-\(callback)", sourceLocation: sourceLocation)
        if let delivered { #expect(try worker.ack(delivered) == .ok, sourceLocation: sourceLocation) }
    }

    @Test func getServesTheExpositionAndHeadItsHeadersOnOneKeptAliveConnection() throws {
        let daemon = try Self.daemon()
        let address = try daemon.metricsAddress()
        #expect(address.host == "127.0.0.1" && address.port != 0)
        #expect(daemon.log().contains("info taskshedd: metrics: serving http://127.0.0.1:\(address.port)/metrics"),
                "\(daemon.log())")
        let http = try daemon.connectMetrics()
        try http.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n")
        let get = try #require(try http.readResponse())
        #expect(get.status == 200)
        #expect(get.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(get.header("Content-Length") == "\(get.body.count)")
        #expect(get.header("Connection") == nil)
        #expect(get.text.hasSuffix("\n") && get.text.contains("# TYPE "), "\(get.text)")
        // HEAD on the same connection: the same headers and no body (else the GET after it would not parse).
        try http.send("HEAD /metrics HTTP/1.1\r\n\r\n")
        let head = try #require(try http.readResponse(hasBody: false))
        #expect(head.status == 200)
        // The length of the exposition as it is now: not necessarily the GET's, since the daemon's figures move
        // between the two (a store job's duration, a sum of seconds).
        #expect((head.header("Content-Length").flatMap { Int($0) } ?? 0) > get.body.count / 2)
        try http.send("GET /metrics?name[]=taskshed_up HTTP/1.1\r\nConnection: close\r\n\r\n")
        let last = try #require(try http.readResponse())
        #expect(last.status == 200 && last.header("Connection") == "close")
        #expect(try http.readUntilClosed() == [])
        #expect(try daemon.stop() == 0)
    }

    @Test func http10ClosesUnlessKeepAliveIsAskedFor() throws {
        let daemon = try Self.daemon()
        let closing = try daemon.connectMetrics()
        try closing.send("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(try closing.readResponse()?.status == 200)
        #expect(closing.isClosedByServer(within: 10))
        let kept = try daemon.connectMetrics()
        try kept.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try kept.readResponse()?.status == 200)
        try kept.send("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try kept.readResponse()?.status == 200)
        #expect(try daemon.stop() == 0)
    }

    /// Each bad request gets its status, then the connection closes; the daemon goes on serving both protocols.
    @Test(arguments: [
        ("GET /tasks HTTP/1.1\r\n\r\n", 404, "not-found"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "method"),
        ("DELETE /metrics HTTP/1.1\r\n\r\n", 405, "delete"),
        ("\u{16}\u{3}\u{1}\u{0}\u{a5}\u{1}\u{0}\u{0}\u{a1}\u{3}\u{3}", 400, "tls-hello"),
        ("hello daemon\r\n\r\n", 400, "garbage"),
        ("GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "b", count: 10 * 1024) + "\r\n\r\n", 431, "big-header"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", 413, "body"),
        ("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 413, "chunked"),
    ])
    func aBadRequestGetsItsStatusAndTheDaemonGoesOn(request: String, status: Int, name: String) throws {
        let daemon = try Self.daemon()
        let http = try daemon.connectMetrics()
        try http.send(request)
        let response = try #require(try http.readResponse(), "no response to \(name)")
        #expect(response.status == status, "\(name): \(response.status) \(response.text)")
        #expect(response.header("Connection") == "close")
        if status == 405 { #expect(response.header("Allow") == "GET, HEAD") }
        #expect(http.isClosedByServer(within: 10), "\(name): the connection stayed open")
        try Self.expectTheTaskProtocolStillWorks(daemon, callback: name)
        let again = try daemon.connectMetrics()
        try again.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try again.readResponse()?.status == 200)
        #expect(try daemon.stop() == 0)
    }

    /// 20 connections at once: 16 are served, the others are closed at once, and a freed slot serves again.
    @Test func connectionsPastSixteenAreClosedAndTheSixteenAreServed() throws {
        let daemon = try Self.daemon()
        let address = try daemon.metricsAddress()
        var open: [RawHTTPConnection] = []
        for _ in 0..<16 {
            let connection = try RawHTTPConnection(port: address.port)
            open.append(connection)
            // A request answered proves the daemon accepted this connection before the next one is made.
            try connection.send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(try connection.readResponse()?.status == 200)
        }
        for _ in 0..<4 {
            let extra = try RawHTTPConnection(port: address.port)
            let refused = extra.isClosedByServer(within: 10)
            #expect(refused, "a 17th connection was kept")
        }
        for connection in open {
            try connection.send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(try connection.readResponse()?.status == 200)
        }
        try Self.expectTheTaskProtocolStillWorks(daemon, callback: "crowd")
        open.removeFirst().close()
        var served = false
        let deadline = monotonic() + 10
        while !served && monotonic() < deadline {
            let next = try RawHTTPConnection(port: address.port)
            try? next.send("GET /metrics HTTP/1.1\r\n\r\n")
            served = (try? next.readResponse())?.status == 200
            if !served { pause(0.02) }
        }
        #expect(served, "the freed slot was not given to a new connection")
        #expect(try daemon.stop() == 0)
    }

    /// The 10 s and 30 s are shortened for the test through the daemon's environment.
    @Test func slowAndIdleConnectionsAreClosedAfterTheirTimeouts() throws {
        let daemon = try Self.daemon(environment: ["TASKSHEDD_METRICS_REQUEST_TIMEOUT": "500ms",
                                                   "TASKSHEDD_METRICS_IDLE_TIMEOUT": "800ms"])
        // Taken before the connection, whose accept starts the request timeout.
        let started = monotonic()
        let slow = try daemon.connectMetrics()
        try slow.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        let timedOut = try #require(try slow.readResponse(timeoutSeconds: 10))
        #expect(timedOut.status == 408)
        #expect(slow.isClosedByServer(within: 10))
        #expect(monotonic() - started >= 0.45)
        let idle = try daemon.connectMetrics()
        // Taken before the request, whose answer starts the idle timeout.
        let sent = monotonic()
        try idle.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try idle.readResponse()?.status == 200)
        #expect(try idle.readUntilClosed(timeoutSeconds: 10) == [])
        #expect(monotonic() - sent >= 0.75)
        try Self.expectTheTaskProtocolStillWorks(daemon, callback: "slow")
        #expect(try daemon.stop() == 0)
    }

    @Test func anAddressInUseStopsTheStartNamingTheOptionAndAddress() throws {
        let daemon = try Self.daemon()
        let port = try daemon.metricsAddress().port
        let directory = try TemporaryDirectory.create(prefix: "tsm")
        defer { TemporaryDirectory.remove(directory) }
        let second = try runDaemonToExit(["--socket", directory + "/d.sock", "--data-dir", directory + "/data",
                                          "--metrics-listen", "127.0.0.1:\(port)"])
        #expect(second.code == 1)
        #expect(second.output.contains("--metrics-listen 127.0.0.1:\(port): address already in use"),
                "\(second.output)")
        #expect(access(directory + "/d.sock", F_OK) != 0, "the refused daemon left its socket file")
        #expect(try Client(daemon).call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    static let hasIPv6Loopback: Bool = {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        inet_pton(AF_INET6, "::1", &address.sin6_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        } == 0
    }()

    @Test(.enabled(if: hasIPv6Loopback, "needs an IPv6 loopback"))
    func anIPv6AddressInBracketsIsServed() throws {
        let daemon = try DaemonProcess(arguments: ["--metrics-listen", "[::1]:0"])
        let address = try daemon.metricsAddress()
        #expect(address.host == "::1")
        #expect(daemon.log().contains("metrics: serving http://[::1]:\(address.port)/metrics"))
        let http = try daemon.connectMetrics()
        try http.send("GET /metrics HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        #expect(try http.readResponse()?.status == 200)
        #expect(try daemon.stop() == 0)
    }

    @Test func withoutTheOptionNothingListensOverHTTP() throws {
        let daemon = try DaemonProcess()
        #expect(try daemon.stop() == 0)
        #expect(!daemon.log().contains("metrics:"), "\(daemon.log())")
    }
}
