import Glibc

/// A blocking TCP client for tests of the daemon's HTTP metrics endpoint: send raw bytes, read responses and the
/// end of the stream, each with a timeout.
///
/// - Important: One thread at a time. Every read takes a timeout so that a broken server fails a test instead of
///   hanging it. The socket is close-on-exec, so spawned daemons do not inherit it.
public final class RawHTTPConnection: @unchecked Sendable {
    /// One response as read from the socket.
    public struct Response: Sendable {
        /// The status code (`200`).
        public var status: Int
        /// The reason phrase (`OK`).
        public var reason: String
        /// The headers in order, names as sent.
        public var headers: [(name: String, value: String)]
        /// The body (empty for a response to HEAD).
        public var body: [UInt8]

        /// The first header with this name, compared without case.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// The socket descriptor.
    public let descriptor: Int32
    private var input: [UInt8] = []
    private var sawEndOfFile = false
    private var isClosed = false
    /// Whether the stream ended on a reset (`ECONNRESET`) rather than the server's orderly close.
    public private(set) var wasReset = false

    /// Connects to a numeric address.
    /// - Parameters:
    ///   - host: `127.0.0.1`, or an IPv6 address without brackets (`::1`).
    ///   - port: The port.
    /// - Throws: `TestSupportError` when the address is not numeric or `connect` fails (`errno` in the message).
    public init(host: String = "127.0.0.1", port: UInt16) throws {
        let isIPv6 = host.contains(":")
        let fd = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var result: Int32
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                Glibc.close(fd)
                throw TestSupportError("not an IPv6 address: \(host)")
            }
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                Glibc.close(fd)
                throw TestSupportError("not an IPv4 address: \(host)")
            }
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestSupportError("connect \(host) port \(port): \(message)")
        }
        descriptor = fd
    }

    deinit {
        if !isClosed { Glibc.close(descriptor) }
    }

    /// Closes the socket.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    /// Sets the kernel receive buffer (so that a client that does not read fills it soon). Corresponds to
    /// `setsockopt(SO_RCVBUF)`.
    public func setReceiveBufferSize(_ bytes: Int32) {
        var value = bytes
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Writes all bytes.
    /// - Throws: `TestSupportError` when the write fails (`EPIPE`, `ECONNRESET`).
    public func send(bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestSupportError("send: \(String(cString: strerror(errno)))")
            }
            sent += n
        }
    }

    /// Writes text as UTF-8 (write `\r\n` line ends yourself).
    /// - Throws: `TestSupportError` from `send(bytes:)`.
    public func send(_ text: String) throws {
        try send(bytes: Array(text.utf8))
    }

    /// Reads one response.
    /// - Parameters:
    ///   - hasBody: `false` for a response to HEAD: its Content-Length describes a body that is not sent.
    ///   - timeoutSeconds: How long to wait for the whole response.
    /// - Returns: The response, or `nil` when the server closed the connection before sending a byte of it.
    /// - Throws: `TestSupportError` on timeout, a read error, or bytes that are not a response.
    public func readResponse(hasBody: Bool = true, timeoutSeconds: Double = 10) throws -> Response? {
        let deadline = monotonicSeconds() + timeoutSeconds
        var headEnd: Int?
        while headEnd == nil {
            headEnd = Self.endOfHead(in: input)
            if headEnd != nil { break }
            if sawEndOfFile || wasReset {
                if input.isEmpty { return nil }
                throw TestSupportError("the connection ended inside a response head: \(text(input))")
            }
            try fill(until: deadline, timeoutSeconds: timeoutSeconds)
        }
        let headLength = headEnd!
        let head = text(Array(input[0..<headLength]))
        // Swift reads "\r\n" as one Character.
        var lines = head.split(separator: "\r\n" as Character, omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw TestSupportError("not a status line: \(statusLine)")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw TestSupportError("not a header: \(line)") }
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            headers.append((String(line[..<colon]), String(value)))
        }
        var response = Response(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers,
                                body: [])
        let length = hasBody ? (response.header("Content-Length").flatMap { Int($0) } ?? 0) : 0
        let total = headLength + 4 + length
        while input.count < total {
            if sawEndOfFile || wasReset {
                throw TestSupportError("the connection ended after \(input.count - headLength - 4) of \(length) body bytes")
            }
            try fill(until: deadline, timeoutSeconds: timeoutSeconds)
        }
        response.body = Array(input[(headLength + 4)..<total])
        input.removeFirst(total)
        return response
    }

    /// Waits until the server ends the stream (an orderly close or a reset).
    /// - Parameter timeoutSeconds: How long to wait.
    /// - Returns: The bytes received before the end (not part of a response read earlier).
    /// - Throws: `TestSupportError` when the connection stays open past the timeout.
    public func readUntilClosed(timeoutSeconds: Double = 10) throws -> [UInt8] {
        let deadline = monotonicSeconds() + timeoutSeconds
        while !sawEndOfFile && !wasReset {
            try fill(until: deadline, timeoutSeconds: timeoutSeconds)
        }
        defer { input = [] }
        return input
    }

    /// Whether the server ended the stream within `timeoutSeconds` (bytes received meanwhile are kept).
    public func isClosedByServer(within timeoutSeconds: Double) -> Bool {
        let deadline = monotonicSeconds() + timeoutSeconds
        while !sawEndOfFile && !wasReset {
            do {
                try fill(until: deadline, timeoutSeconds: timeoutSeconds)
            } catch {
                return false
            }
        }
        return true
    }

    private func fill(until deadline: Double, timeoutSeconds: Double) throws {
        let remaining = deadline - monotonicSeconds()
        if remaining <= 0 { throw TestSupportError("no response or close within \(timeoutSeconds) s") }
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(min(max(remaining * 1000, 1), 600_000)))
        if ready < 0 {
            if errno == EINTR { return }
            throw TestSupportError("poll: \(String(cString: strerror(errno)))")
        }
        if ready == 0 { return }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            if errno == ECONNRESET {
                wasReset = true
                return
            }
            throw TestSupportError("read: \(String(cString: strerror(errno)))")
        }
        if n == 0 {
            sawEndOfFile = true
            return
        }
        input += chunk[0..<n]
    }

    private static func endOfHead(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
