import Glibc
import TaskShedEventLoop

/// systemd socket activation: finds the listening socket the service manager passed (`LISTEN_FDS`, starting
/// at descriptor 3) and checks that it is one the daemon can serve.
///
/// The rules of sd_listen_fds(3): the variables apply only when `LISTEN_PID` equals this process's pid (so a
/// child that inherited them by accident ignores them); descriptors start at 3. The daemon serves one socket,
/// so it takes descriptor 3 and requires it to be a listening `AF_UNIX` `SOCK_STREAM` socket.
public enum SocketActivation {
    /// The first passed descriptor (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3

    /// What the environment says.
    public enum Outcome: Sendable, Hashable {
        /// No activation variables for this process: bind the socket path.
        case notActivated
        /// Descriptor 3 is a listening Unix stream socket to adopt.
        case activated(descriptor: Int32, count: Int)
    }

    /// Inspects the activation variables and, when they are for this process, the descriptor.
    /// - Parameters:
    ///   - environment: The process environment.
    ///   - pid: This process's pid.
    /// - Returns: Whether and what to adopt.
    /// - Throws: `SocketActivationError` when the variables are meant for this process but unusable (a bad
    ///   count, or descriptor 3 is not a listening Unix stream socket): a service manager that passes a wrong
    ///   socket is a configuration error, and silently binding somewhere else would hide it.
    public static func inspect(environment: [String: String], pid: Int32) throws(SocketActivationError) -> Outcome {
        guard let pidText = environment["LISTEN_PID"], let listenPID = Int32(pidText), listenPID == pid else {
            return .notActivated
        }
        guard let countText = environment["LISTEN_FDS"], let count = Int(countText), count >= 1 else {
            throw SocketActivationError(message: "LISTEN_PID is this process but LISTEN_FDS is \(environment["LISTEN_FDS"] ?? "unset"); expected 1 or more")
        }
        let descriptor = firstDescriptor
        let kind: SocketInspection.Kind
        do {
            kind = try SocketInspection.kind(ofDescriptor: descriptor)
        } catch {
            throw SocketActivationError(message: "passed descriptor \(descriptor) is not a usable socket: \(error)")
        }
        guard kind.isListeningUnixStream else {
            throw SocketActivationError(
                message: "passed descriptor \(descriptor) is not a listening AF_UNIX SOCK_STREAM socket "
                    + "(domain \(kind.domain), type \(kind.type), listening \(kind.isListening))")
        }
        // Later descriptors (if any) are not served; they stay open, owned by the service manager's logic.
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        return .activated(descriptor: descriptor, count: count)
    }
}

/// The service manager passed activation variables that cannot be used.
public struct SocketActivationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(message: String) {
        self.message = message
    }

    /// `"socket activation: <message>"`.
    public var description: String { "socket activation: " + message }
}
