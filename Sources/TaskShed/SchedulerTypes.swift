import Foundation
import TaskShedProtocol

/// The outcome of adding one task.
public struct TaskAddResult: Sendable, Hashable {
    /// The task's id.
    public var id: String
    /// Inserted, replaced, or kept (an existing task left unchanged because `replaceExisting` was false).
    public var outcome: AddOutcome

    /// Creates a result.
    /// - Parameters:
    ///   - id: The task id.
    ///   - outcome: What happened.
    public init(id: String, outcome: AddOutcome) {
        self.id = id
        self.outcome = outcome
    }
}

/// Which dead-lettered tasks `retryDeadLetters` and `purgeDeadLetters` apply to.
public enum DeadLetterSelection: Sendable, Hashable {
    /// These ids (ids that are not dead-lettered are skipped).
    case ids([String])
    /// The dead-lettered tasks of this group.
    case group(String)
    /// Every dead-lettered task.
    case all
}

/// Filters for ``Scheduler/listTasks(filter:limit:cursor:)``; every filter that is set must match.
public struct TaskListFilter: Sendable, Hashable {
    /// Only this group.
    public var group: String?
    /// Only this state (pending, due, paused, leased, dead).
    public var state: StateFilter?
    /// Only this callback.
    public var callback: String?
    /// Only tasks with `runAt >= dueAfter`.
    public var dueAfter: Date?
    /// Only tasks with `runAt < dueBefore`.
    public var dueBefore: Date?

    /// Creates a filter; no arguments matches every task.
    /// - Parameters:
    ///   - group: Only this group.
    ///   - state: Only this state.
    ///   - callback: Only this callback.
    ///   - dueAfter: Only tasks due at or after this time.
    ///   - dueBefore: Only tasks due before this time.
    public init(
        group: String? = nil, state: StateFilter? = nil, callback: String? = nil, dueAfter: Date? = nil,
        dueBefore: Date? = nil
    ) {
        self.group = group
        self.state = state
        self.callback = callback
        self.dueAfter = dueAfter
        self.dueBefore = dueBefore
    }

    func wire() throws(TaskShedError) -> TaskFilter {
        TaskFilter(
            group: group, state: state, callback: callback, dueAfter: try dueAfter?.micros(field: "filter.due_after"),
            dueBefore: try dueBefore?.micros(field: "filter.due_before"))
    }
}

/// An opaque position in a task listing, from ``TaskListPage/nextCursor``.
public struct TaskListCursor: Sendable, Hashable {
    /// The daemon's cursor bytes.
    public var bytes: [UInt8]

    /// Wraps cursor bytes (as stored from an earlier `bytes`).
    /// - Parameter bytes: The bytes.
    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }
}

/// One page of a task listing, ordered by (`runAt`, `id`).
public struct TaskListPage: Sendable, Hashable {
    /// The tasks of this page.
    public var tasks: [ScheduledTask]
    /// Where the next page starts, or `nil` when this was the last page.
    public var nextCursor: TaskListCursor?

    /// Creates a page.
    /// - Parameters:
    ///   - tasks: The tasks.
    ///   - nextCursor: The next page's cursor.
    public init(tasks: [ScheduledTask], nextCursor: TaskListCursor?) {
        self.tasks = tasks
        self.nextCursor = nextCursor
    }
}

/// The daemon's answer to a ping.
public struct PingReply: Sendable, Hashable {
    /// The daemon's clock when it replied.
    public var serverTime: Date
    /// When the earliest unpaused scheduled task is due, if there is one.
    public var nextWakeup: Date?
    /// How long the request took, as measured by the client.
    public var roundTrip: Duration
}

/// The daemon's and the store's state, as returned by ``Scheduler/stats()``.
public struct DaemonStats: Sendable, Hashable {
    /// Figures for one callback name.
    public struct Callback: Sendable, Hashable {
        /// The callback name.
        public var name: String
        /// Scheduled tasks (pending, due and paused).
        public var scheduled: Int
        /// Due, unpaused tasks waiting for a worker.
        public var due: Int
        /// Tasks leased to workers.
        public var leased: Int
        /// Dead-lettered tasks.
        public var dead: Int
        /// Connected workers serving this callback.
        public var workers: Int
    }

    /// Recent execution lag (delivery time minus `runAt`).
    public struct Lag: Sendable, Hashable {
        /// Deliveries in the window.
        public var count: Int
        /// Median.
        public var p50: Duration
        /// 90th percentile.
        public var p90: Duration
        /// 99th percentile.
        public var p99: Duration
        /// Maximum.
        public var max: Duration
    }

    /// The daemon's version.
    public var serverVersion: String
    /// The daemon's clock.
    public var serverTime: Date
    /// When the daemon started.
    public var startedAt: Date
    /// Scheduled, unpaused, not yet due.
    public var pending: Int
    /// Scheduled, unpaused, due.
    public var due: Int
    /// Paused.
    public var paused: Int
    /// Leased to workers.
    public var leased: Int
    /// Dead-lettered.
    public var dead: Int
    /// Due tasks whose callback no connected worker serves.
    public var waitingForWorker: Int
    /// When the earliest unpaused scheduled task is due.
    public var nextWakeup: Date?
    /// Open client connections.
    public var connections: Int
    /// Per-callback figures, sorted by name.
    public var callbacks: [Callback]
    /// Size of the store's data file in bytes.
    public var storeFileBytes: UInt64
    /// The store's map size in bytes.
    public var storeMapBytes: UInt64
    /// Bytes of the map in use.
    public var storeUsedBytes: UInt64
    /// Recent execution lag.
    public var lag: Lag

    init(_ stats: Stats) {
        serverVersion = stats.serverVersion
        serverTime = Date(micros: stats.serverTime)
        startedAt = Date(micros: stats.startedAt)
        pending = Int(clamping: stats.pending)
        due = Int(clamping: stats.due)
        paused = Int(clamping: stats.paused)
        leased = Int(clamping: stats.leased)
        dead = Int(clamping: stats.dead)
        waitingForWorker = Int(clamping: stats.waitingForWorker)
        nextWakeup = stats.nextWakeup.map(Date.init(micros:))
        connections = Int(stats.connections)
        callbacks = stats.callbacks.map {
            Callback(
                name: $0.callback, scheduled: Int(clamping: $0.scheduled), due: Int(clamping: $0.due),
                leased: Int(clamping: $0.leased), dead: Int(clamping: $0.dead), workers: Int($0.workers))
        }
        storeFileBytes = stats.storeFileBytes
        storeMapBytes = stats.storeMapBytes
        storeUsedBytes = stats.storeUsedBytes
        lag = Lag(
            count: Int(clamping: stats.lag.count), p50: .microseconds(stats.lag.p50), p90: .microseconds(stats.lag.p90),
            p99: .microseconds(stats.lag.p99), max: .microseconds(stats.lag.max))
    }
}

/// A daemon serving the datastore, as returned by ``Scheduler/daemons()``.
public struct DatastoreDaemon: Sendable, Hashable {
    /// Its name (`taskshedd --daemon-name`, default the host name).
    public var name: String
    /// The machine it runs on.
    public var host: String
    /// Its process id on that machine.
    public var pid: Int
    /// When it started serving the datastore.
    public var startedAt: Date
    /// How long ago its last heartbeat was recorded (by the datastore's clock); zero for the daemon that
    /// answered when the datastore is the embedded one.
    public var heartbeatAge: Duration
    /// Tasks leased through it now.
    public var leased: Int
    /// Whether this is the daemon that answered (the one this client is connected to).
    public var isThisDaemon: Bool

    init(_ info: DaemonInfo) {
        name = info.name
        host = info.host
        pid = Int(info.pid)
        startedAt = Date(micros: info.startedAt)
        heartbeatAge = .microseconds(info.heartbeatAgeMicros)
        leased = Int(clamping: info.leased)
        isThisDaemon = info.isThisDaemon
    }
}
