import CLibUV
import Glibc

/// A listening TCP socket (`uv_tcp_t`) bound to a numeric IPv4 or IPv6 address: for the daemon's HTTP metrics
/// endpoint. Clients of the task protocol never use TCP; they connect to the `UnixListener`.
///
/// - Important: Loop-thread only (see `LoopHandle`).
public final class TCPListener: LoopHandle {
    /// An address a TCP socket is bound to.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        /// The numeric host: `127.0.0.1`, `::1`.
        public var host: String
        /// The port.
        public var port: UInt16
        /// Whether `host` is an IPv6 address.
        public var isIPv6: Bool

        /// Creates an address.
        /// - Parameters:
        ///   - host: A numeric IPv4 or IPv6 address (IPv6 without brackets).
        ///   - port: The port (0 asks the kernel for a free one when binding).
        public init(host: String, port: UInt16) {
            self.host = host
            self.port = port
            isIPv6 = host.contains(":")
        }

        /// `host:port`, with an IPv6 host in brackets (`[::1]:9464`), as in a URL.
        public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Runs when a connection is waiting to be accepted (call `accept()`), or with an error.
    public var onConnection: (UVError?) -> Void = { _ in }

    private var tcp: UnsafeMutablePointer<uv_tcp_t> { rawHandle.assumingMemoryBound(to: uv_tcp_t.self) }

    /// Binds a new socket and starts listening. Corresponds to `uv_tcp_init`, `uv_tcp_bind` (libuv sets
    /// `SO_REUSEADDR`, so a restarted daemon can bind while old connections are in `TIME_WAIT`) and `uv_listen`.
    ///
    /// Listening is part of creating it because libuv defers some bind errors, `EADDRINUSE` among them, to
    /// `uv_listen`: a listener that exists is one that serves.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - address: A numeric address; port 0 picks a free port (see `boundAddress()`).
    ///   - backlog: The kernel's queue of not-yet-accepted connections.
    /// - Throws: `UVError`: `UV_EINVAL` for a host that is not a numeric address, `UV_EADDRINUSE`, `UV_EACCES`
    ///   (a port below 1024 without the capability), `UV_EADDRNOTAVAIL` (not an address of this machine).
    public init(loop: EventLoop, address: Address, backlog: Int32 = 128) throws(UVError) {
        var storage = sockaddr_storage()
        let parsed = withUnsafeMutablePointer(to: &storage) { pointer -> Int32 in
            if address.isIPv6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    uv_ip6_addr(address.host, Int32(address.port), $0)
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                uv_ip4_addr(address.host, Int32(address.port), $0)
            }
        }
        if parsed < 0 {
            throw UVError(code: parsed, operation: address.isIPv6 ? "uv_ip6_addr" : "uv_ip4_addr",
                          detail: address.host)
        }
        super.init(loop: loop, type: uv_tcp_t.self)
        let status = uv_tcp_init(loop.loop, tcp)
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_tcp_init")
        }
        didInitialise()
        let bound = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        if bound < 0 {
            close()
            throw UVError(code: bound, operation: "uv_tcp_bind", detail: address.description)
        }
        let listening = uv_listen(stream, backlog) { server, status in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(server), as: TCPListener.self) else {
                return
            }
            owner.onConnection(status < 0 ? UVError(code: status, operation: "uv_listen") : nil)
        }
        if listening < 0 {
            close()
            throw UVError(code: listening, operation: "uv_listen", detail: address.description)
        }
    }

    /// The address the socket is bound to, with the port the kernel chose for port 0. Corresponds to
    /// `uv_tcp_getsockname`, `uv_ip4_name` and `uv_ip6_name`.
    /// - Throws: `UVError` from `uv_tcp_getsockname` (`UV_EBADF` once closing).
    public func boundAddress() throws(UVError) -> Address {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(tcp, $0, &length) }
        }
        try check(status, "uv_tcp_getsockname")
        var name = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port: UInt16
        if Int32(storage.ss_family) == AF_INET6 {
            port = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    _ = uv_ip6_name(address, &name, name.count)
                    return UInt16(bigEndian: address.pointee.sin6_port)
                }
            }
        } else {
            port = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    _ = uv_ip4_name(address, &name, name.count)
                    return UInt16(bigEndian: address.pointee.sin_port)
                }
            }
        }
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Address(host: host, port: port)
    }

    /// Accepts one pending connection. Corresponds to `uv_tcp_init` and `uv_accept`.
    /// - Returns: The connection, not yet reading (call `Connection.startReading()`).
    /// - Throws: `UVError` from `uv_accept` (`UV_EAGAIN` when none is pending, `UV_EMFILE` when the process is out
    ///   of descriptors).
    public func accept() throws(UVError) -> Connection {
        let connection = try Connection(loop: loop, transport: .tcp)
        let status = uv_accept(stream, connection.stream)
        if status < 0 {
            connection.close()
            throw UVError(code: status, operation: "uv_accept")
        }
        return connection
    }
}
