import Foundation
import Glibc

/// A failure the CLI reports as one line on standard error and a documented exit status.
public struct CLIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong and how to fix it, on one line.
    public var message: String
    /// The status `taskshedctl` exits with.
    public var status: ExitStatus

    /// Creates an error.
    public init(_ message: String, status: ExitStatus) {
        self.message = message
        self.status = status
    }

    /// The message.
    public var description: String { message }

    /// A usage error (status 64) built from a time or duration that did not parse.
    public static func badTime(_ error: TimeParseError, option: String? = nil) -> CLIError {
        CLIError(option.map { "\($0): \(error.description)" } ?? error.description, status: .usage)
    }
}

/// Explains why the daemon's socket cannot be reached by looking at the path itself, so the message can say
/// how to fix it (start the daemon, join the socket's group, fix the path).
public enum ConnectionDiagnosis {
    /// The one-line explanation and exit status for a failed connection to `path`.
    /// - Parameter path: The socket path the CLI tried.
    /// - Returns: The error to report.
    public static func diagnose(path: String) -> CLIError {
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            if code == EACCES {
                let directory = (path as NSString).deletingLastPathComponent
                return CLIError(
                    "permission denied on \(directory) (the directory of \(path)): \(groupAdvice(forPath: directory))",
                    status: .permissionDenied)
            }
            return CLIError(
                "cannot connect to \(path): no daemon socket there; start the daemon with "
                    + "`taskshedd --socket \(path)` (or `systemctl start taskshedd.socket` for the system service), "
                    + "or point --socket / TASKSHED_SOCKET at its socket",
                status: .unavailable)
        }
        if info.st_mode & S_IFMT != S_IFSOCK {
            return CLIError(
                "cannot connect to \(path): it is not a socket; check --socket / TASKSHED_SOCKET", status: .usage)
        }
        if access(path, W_OK) != 0 {
            return CLIError("permission denied on \(path): \(groupAdvice(forPath: path))", status: .permissionDenied)
        }
        return CLIError(
            "cannot connect to \(path): nothing is listening (a stale socket of a stopped daemon?); start it with "
                + "`taskshedd --socket \(path)` or `systemctl start taskshedd`",
            status: .unavailable)
    }

    /// "join group 'taskshed' (...)" for the group that owns `path`, or general advice when it cannot be named.
    static func groupAdvice(forPath path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0, let entry = getgrgid(info.st_gid), let name = entry.pointee.gr_name else {
            return "join the group that owns the socket, or run as its owner"
        }
        let group = String(cString: name)
        return "join group '\(group)' (`sudo usermod -aG \(group) $USER`, then log in again)"
    }
}
