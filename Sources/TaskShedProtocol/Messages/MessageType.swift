/// The 16-bit message type in every frame header. Requests (client to server) are below `0x8000`; replies and
/// pushes (server to client) have the high bit set. The table in `proto-spec/PROTOCOL.md` is normative.
public enum MessageType: UInt16, Sendable, Hashable, CaseIterable {
    // Connection.
    case hello = 0x0001
    case ping = 0x0002

    // Scheduler API.
    case addTasks = 0x0010
    case fetchTasks = 0x0011
    case listTasks = 0x0012
    case pauseTasks = 0x0013
    case resumeTasks = 0x0014
    case removeTasks = 0x0015
    case updateRunTimes = 0x0016
    case retryDead = 0x0017
    case purgeDead = 0x0018
    case getStats = 0x0019
    case getDaemons = 0x001A
    case getHistory = 0x001B
    case getMetrics = 0x001C

    // Worker API.
    case subscribe = 0x0030
    case unsubscribe = 0x0031
    case claim = 0x0032
    case ack = 0x0033
    case fail = 0x0034
    case touch = 0x0035
    case release = 0x0036
    case subscribeAhead = 0x0037

    // Replies and pushes.
    case helloOK = 0x8001
    case pong = 0x8002
    case ok = 0x8003
    case added = 0x8010
    case tasks = 0x8011
    case taskPage = 0x8012
    case affected = 0x8013
    case stats = 0x8019
    case daemons = 0x801A
    case history = 0x801B
    case metrics = 0x801C
    case subscribed = 0x8030
    case delivery = 0x8031
    case revoke = 0x8032
    case leaseExtended = 0x8035
    case error = 0x80FF

    /// Whether a client sends this type (requests) rather than the server (replies and pushes).
    public var isRequest: Bool { rawValue & 0x8000 == 0 }

    /// The protocol version that introduced this type: a connection that negotiated an earlier version does
    /// not send or take it (a server answers `UNKNOWN_MESSAGE_TYPE`).
    public var sinceVersion: UInt16 {
        switch self {
        case .getDaemons, .daemons: return 2
        case .subscribeAhead, .revoke, .getHistory, .history, .getMetrics, .metrics: return 3
        default: return 1
        }
    }
}
