import Glibc

extension DaemonProcess {
    /// The address of the daemon's HTTP metrics endpoint, read from its start-up line
    /// `metrics: serving http://127.0.0.1:43127/metrics` (so that a test can pass `--metrics-listen 127.0.0.1:0`
    /// and learn the port the kernel chose).
    /// - Parameter timeoutSeconds: How long to wait for the line (the daemon logs it before it is ready, so a
    ///   daemon that `init` saw serving has logged it already).
    /// - Returns: The host (without brackets) and port.
    /// - Throws: `TestSupportError` when no such line appears (the log is in the message).
    public func metricsAddress(timeoutSeconds: Double = 10) throws -> (host: String, port: UInt16) {
        let deadline = monotonicSeconds() + timeoutSeconds
        repeat {
            if let address = Self.metricsAddress(inLog: log()) { return address }
            usleep(10_000)
        } while monotonicSeconds() < deadline
        throw TestSupportError("no 'metrics: serving http://…/metrics' line in the log:\n\(log())")
    }

    /// The metrics endpoint's address in a daemon's log, from the last `metrics: serving` line.
    /// - Parameter log: The log text.
    /// - Returns: The host (without brackets) and port, or `nil`.
    public static func metricsAddress(inLog log: String) -> (host: String, port: UInt16)? {
        guard let line = log.split(separator: "\n").last(where: { $0.contains("metrics: serving http://") }),
              let start = line.firstRange(of: "http://")?.upperBound
        else { return nil }
        let rest = line[start...]
        guard let end = rest.firstRange(of: "/metrics")?.lowerBound else { return nil }
        let authority = rest[..<end]
        guard let colon = authority.lastIndex(of: ":"), let port = UInt16(authority[authority.index(after: colon)...])
        else { return nil }
        var host = authority[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (String(host), port)
    }

    /// Connects to the daemon's metrics endpoint (see `metricsAddress(timeoutSeconds:)`).
    /// - Returns: A new connection.
    /// - Throws: `TestSupportError` when there is no endpoint or the connection fails.
    public func connectMetrics() throws -> RawHTTPConnection {
        let address = try metricsAddress()
        return try RawHTTPConnection(host: address.host, port: address.port)
    }
}
