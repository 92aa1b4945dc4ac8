/// A protocol error code: a struct wrapping the wire's `u16` so that new codes do not break callers.
///
/// The table in `proto-spec/PROTOCOL.md` ("Errors") is normative: it says, for each code, whether retrying the
/// same request can succeed and whether the server closes the connection after sending it.
public struct ErrorCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The code on the wire.
    public var rawValue: UInt16

    /// Wraps a raw code (unknown codes are kept as they are).
    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// The frame header cannot be trusted (bad length, nonzero reserved flags). The server closes.
    public static let malformedFrame = ErrorCode(rawValue: 1)
    /// The length prefix exceeds the maximum frame size. The server closes.
    public static let frameTooLarge = ErrorCode(rawValue: 2)
    /// No protocol version in common. The server closes.
    public static let unsupportedVersion = ErrorCode(rawValue: 3)
    /// The frame's type is not a known request type. The connection stays usable.
    public static let unknownMessageType = ErrorCode(rawValue: 4)
    /// The payload does not decode as the type's layout. The connection stays usable.
    public static let malformedMessage = ErrorCode(rawValue: 5)
    /// A request other than HELLO came first. The server closes.
    public static let handshakeRequired = ErrorCode(rawValue: 6)
    /// A field has a value the server does not accept; `field` names it.
    public static let invalidArgument = ErrorCode(rawValue: 7)
    /// A named task does not exist.
    public static let taskNotFound = ErrorCode(rawValue: 8)
    /// A task id already exists and the request asked to fail on conflict.
    public static let taskExists = ErrorCode(rawValue: 9)
    /// The lease named by an ack, fail, touch or release is not held by this connection any more.
    public static let leaseLost = ErrorCode(rawValue: 10)
    /// The store reached its configured maximum size. Retriable after tasks are removed.
    public static let storeFull = ErrorCode(rawValue: 11)
    /// The peer's uid/gid is not allowed. The server closes.
    public static let permissionDenied = ErrorCode(rawValue: 12)
    /// The server is at its connection limit. The server closes; retriable.
    public static let tooManyConnections = ErrorCode(rawValue: 13)
    /// The server is stopping. The server closes; retriable against the restarted server.
    public static let shuttingDown = ErrorCode(rawValue: 14)
    /// No HELLO within the handshake deadline. The server closes.
    public static let handshakeTimeout = ErrorCode(rawValue: 15)
    /// The client stopped reading: its queued output made no progress for the server's stall timeout. The
    /// server closes; retriable.
    public static let slowConsumer = ErrorCode(rawValue: 16)
    /// A server-side failure (for example an I/O error from the store). Retriable.
    public static let internalError = ErrorCode(rawValue: 17)
    /// The server's memory for partly received frames is used up and this connection held the largest one. The
    /// server closes; retriable (send the frame again later).
    public static let overloaded = ErrorCode(rawValue: 18)
    /// A frame began arriving and then stopped: none of its bytes came for the server's frame timeout. The
    /// server closes; retriable.
    public static let frameTimeout = ErrorCode(rawValue: 19)

    /// The server cannot reach its datastore (a shared PostgreSQL database that is down, restarting, failing
    /// over or cut off). Nothing of the request was applied, except where the message says that a COMMIT got no
    /// answer. Retriable; the connection stays open.
    public static let storeUnavailable = ErrorCode(rawValue: 20)

    /// Every code defined by protocol version 1.
    public static let allKnown: [ErrorCode] = [
        .malformedFrame, .frameTooLarge, .unsupportedVersion, .unknownMessageType, .malformedMessage,
        .handshakeRequired, .invalidArgument, .taskNotFound, .taskExists, .leaseLost, .storeFull,
        .permissionDenied, .tooManyConnections, .shuttingDown, .handshakeTimeout, .slowConsumer, .internalError,
        .overloaded, .frameTimeout, .storeUnavailable,
    ]

    /// The upper-snake-case name used in the specification ("INVALID_ARGUMENT"), or "UNKNOWN_<n>".
    public var name: String {
        switch self {
        case .malformedFrame: return "MALFORMED_FRAME"
        case .frameTooLarge: return "FRAME_TOO_LARGE"
        case .unsupportedVersion: return "UNSUPPORTED_VERSION"
        case .unknownMessageType: return "UNKNOWN_MESSAGE_TYPE"
        case .malformedMessage: return "MALFORMED_MESSAGE"
        case .handshakeRequired: return "HANDSHAKE_REQUIRED"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .taskNotFound: return "TASK_NOT_FOUND"
        case .taskExists: return "TASK_EXISTS"
        case .leaseLost: return "LEASE_LOST"
        case .storeFull: return "STORE_FULL"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .tooManyConnections: return "TOO_MANY_CONNECTIONS"
        case .shuttingDown: return "SHUTTING_DOWN"
        case .handshakeTimeout: return "HANDSHAKE_TIMEOUT"
        case .slowConsumer: return "SLOW_CONSUMER"
        case .internalError: return "INTERNAL"
        case .overloaded: return "OVERLOADED"
        case .frameTimeout: return "FRAME_TIMEOUT"
        case .storeUnavailable: return "STORE_UNAVAILABLE"
        default: return "UNKNOWN_\(rawValue)"
        }
    }

    /// Whether the same request may succeed if sent again later.
    public var isRetriable: Bool {
        switch self {
        case .storeFull, .tooManyConnections, .shuttingDown, .internalError, .slowConsumer, .overloaded,
            .frameTimeout, .storeUnavailable:
            return true
        default: return false
        }
    }

    /// Whether the server closes the connection after sending this error.
    public var closesConnection: Bool {
        switch self {
        case .malformedFrame, .frameTooLarge, .unsupportedVersion, .handshakeRequired, .permissionDenied,
            .tooManyConnections, .shuttingDown, .handshakeTimeout, .slowConsumer, .overloaded, .frameTimeout:
            return true
        default:
            return false
        }
    }

    /// The name, for logs.
    public var description: String { name }
}
