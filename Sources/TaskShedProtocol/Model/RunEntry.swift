/// How one delivery of a task ended, as recorded in the run history (`outcome u8`, PROTOCOL.md section 4.7).
public enum RunOutcome: UInt8, Sendable, Hashable, CaseIterable {
    /// The worker acknowledged the run (ACK).
    case succeeded = 0
    /// The worker reported a failure (FAIL); `RunEntry.error` holds its message.
    case failed = 1
    /// The lease ran out before the worker answered.
    case leaseExpired = 2
    /// The worker's connection closed while it held the lease (or its daemon was lost, on a shared datastore).
    case workerDisconnected = 3
    /// The worker gave the lease back without running the task (RELEASE); the attempt does not count.
    case released = 4
    /// A calendar occurrence that did not run: skipped by a catch-up or overlap policy.
    case skipped = 5

    /// Whether the run counts as a failure (`GET_HISTORY` with `failed_only`): failed, expired or disconnected.
    public var isFailure: Bool {
        switch self {
        case .failed, .leaseExpired, .workerDisconnected: return true
        case .succeeded, .released, .skipped: return false
        }
    }
}

/// What happened to the task after a run ended (`then u8`, PROTOCOL.md section 4.7).
public enum RunFollowUp: UInt8, Sendable, Hashable, CaseIterable {
    /// The task is finished and was removed (a one-off task that succeeded, a calendar rule with nothing left).
    case finished = 0
    /// Due again: a retry after a backoff, or (lease ended, released) at its `run_at`.
    case retry = 1
    /// Out of attempts: dead-lettered.
    case deadLettered = 2
    /// A recurring task moved to its next run.
    case nextRun = 3
}

/// One finished delivery (or skipped occurrence) of a task: an entry of the run history.
///
/// Times are microseconds since the Unix epoch. Lateness is `deliveredAt - scheduledAt`, the duration
/// `finishedAt - deliveredAt`.
public struct RunEntry: Sendable, Hashable {
    /// The entry's number in its datastore: larger is newer. A page cursor of `GET_HISTORY`.
    public var seq: UInt64
    /// The task's id (the task may since have been removed).
    public var taskID: String
    /// The task's callback.
    public var callback: String
    /// The delivery's attempt (1 for the first); 0 for a skipped occurrence.
    public var attempt: UInt32
    /// When the run was due: the task's `run_at` at the claim (the occurrence, for a skipped one).
    public var scheduledAt: Int64
    /// When the task was delivered (its `last_run_at`); `nil` for a skipped occurrence.
    public var deliveredAt: Int64?
    /// When the run ended: the ACK, FAIL or RELEASE, the lease's end, or the skip.
    public var finishedAt: Int64
    /// How the run ended.
    public var outcome: RunOutcome
    /// What became of the task.
    public var then: RunFollowUp
    /// The error of a failure (the worker's message, "lease expired", "worker disconnected", ...) or the reason
    /// of a skip; at most `ProtocolLimits.maxErrorBytes` bytes.
    public var error: String?
    /// The worker's `client_name` from its HELLO; empty when not known.
    public var workerName: String
    /// The worker's process id (from `SO_PEERCRED`); 0 when not known.
    public var workerPID: UInt32
    /// The worker's user id; `UInt32.max` when not known.
    public var workerUID: UInt32
    /// The daemon the worker was connected to (its `--daemon-name`).
    public var daemon: String

    /// Creates an entry (the arguments as the properties of the same names).
    public init(seq: UInt64 = 0, taskID: String, callback: String, attempt: UInt32, scheduledAt: Int64,
                deliveredAt: Int64?, finishedAt: Int64, outcome: RunOutcome, then: RunFollowUp, error: String? = nil,
                workerName: String = "", workerPID: UInt32 = 0, workerUID: UInt32 = .max, daemon: String = "")
    {
        self.seq = seq
        self.taskID = taskID
        self.callback = callback
        self.attempt = attempt
        self.scheduledAt = scheduledAt
        self.deliveredAt = deliveredAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.then = then
        self.error = error
        self.workerName = workerName
        self.workerPID = workerPID
        self.workerUID = workerUID
        self.daemon = daemon
    }

    /// How late the delivery was (`deliveredAt - scheduledAt`, at least 0), if it was delivered.
    public var latenessMicros: Int64? {
        deliveredAt.map { max(0, $0 - scheduledAt) }
    }

    /// How long the run took (`finishedAt - deliveredAt`, at least 0), if it was delivered.
    public var durationMicros: Int64? {
        deliveredAt.map { max(0, finishedAt - $0) }
    }
}

/// Which run-history entries `GET_HISTORY` returns, newest first.
public struct HistoryQuery: Sendable, Hashable {
    /// Only this task's runs.
    public var taskID: String?
    /// Only runs of this callback.
    public var callback: String?
    /// Only failures (`RunOutcome.isFailure`).
    public var failedOnly: Bool
    /// Only runs that ended at or after this instant.
    public var since: Int64?
    /// At most this many entries (1 … `max_batch`).
    public var limit: UInt32
    /// Only entries older than this `seq` (the previous page's `nextBefore`).
    public var before: UInt64?

    /// Creates a query (the arguments as the properties of the same names).
    public init(taskID: String? = nil, callback: String? = nil, failedOnly: Bool = false, since: Int64? = nil,
                limit: UInt32 = 100, before: UInt64? = nil)
    {
        self.taskID = taskID
        self.callback = callback
        self.failedOnly = failedOnly
        self.since = since
        self.limit = limit
        self.before = before
    }

    /// Whether `entry` passes the filters (not the cursor or the limit). Names compare as bytes, as everywhere
    /// in the protocol (two canonically equivalent spellings are two names).
    public func matches(_ entry: RunEntry) -> Bool {
        if let taskID, !entry.taskID.utf8.elementsEqual(taskID.utf8) { return false }
        if let callback, !entry.callback.utf8.elementsEqual(callback.utf8) { return false }
        if failedOnly && !entry.outcome.isFailure { return false }
        if let since, entry.finishedAt < since { return false }
        return true
    }
}

/// One page of run history (`HISTORY`): entries newest first, and the cursor of the next (older) page.
public struct HistoryPage: Sendable, Hashable {
    /// The entries, newest (largest `seq`) first.
    public var runs: [RunEntry]
    /// Pass as `HistoryQuery.before` for the next page; `nil` when there is none.
    public var nextBefore: UInt64?

    /// Creates a page.
    public init(runs: [RunEntry], nextBefore: UInt64?) {
        self.runs = runs
        self.nextBefore = nextBefore
    }
}
