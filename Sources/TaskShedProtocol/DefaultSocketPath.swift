/// Where the daemon listens and clients connect when no path is given, so that both sides agree.
///
/// The rule, in order:
/// 1. `TASKSHED_SOCKET` if set and non-empty;
/// 2. `$XDG_RUNTIME_DIR/taskshed/taskshedd.sock` if `XDG_RUNTIME_DIR` is set (a developer's own runtime dir);
/// 3. `/tmp/taskshed-<uid>/taskshedd.sock`.
///
/// A system service (see `systemd/taskshedd.socket`) listens on `/run/taskshed/taskshedd.sock`; its clients set
/// `TASKSHED_SOCKET` or pass the path explicitly.
public enum DefaultSocketPath {
    /// The environment variable that overrides the default socket path for clients and the daemon.
    public static let environmentVariable = "TASKSHED_SOCKET"

    /// Resolves the default socket path from an environment and a user id.
    /// - Parameters:
    ///   - environment: The process environment (pass `ProcessInfo.processInfo.environment`).
    ///   - uid: The caller's real user id (`getuid()`), used for the fallback under `/tmp`.
    /// - Returns: The absolute socket path.
    public static func resolve(environment: [String: String], uid: UInt32) -> String {
        if let explicit = environment[environmentVariable], !explicit.isEmpty {
            return explicit
        }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/taskshed/taskshedd.sock"
        }
        return "/tmp/taskshed-\(uid)/taskshedd.sock"
    }
}
