import Glibc

/// Sends service-manager notifications (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=...`) to
/// `$NOTIFY_SOCKET`, speaking the sd_notify datagram protocol directly.
///
/// Why not libsystemd: the protocol is one `AF_UNIX` datagram of newline-separated `KEY=VALUE` lines to a path
/// (or an abstract address when it starts with `@`), stable and documented in sd_notify(3). Writing it here
/// keeps the daemon free of a library that would pull in more than it needs and would have to be present even
/// where systemd is not used; the only logic worth taking from libsystemd (abstract addresses, `WATCHDOG_PID`)
/// is a few lines.
///
/// - Important: Not thread-safe; used from the loop thread. Sending never blocks (`MSG_DONTWAIT`): a slow
///   service manager must not stall the loop, and a lost notification is harmless for `STATUS`.
public struct SystemdNotifier: Sendable {
    /// The notification socket address, or `nil` when not running under a service manager.
    public let socketPath: String?
    /// Half the watchdog interval in µs when the manager asked for watchdog pings for this process.
    public let watchdogPingIntervalMicros: Int64?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from an environment.
    /// - Parameters:
    ///   - environment: The process environment.
    ///   - pid: This process's pid (`WATCHDOG_PID`, when set, must match it).
    public init(environment: [String: String], pid: Int32) {
        if let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.hasPrefix("/") || path.hasPrefix("@") {
            socketPath = path
        } else {
            socketPath = nil
        }
        if let text = environment["WATCHDOG_USEC"], let micros = Int64(text), micros > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == pid }) ?? true {
            watchdogPingIntervalMicros = micros / 2
        } else {
            watchdogPingIntervalMicros = nil
        }
    }

    /// Whether a service manager listens.
    public var isEnabled: Bool { socketPath != nil }

    /// Sends one notification. Corresponds to `socket(AF_UNIX, SOCK_DGRAM)` and `sendto`.
    /// - Parameter state: Newline-separated assignments, such as `"READY=1\nSTATUS=serving"`.
    /// - Returns: `nil` on success or when disabled; otherwise the failing call and `errno` text.
    @discardableResult
    public func notify(_ state: String) -> String? {
        guard let socketPath else { return nil }
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count <= 107 else { return "NOTIFY_SOCKET path is too long" }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: " + String(cString: strerror(errno)) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
            // An abstract socket's name starts with a NUL byte instead of '@'.
            if pathBytes.first == UInt8(ascii: "@") { raw[0] = 0 }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        // A path socket's address includes the terminating NUL; an abstract one is exactly its bytes.
        let length = pathOffset + pathBytes.count + (pathBytes.first == UInt8(ascii: "@") ? 0 : 1)
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { bytes in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), socketAddress,
                           socklen_t(length))
                }
            }
        }
        return sent < 0 ? "sendto \(socketPath): " + String(cString: strerror(errno)) : nil
    }
}
