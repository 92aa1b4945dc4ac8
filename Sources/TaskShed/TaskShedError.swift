import TaskShedProtocol

/// The protocol's error code type, visible to users of `TaskShed` without importing `TaskShedProtocol`.
public typealias ErrorCode = TaskShedProtocol.ErrorCode

/// An error from the TaskShed client: a code, the request field at fault (when there is one) and a readable
/// message.
///
/// The code is either one of the daemon's protocol codes (`TaskShedError.Code(ErrorCode.invalidArgument)`,
/// also spelled `.invalidArgument`) or a client-side code such as `.connectionFailed` or `.invalidUsage`. It is a
/// struct wrapping a number rather than an enum so that new codes do not break `switch` statements in callers;
/// compare with `==` or `~=`:
///
/// ```swift
/// do {
///     try await scheduler.addTask(callback: "", runAt: .now)
/// } catch let error as TaskShedError where error.code == .invalidArgument {
///     print(error.field ?? "-")   // "tasks[0].callback"
/// }
/// ```
public struct TaskShedError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public var code: Code
    /// The request field at fault as a path ("tasks[3].schedule", "ids"), when there is one.
    public var field: String?
    /// What went wrong and, where it helps, what to do about it.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The code.
    ///   - field: The field at fault, if any.
    ///   - message: A readable explanation.
    public init(_ code: Code, field: String? = nil, message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    /// Wraps an `ERROR` reply from the daemon.
    /// - Parameter reply: The reply.
    public init(_ reply: ErrorReply) {
        self.init(Code(reply.code), field: reply.field, message: reply.message)
    }

    /// Whether sending the same request again later may succeed (for example after the daemon restarted).
    public var isRetriable: Bool { code.isRetriable }

    /// `"INVALID_ARGUMENT (tasks[0].callback): callback must not be empty"`.
    public var description: String {
        var text = code.name
        if let field { text += " (\(field))" }
        return text + ": " + message
    }

    /// A TaskShed error code: the daemon's protocol codes (0...0xFFFF, the same numbers as ``ErrorCode``) and the
    /// client's own codes (from 0x1_0000).
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The number: a protocol code, or a client code from 0x1_0000.
        public var rawValue: UInt32

        /// Wraps a raw number.
        /// - Parameter rawValue: The number.
        public init(rawValue: UInt32) {
            self.rawValue = rawValue
        }

        /// Wraps one of the daemon's protocol codes.
        /// - Parameter serverCode: The protocol code.
        public init(_ serverCode: ErrorCode) {
            self.rawValue = UInt32(serverCode.rawValue)
        }

        /// The protocol code when this is one of the daemon's codes, `nil` for client codes.
        public var serverCode: ErrorCode? {
            rawValue <= UInt32(UInt16.max) ? ErrorCode(rawValue: UInt16(rawValue)) : nil
        }

        // MARK: Client codes

        /// The daemon's socket could not be reached (no daemon, wrong path, path too long, access denied).
        public static let connectionFailed = Code(rawValue: 0x1_0001)
        /// The connection closed (daemon stopped or restarted, or the client was shut down) while a call was in
        /// flight, or a call was made on a closed client. Retriable: the next call connects again.
        public static let connectionClosed = Code(rawValue: 0x1_0002)
        /// The API was called with arguments that cannot be sent (neither or both of ids and group, a negative
        /// count, a batch larger than the daemon allows). Nothing was sent.
        public static let invalidUsage = Code(rawValue: 0x1_0003)
        /// A worker already has a callback with this name.
        public static let duplicateCallback = Code(rawValue: 0x1_0004)
        /// The daemon sent something the protocol does not allow here (wrong reply type, undecodable frame).
        /// The connection is closed.
        public static let protocolViolation = Code(rawValue: 0x1_0005)
        /// A value could not be encoded as a kwargs JSON object, or kwargs could not be decoded as the type
        /// asked for.
        public static let kwargsCoding = Code(rawValue: 0x1_0006)
        /// The worker or scheduler was shut down.
        public static let shutDown = Code(rawValue: 0x1_0007)

        // MARK: Daemon codes (the same numbers as `ErrorCode`; the error table in PROTOCOL.md is normative)

        /// The frame header could not be trusted (bad length, nonzero reserved flags); the daemon closed the
        /// connection.
        public static let malformedFrame = Code(.malformedFrame)
        /// A frame's length prefix exceeded the daemon's maximum frame size (`--max-frame-bytes`); the daemon closed
        /// the connection.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// No protocol version in common with the daemon (or a request newer than the daemon's version); the daemon
        /// closes the connection after a failed handshake.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// The daemon does not know the request's type (an older daemon); the connection stays usable.
        public static let unknownMessageType = Code(.unknownMessageType)
        /// The request's payload did not decode as its type's layout; the connection stays usable.
        public static let malformedMessage = Code(.malformedMessage)
        /// A request other than HELLO came first; the daemon closed the connection.
        public static let handshakeRequired = Code(.handshakeRequired)
        /// A field has a value the daemon does not accept; ``TaskShedError/field`` names it.
        public static let invalidArgument = Code(.invalidArgument)
        /// A named task does not exist (the original's `TaskNotFoundError`).
        public static let taskNotFound = Code(.taskNotFound)
        /// A task id already exists.
        public static let taskExists = Code(.taskExists)
        /// A lease is no longer held by this connection (it expired, or the task was replaced).
        public static let leaseLost = Code(.leaseLost)
        /// The store reached its maximum size (`--map-size-max`). Retriable once tasks are removed.
        public static let storeFull = Code(.storeFull)
        /// The daemon does not allow this user or group.
        public static let permissionDenied = Code(.permissionDenied)
        /// The daemon is at its connection limit (`--max-connections`) and closed the connection. Retriable.
        public static let tooManyConnections = Code(.tooManyConnections)
        /// The daemon is stopping.
        public static let shuttingDown = Code(.shuttingDown)
        /// No HELLO within the daemon's handshake deadline; the daemon closed the connection.
        public static let handshakeTimeout = Code(.handshakeTimeout)
        /// The client read none of its queued replies for the daemon's stall timeout; the daemon closed the connection.
        /// Retriable.
        public static let slowConsumer = Code(.slowConsumer)
        /// A failure inside the daemon (for example an I/O error from the store). Retriable.
        public static let internalError = Code(.internalError)
        /// The daemon's memory for partly received frames was used up and this connection held the largest frame; the
        /// daemon closed the connection. Retriable (send the frame again later).
        public static let overloaded = Code(.overloaded)
        /// A frame began arriving and then stopped for the daemon's frame timeout; the daemon closed the connection.
        /// Retriable.
        public static let frameTimeout = Code(.frameTimeout)
        /// The daemon cannot reach its datastore (a shared PostgreSQL database that is down, restarting or failing
        /// over). Nothing was applied unless the message says a COMMIT got no answer. Retriable; the connection stays
        /// open.
        public static let storeUnavailable = Code(.storeUnavailable)

        /// The name: the protocol's ("INVALID_ARGUMENT") or the client's ("CONNECTION_FAILED").
        public var name: String {
            if let serverCode { return serverCode.name }
            switch self {
            case .connectionFailed: return "CONNECTION_FAILED"
            case .connectionClosed: return "CONNECTION_CLOSED"
            case .invalidUsage: return "INVALID_USAGE"
            case .duplicateCallback: return "DUPLICATE_CALLBACK"
            case .protocolViolation: return "PROTOCOL_VIOLATION"
            case .kwargsCoding: return "KWARGS_CODING"
            case .shutDown: return "SHUT_DOWN"
            default: return "CLIENT_\(rawValue)"
            }
        }

        /// Whether the same call may succeed later: the daemon's retriable codes, and a lost connection.
        public var isRetriable: Bool {
            if let serverCode { return serverCode.isRetriable }
            return self == .connectionClosed || self == .connectionFailed
        }

        /// The name, for logs.
        public var description: String { name }
    }
}

/// A delivered task names a callback that the worker's callback map does not contain (the original's
/// ``IncorrectCallbackNameError``).
///
/// The worker logs it and reports the task as failed without retry, so a one-off task goes to the dead-letter
/// list at once (where `retryDeadLetters` can bring it back after the callback is added).
public struct IncorrectCallbackNameError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The callback name the task asked for.
    public var callback: String
    /// The task's id.
    public var taskID: String

    /// Creates the error.
    /// - Parameters:
    ///   - callback: The unknown callback name.
    ///   - taskID: The task's id.
    public init(callback: String, taskID: String) {
        self.callback = callback
        self.taskID = taskID
    }

    /// `"IncorrectCallbackNameError: no callback named \"x\" in the worker's callback map (task 1f…)"`.
    public var description: String {
        "IncorrectCallbackNameError: no callback named \"\(callback)\" in the worker's callback map (task \(taskID))"
    }
}
