import Glibc
import Testing
@testable import TaskShedEventLoop

/// A blocking TCP client connected to `host:port` (numeric IPv4 or IPv6), or -1.
func connectTCP(_ host: String, _ port: UInt16) -> Int32 {
    let isIPv6 = host.contains(":")
    let fd = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var result: Int32 = -1
    if isIPv6 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &address.sin6_addr)
        result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    } else {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
    if result != 0 {
        close(fd)
        return -1
    }
    return fd
}

/// Whether this machine has an IPv6 loopback to bind (containers may have none).
let hasIPv6Loopback: Bool = {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    inet_pton(AF_INET6, "::1", &address.sin6_addr)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
    } == 0
}()

@Suite struct TCPSocketTests {
    /// Port 0 binds a free port, which `boundAddress()` reports; an accepted TCP connection reads and writes like a
    /// Unix one.
    @Test(arguments: ["127.0.0.1", "::1"])
    func listenerOnAFreePortEchoesOverTCP(host: String) throws {
        guard host == "127.0.0.1" || hasIPv6Loopback else { return }
        let loop = try EventLoop()
        let listener = try TCPListener(loop: loop, address: TCPListener.Address(host: host, port: 0))
        let bound = try listener.boundAddress()
        #expect(bound.host == host)
        #expect(bound.port != 0)
        #expect(bound.description == (host.contains(":") ? "[\(host)]:\(bound.port)" : "\(host):\(bound.port)"))

        var accepted: [Connection] = []
        listener.onConnection = { error in
            #expect(error == nil)
            guard let connection = try? listener.accept() else { return }
            accepted.append(connection)
            connection.onData = { bytes in
                connection.write(bytes)
                try? connection.flush()
                loop.stop()
            }
            try? connection.startReading()
        }
        let client = connectTCP(host, bound.port)
        #expect(client >= 0)
        defer { close(client) }
        writeAll(client, Array("over tcp".utf8))
        #expect(try !run(loop))
        #expect(readExactly(client, 8) == Array("over tcp".utf8))

        accepted.forEach { $0.close() }
        listener.close()
        try loop.close()
    }

    @Test func aPortInUseIsAnErrorNamingTheAddress() throws {
        let loop = try EventLoop()
        let first = try TCPListener(loop: loop, address: TCPListener.Address(host: "127.0.0.1", port: 0))
        let port = try first.boundAddress().port
        do {
            _ = try TCPListener(loop: loop, address: TCPListener.Address(host: "127.0.0.1", port: port))
            Issue.record("a second listener bound 127.0.0.1:\(port)")
        } catch {
            #expect(error.code == -EADDRINUSE)
            #expect(error.message == "address already in use")
            #expect(error.detail == "127.0.0.1:\(port)")
        }
        first.close()
        // The failed listener closed its half-made handle: the loop closes with nothing left open.
        try loop.close()
    }

    @Test(arguments: ["localhost", "127.1", "1::2::3", ""])
    func aHostThatIsNotANumericAddressIsRefused(host: String) throws {
        let loop = try EventLoop()
        #expect(throws: UVError.self) { _ = try TCPListener(loop: loop, address: TCPListener.Address(host: host, port: 0)) }
        try loop.close()
    }
}
