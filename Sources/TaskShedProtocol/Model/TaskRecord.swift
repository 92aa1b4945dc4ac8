/// A stored task with its delivery fields: what the server returns from fetch, list, claim and delivery,
/// and what the store keeps.
///
/// Times are microseconds since the Unix epoch, UTC.
public struct TaskRecord: Sendable, Hashable {
    /// Unique id.
    public var id: String
    /// Callback name.
    public var callback: String
    /// Next execution time (for a leased task: the occurrence being run).
    public var runAt: Int64
    /// Once or recurring.
    public var schedule: Schedule
    /// UTF-8 bytes of a JSON object (`{}` when the task was created without kwargs).
    public var kwargs: [UInt8]
    /// Group, if any.
    public var group: String?
    /// Whether the task is paused.
    public var paused: Bool
    /// When it was paused; kept on a repeated pause, cleared on resume.
    public var pausedAt: Int64?
    /// Recurring only: catch up with one run (`true`) or one run per missed interval.
    public var coalesce: Bool
    /// Stored delivery state.
    public var state: TaskState
    /// Number of deliveries of the current occurrence so far (0 before the first).
    public var attempt: UInt32
    /// Deliveries allowed before a failing one-off task is dead-lettered.
    public var maxAttempts: UInt32
    /// Lease deadline while `state == .leased`.
    public var leaseDeadline: Int64?
    /// The last failure's message (from a worker, or the server's "lease expired"/"worker disconnected").
    public var lastError: String?
    /// When the task was first added (kept when it is replaced).
    public var createdAt: Int64
    /// When it was last delivered to a worker.
    public var lastRunAt: Int64?
    /// When it last failed.
    public var lastFailureAt: Int64?
    /// Calendar tasks: how many occurrences were skipped by the catch-up or overlap policy (protocol version 3).
    public var skippedRuns: UInt64
    /// Calendar tasks: why the last occurrences were skipped, with when (protocol version 3).
    public var lastSkip: String?

    /// Creates a record; every field is given explicitly because records come from the store or the wire.
    public init(
        id: String,
        callback: String,
        runAt: Int64,
        schedule: Schedule,
        kwargs: [UInt8],
        group: String?,
        paused: Bool,
        pausedAt: Int64?,
        coalesce: Bool,
        state: TaskState,
        attempt: UInt32,
        maxAttempts: UInt32,
        leaseDeadline: Int64?,
        lastError: String?,
        createdAt: Int64,
        lastRunAt: Int64?,
        lastFailureAt: Int64?,
        skippedRuns: UInt64 = 0,
        lastSkip: String? = nil
    ) {
        self.id = id
        self.callback = callback
        self.runAt = runAt
        self.schedule = schedule
        self.kwargs = kwargs
        self.group = group
        self.paused = paused
        self.pausedAt = pausedAt
        self.coalesce = coalesce
        self.state = state
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseDeadline = leaseDeadline
        self.lastError = lastError
        self.createdAt = createdAt
        self.lastRunAt = lastRunAt
        self.lastFailureAt = lastFailureAt
        self.skippedRuns = skippedRuns
        self.lastSkip = lastSkip
    }
}
