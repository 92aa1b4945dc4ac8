import TaskShedProtocol

/// The exit statuses of `taskshedctl`, after BSD's `sysexits.h` where one fits (documented in README-cli.md).
///
/// | status | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | the command ran but reports a failure (`worker` stopped by an error) |
/// | 64 | usage: a bad argument or option, a bad time or duration, a bad calendar expression or zone, or a request the daemon rejected as invalid |
/// | 65 | data: the kwargs are not a JSON object, or a file given with `@file` cannot be read |
/// | 66 | not found: a named task does not exist |
/// | 69 | unavailable: cannot connect to the daemon, or it is shutting down or at its connection limit |
/// | 70 | software: the daemon reported an internal error, the reply broke the protocol, or the daemon is too old for the request (`history` against a daemon without a run history) |
/// | 73 | exists: a task id already exists where the request asked to fail on conflict |
/// | 75 | temporary failure: the store is full; retry after removing tasks |
/// | 77 | permission denied: the daemon refused this user (join the socket's group) |
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Success.
    case success = 0
    /// A command-specific failure.
    case failure = 1
    /// Bad command-line usage or an invalid argument (EX_USAGE).
    case usage = 64
    /// Bad input data such as malformed kwargs (EX_DATAERR).
    case dataError = 65
    /// A named task does not exist (EX_NOINPUT).
    case notFound = 66
    /// The daemon cannot be reached or is not accepting work (EX_UNAVAILABLE).
    case unavailable = 69
    /// The daemon failed internally or broke the protocol (EX_SOFTWARE).
    case software = 70
    /// A task id already exists (EX_CANTCREAT).
    case exists = 73
    /// A temporary condition such as a full store (EX_TEMPFAIL).
    case temporaryFailure = 75
    /// The daemon refused this user (EX_NOPERM).
    case permissionDenied = 77

    /// The exit status for an error code the daemon replied with.
    /// - Parameter code: The protocol error code.
    /// - Returns: The status `taskshedctl` exits with.
    public static func forProtocolError(_ code: ErrorCode) -> ExitStatus {
        switch code {
        case .invalidArgument: return .usage
        case .taskNotFound: return .notFound
        case .taskExists: return .exists
        case .storeFull: return .temporaryFailure
        case .permissionDenied: return .permissionDenied
        case .tooManyConnections, .shuttingDown, .storeUnavailable: return .unavailable
        default: return .software
        }
    }
}
