/// Every message of protocol versions 1 to 3, with its payload. One case per `MessageType`.
///
/// The comment on each case names the replies the server can send to it; `.error` is possible for every
/// request. The field tables are in `proto-spec/PROTOCOL.md`.
public enum Message: Sendable, Hashable {
    /// First message on a connection. Replies: `.helloOK`, or `.error(unsupportedVersion)` and close.
    case hello(Hello)
    /// Liveness check. Reply: `.pong`.
    case ping
    /// Adds a batch of one or many tasks in one transaction. Reply: `.added`.
    case addTasks(AddTasks)
    /// Fetches tasks by ids or group (`.all` is rejected). Reply: `.tasks`.
    case fetchTasks(TaskSelector)
    /// Lists tasks with filters, one page at a time. Reply: `.taskPage`.
    case listTasks(ListTasks)
    /// Pauses tasks. Reply: `.affected`.
    case pauseTasks(TaskSelector)
    /// Resumes paused tasks. Reply: `.affected`.
    case resumeTasks(TaskSelector)
    /// Removes tasks. Reply: `.affected`.
    case removeTasks(TaskSelector)
    /// Reschedules tasks; all or nothing (an unknown id fails the whole request). Reply: `.affected`.
    case updateRunTimes([RunTimeUpdate])
    /// Moves dead-lettered tasks back to scheduled (attempts reset, due now). Reply: `.affected`.
    case retryDead(TaskSelector)
    /// Deletes dead-lettered tasks. Reply: `.affected`.
    case purgeDead(TaskSelector)
    /// Asks for statistics. Reply: `.stats`.
    case getStats
    /// Asks which daemons share the datastore (version 2). Reply: `.daemons`.
    case getDaemons
    /// Asks for the run history: the datastore's recent finished deliveries and skipped occurrences that match
    /// the query, newest first (version 3). Reply: `.history`.
    case getHistory(HistoryQuery)
    /// Asks for the answering daemon's metrics in the Prometheus text format (version 3). Reply: `.metrics`.
    case getMetrics

    /// Event-driven worker: receive due tasks for these callbacks. Replies: `.subscribed`, then one
    /// `.delivery` per task pushed, all carrying the subscribe request's id.
    case subscribe(Subscribe)
    /// Stops pushes to this connection; held leases stay. Reply: `.ok`.
    case unsubscribe
    /// Polling worker: lease up to `max` due tasks. Reply: `.tasks` (possibly empty).
    case claim(Claim)
    /// The task ran successfully. Reply: `.ok`.
    case ack(LeaseRef)
    /// The task failed. Reply: `.ok`.
    case fail(Fail)
    /// Extends a lease. Reply: `.leaseExtended`.
    case touch(Touch)
    /// Gives a leased task back without counting the attempt (graceful shutdown). Reply: `.ok`.
    case release(LeaseRef)
    /// `.subscribe` whose tasks the server may push up to `aheadMicros` before they are due (version 3); the
    /// worker starts each at its `run_at`. Replies as `.subscribe`, plus `.revoke` for a task pushed ahead that
    /// changed before its due time.
    case subscribeAhead(Subscribe, aheadMicros: Int64)

    /// Reply to `.hello`.
    case helloOK(HelloOK)
    /// Reply to `.ping`.
    case pong(Pong)
    /// Success without data.
    case ok
    /// Reply to `.addTasks`: one result per task, in request order.
    case added([AddResult])
    /// Reply to `.fetchTasks` and `.claim`.
    case tasks([TaskRecord])
    /// Reply to `.listTasks`.
    case taskPage(TaskPage)
    /// Reply to bulk changes: how many tasks were changed.
    case affected(UInt64)
    /// Reply to `.getStats`.
    case stats(Stats)
    /// Reply to `.getDaemons`: sorted by name.
    case daemons([DaemonInfo])
    /// Reply to `.getHistory`: one page of entries, newest first, and the cursor of the next older page.
    case history(HistoryPage)
    /// Reply to `.getMetrics`: the metrics as Prometheus text exposition format 0.0.4 (UTF-8), the same text a
    /// daemon's HTTP metrics listener serves on `GET /metrics`.
    case metrics([UInt8])
    /// Reply to `.subscribe`.
    case subscribed(Subscribed)
    /// A task pushed to an event-driven worker; carries the subscribe request's id.
    case delivery(TaskRecord)
    /// A task pushed ahead (`.subscribeAhead`) was removed, paused, rescheduled or replaced before its due time,
    /// and its lease has ended: the worker must not start it (version 3). Carries the subscribe request's id.
    case revoke(LeaseRef)
    /// Reply to `.touch`: the new lease deadline.
    case leaseExtended(deadline: Int64)
    /// An error reply.
    case error(ErrorReply)

    /// The frame type that carries this message.
    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .ping: return .ping
        case .addTasks: return .addTasks
        case .fetchTasks: return .fetchTasks
        case .listTasks: return .listTasks
        case .pauseTasks: return .pauseTasks
        case .resumeTasks: return .resumeTasks
        case .removeTasks: return .removeTasks
        case .updateRunTimes: return .updateRunTimes
        case .retryDead: return .retryDead
        case .purgeDead: return .purgeDead
        case .getStats: return .getStats
        case .getDaemons: return .getDaemons
        case .getHistory: return .getHistory
        case .getMetrics: return .getMetrics
        case .subscribe: return .subscribe
        case .unsubscribe: return .unsubscribe
        case .claim: return .claim
        case .ack: return .ack
        case .fail: return .fail
        case .touch: return .touch
        case .release: return .release
        case .subscribeAhead: return .subscribeAhead
        case .helloOK: return .helloOK
        case .pong: return .pong
        case .ok: return .ok
        case .added: return .added
        case .tasks: return .tasks
        case .taskPage: return .taskPage
        case .affected: return .affected
        case .stats: return .stats
        case .daemons: return .daemons
        case .history: return .history
        case .metrics: return .metrics
        case .subscribed: return .subscribed
        case .delivery: return .delivery
        case .revoke: return .revoke
        case .leaseExtended: return .leaseExtended
        case .error: return .error
        }
    }
}

/// A message with the request id of its frame: the unit the encoder writes and the decoder returns.
public struct Frame: Sendable, Hashable {
    /// Chosen by the sender of a request, echoed in every reply to it (pushes echo the subscribe's id).
    public var requestID: UInt32
    /// The payload.
    public var message: Message

    /// Creates a frame.
    public init(requestID: UInt32, message: Message) {
        self.requestID = requestID
        self.message = message
    }
}
