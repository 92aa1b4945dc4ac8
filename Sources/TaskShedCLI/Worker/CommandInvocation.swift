import Glibc

/// One run of a shell command: what `CommandRunner` executes for a task.
public struct CommandInvocation: Sendable {
    /// Where the command's standard output goes.
    public enum OutputTarget: Sendable, Hashable {
        /// The worker's own standard output.
        case inherit
        /// `/dev/null`.
        case discard
    }

    /// The shell command line, run as `/bin/sh -c COMMAND`.
    public var command: String
    /// Bytes given to the command on standard input (the task's kwargs JSON).
    public var standardInput: [UInt8]
    /// The complete environment of the command (the worker's environment plus the `TASKSHED_*` variables).
    public var environment: [String: String]
    /// Longest run in microseconds before the process group is terminated, or `nil` for no limit.
    public var timeoutMicros: Int64?
    /// Time between SIGTERM and SIGKILL when the process group is stopped (timeout or cancellation).
    public var killGraceMicros: Int64
    /// Where standard output goes.
    public var standardOutput: OutputTarget
    /// Whether the command's standard error is also copied to the worker's standard error as it arrives (it
    /// is always captured for the failure message).
    public var forwardStandardError: Bool

    /// Creates an invocation.
    public init(
        command: String,
        standardInput: [UInt8] = [],
        environment: [String: String],
        timeoutMicros: Int64? = nil,
        killGraceMicros: Int64 = 2_000_000,
        standardOutput: OutputTarget = .inherit,
        forwardStandardError: Bool = false
    ) {
        self.command = command
        self.standardInput = standardInput
        self.environment = environment
        self.timeoutMicros = timeoutMicros
        self.killGraceMicros = killGraceMicros
        self.standardOutput = standardOutput
        self.forwardStandardError = forwardStandardError
    }
}

/// How a command run ended.
public struct CommandResult: Sendable, Hashable {
    /// How the shell process ended.
    public enum Termination: Sendable, Hashable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signaled(Int32)
    }

    /// How the process ended.
    public var termination: Termination
    /// Whether the run hit its timeout (the process group was then terminated).
    public var timedOut: Bool
    /// Whether the run was cancelled (the process group was then terminated).
    public var cancelled: Bool
    /// The last lines of standard error (at most `CommandResult.tailLines`, without trailing empty lines).
    public var standardErrorTail: [String]
    /// Wall-clock duration of the run in microseconds.
    public var elapsedMicros: Int64

    /// How many trailing lines of standard error a result keeps.
    public static let tailLines = 10
    /// The most bytes of the failure description: the daemon keeps 4 KiB of a task's error and cuts the end,
    /// and the client library puts the error's type name in front (`CommandFailed: `), so this leaves room for it.
    public static let maxDescriptionBytes = 4000

    /// Creates a result.
    public init(
        termination: Termination, timedOut: Bool, cancelled: Bool, standardErrorTail: [String], elapsedMicros: Int64
    ) {
        self.termination = termination
        self.timedOut = timedOut
        self.cancelled = cancelled
        self.standardErrorTail = standardErrorTail
        self.elapsedMicros = elapsedMicros
    }

    /// Success means exit status 0 within the timeout.
    public var succeeded: Bool {
        termination == .exited(0) && !timedOut && !cancelled
    }

    /// For a failed run, the error reported to the daemon: the cause, then the last lines of standard error,
    /// such as `exit status 3: cannot reach host`; `nil` on success. At most `maxDescriptionBytes` of UTF-8, the
    /// end of standard error kept when it is cut.
    public var failureDescription: String? {
        guard !succeeded else { return nil }
        var cause: String
        if timedOut {
            cause = "timed out after \(TimeFormatting.measurement(micros: elapsedMicros)) (process group terminated)"
        } else if cancelled {
            cause = "cancelled (process group terminated)"
        } else {
            switch termination {
            case .exited(let status): cause = "exit status \(status)"
            case .signaled(let signal): cause = "killed by signal \(signal)"
            }
        }
        let tail = standardErrorTail.joined(separator: "\n")
        guard !tail.isEmpty else { return cause }
        cause += ": "
        let budget = CommandResult.maxDescriptionBytes - cause.utf8.count
        let tailBytes = Array(tail.utf8)
        if tailBytes.count <= budget { return cause + tail }
        // Keep the end (the most recent output); skip continuation bytes so the cut lands on a character.
        var start = tailBytes.count - budget
        while start < tailBytes.count, tailBytes[start] & 0xC0 == 0x80 { start += 1 }
        return cause + String(decoding: tailBytes[start...], as: UTF8.self)
    }
}

/// The command could not be started at all (not the same as the command failing).
public struct CommandLaunchError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The failing call, such as `posix_spawn`.
    public var operation: String
    /// The `errno` value.
    public var errno: Int32

    /// Creates an error.
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// `posix_spawn failed: No such file or directory (errno 2)`.
    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
