import Glibc

/// Where the metrics endpoint listens (`--metrics-listen HOST:PORT`): a numeric IPv4 address, or an IPv6 address
/// in brackets, and a port (0: a free port, logged at start).
///
/// Host names are refused rather than resolved: a name could resolve to an address the operator did not mean (or
/// to several), and resolving it at start would make the daemon wait on DNS.
public struct MetricsAddress: Sendable, Hashable, CustomStringConvertible {
    /// The numeric host, without brackets: `127.0.0.1`, `::1`.
    public var host: String
    /// The port; 0 asks the kernel for a free one.
    public var port: UInt16
    /// Whether `host` is an IPv6 address.
    public var isIPv6: Bool { host.contains(":") }

    /// Creates an address from parts already checked.
    /// - Parameters:
    ///   - host: A numeric IPv4 or IPv6 address (IPv6 without brackets).
    ///   - port: The port.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `HOST:PORT` as the option takes it: `127.0.0.1:9464`, `[::1]:9464`.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `--metrics-listen`'s value.
    /// - Parameter text: `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`, `[::]:0`...
    /// - Returns: The address.
    /// - Throws: `ConfigurationError` naming `--metrics-listen`, the value, and the accepted forms.
    public static func parse(_ text: String) throws(ConfigurationError) -> MetricsAddress {
        func fail(_ problem: String) -> ConfigurationError {
            ConfigurationError(option: "--metrics-listen", message: "'\(text)' \(problem); write HOST:PORT with a "
                + "numeric IPv4 address (127.0.0.1:9464) or an IPv6 address in brackets ([::1]:9464); port 0 "
                + "picks a free port")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("has no ']' after the IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail("has no :PORT after the IPv6 address") }
            portText = rest.dropFirst()
            guard isNumeric(host, family: AF_INET6) else { throw fail("has no IPv6 address in its brackets") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("has no :PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.isEmpty { throw fail("has no host") }
            if host.contains(":") { throw fail("needs brackets around its IPv6 address") }
            guard isNumeric(host, family: AF_INET) else {
                throw fail("has no numeric IPv4 address (host names are not resolved)")
            }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), port <= Int(UInt16.max)
        else {
            throw fail("has no port between 0 and 65535")
        }
        return MetricsAddress(host: String(host), port: UInt16(port))
    }

    /// Whether `host` is a numeric address of `family`. Corresponds to `inet_pton`, which takes dotted-decimal
    /// IPv4 with four parts only (no `127.1`), and IPv6 without a zone.
    private static func isNumeric(_ host: Substring, family: Int32) -> Bool {
        var buffer = in6_addr()
        return String(host).withCString { inet_pton(family, $0, &buffer) } == 1
    }
}
