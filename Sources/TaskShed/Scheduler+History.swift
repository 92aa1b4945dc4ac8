import Foundation
import TaskShedProtocol

/// One finished run of a task, from the daemon's run history: when it was due, delivered and finished, how it
/// ended, what became of the task, and which worker ran it.
///
/// The daemon records one run at the end of every delivery (the worker's ack or failure, a release, the lease's
/// expiry, the worker's connection closing) and one for each skip decision of a calendar task's catch-up or
/// overlap policy. Runs outlive their task: a removed task's runs stay until the daemon's bounds push them out
/// (by default the last 20 per task, 100,000 in all, 7 days).
public struct TaskRun: Sendable, Hashable, Identifiable {
    /// How a run ended.
    public enum Outcome: Sendable, Hashable, CaseIterable {
        /// The worker acknowledged it: the callback returned.
        case succeeded
        /// The worker reported a failure; ``TaskRun/error`` holds the callback's error.
        case failed
        /// The lease ran out before the worker answered.
        case leaseExpired
        /// The worker's connection closed while it held the lease (or its daemon was lost, on a shared
        /// datastore).
        case workerDisconnected
        /// The worker gave the task back without running it (a worker shutting down); the attempt does not
        /// count.
        case released
        /// A calendar occurrence that did not run: skipped by the catch-up or overlap policy. Such a run was
        /// never delivered, so it has no ``TaskRun/deliveredAt`` and no worker.
        case skipped

        /// Whether the run counts as a failure (what `failedOnly` selects): failed, lease expired, worker
        /// disconnected.
        public var isFailure: Bool {
            switch self {
            case .failed, .leaseExpired, .workerDisconnected: return true
            case .succeeded, .released, .skipped: return false
            }
        }
    }

    /// What became of the task when the run ended.
    public enum FollowUp: Sendable, Hashable, CaseIterable {
        /// The task is finished and was removed: a one-off task that succeeded, a calendar rule with nothing left.
        case finished
        /// The task is due again: a retry after its backoff, or (after a lease ended or a release) at its run time.
        case retry
        /// The task ran out of attempts and was dead-lettered.
        case deadLettered
        /// A recurring task moved on to its next run.
        case nextRun
    }

    /// The run's number in the datastore's history: unique, larger is newer. Pass it as `before` to
    /// ``Scheduler/history(taskID:callback:failedOnly:since:limit:before:)`` for the runs older than this one.
    public var sequence: UInt64
    /// The task's id (the task may have been removed since).
    public var taskID: String
    /// The task's callback name.
    public var callback: String
    /// The delivery's attempt: 1 for the first delivery of an occurrence; 0 for a skipped occurrence.
    public var attempt: Int
    /// When the run was due: the task's run time when it was claimed (for a retry, when its backoff ended; for a
    /// skip, the first occurrence skipped).
    public var scheduledAt: Date
    /// When the task was delivered to the worker; `nil` for a skipped occurrence.
    public var deliveredAt: Date?
    /// When the run ended, by the clock of the daemon that recorded it.
    public var finishedAt: Date
    /// How the run ended.
    public var outcome: Outcome
    /// What became of the task.
    public var then: FollowUp
    /// A failure's error (the callback's message, "lease expired", "worker disconnected", "daemon lost: …") or
    /// a skip's reason; `nil` for a success or a release.
    public var error: String?
    /// The name the worker gave the daemon when it connected (its client name); `nil` when not known.
    public var workerName: String?
    /// The worker's process id, from the socket's peer credentials; `nil` when not known.
    public var workerPID: Int?
    /// The worker's user id, from the same credentials; `nil` when not known.
    public var workerUID: UInt32?
    /// The name of the daemon the worker was connected to (`taskshedd --daemon-name`): with a datastore shared
    /// by several daemons, which one served the run.
    public var daemon: String

    /// The run's ``sequence``, which is unique in its datastore.
    public var id: UInt64 { sequence }

    /// How late the delivery was: ``deliveredAt`` − ``scheduledAt``, in whole microseconds; `nil` for a skipped
    /// occurrence. A delivery made ahead of its time (an event-driven worker's `deliveryAhead`) counts as zero,
    /// as in the daemon's own lag figures, since the callback still starts at the due time.
    public var lateness: Duration? {
        deliveredAt.map { .microseconds(max(0, TaskRun.micros(between: scheduledAt, and: $0))) }
    }

    /// How long the run took: ``finishedAt`` − ``deliveredAt``, in whole microseconds (at least zero: the two
    /// instants may come from the clocks of two daemons sharing a datastore); `nil` for a skipped occurrence.
    public var duration: Duration? {
        deliveredAt.map { .microseconds(max(0, TaskRun.micros(between: $0, and: finishedAt))) }
    }

    /// Creates a run (the arguments as the properties of the same names); for tests and for tools that keep
    /// runs of their own. Runs from the daemon come from ``Scheduler/history(taskID:callback:failedOnly:since:limit:before:)``.
    public init(
        sequence: UInt64, taskID: String, callback: String, attempt: Int, scheduledAt: Date, deliveredAt: Date?,
        finishedAt: Date, outcome: Outcome, then: FollowUp, error: String? = nil, workerName: String? = nil,
        workerPID: Int? = nil, workerUID: UInt32? = nil, daemon: String = ""
    ) {
        self.sequence = sequence
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

    /// A run from its wire entry; the protocol's "not known" values (empty name, pid 0, uid 2³²−1) become `nil`.
    init(_ entry: RunEntry) {
        self.init(
            sequence: entry.seq, taskID: entry.taskID, callback: entry.callback, attempt: Int(entry.attempt),
            scheduledAt: Date(micros: entry.scheduledAt), deliveredAt: entry.deliveredAt.map(Date.init(micros:)),
            finishedAt: Date(micros: entry.finishedAt), outcome: Outcome(entry.outcome), then: FollowUp(entry.then),
            error: entry.error, workerName: entry.workerName.isEmpty ? nil : entry.workerName,
            workerPID: entry.workerPID == 0 ? nil : Int(entry.workerPID),
            workerUID: entry.workerUID == .max ? nil : entry.workerUID, daemon: entry.daemon)
    }

    /// `later − earlier` in microseconds, rounded: both dates came from microsecond counts, and a `Double` of
    /// today's epoch seconds is exact to well under a microsecond, so rounding recovers the daemon's figure.
    private static func micros(between earlier: Date, and later: Date) -> Int64 {
        let value = (later.timeIntervalSince(earlier) * 1_000_000).rounded()
        return Int64(exactly: value) ?? (value < 0 ? Int64.min : Int64.max)
    }
}

extension TaskRun.Outcome {
    init(_ wire: RunOutcome) {
        switch wire {
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .leaseExpired: self = .leaseExpired
        case .workerDisconnected: self = .workerDisconnected
        case .released: self = .released
        case .skipped: self = .skipped
        }
    }
}

extension TaskRun.FollowUp {
    init(_ wire: RunFollowUp) {
        switch wire {
        case .finished: self = .finished
        case .retry: self = .retry
        case .deadLettered: self = .deadLettered
        case .nextRun: self = .nextRun
        }
    }
}

/// One page of the run history, newest first.
public struct TaskRunPage: Sendable, Hashable {
    /// The runs of this page, newest (largest ``TaskRun/sequence``) first.
    public var runs: [TaskRun]
    /// Pass as `before` for the next, older page; `nil` when no older run matches.
    public var nextBefore: UInt64?

    /// Creates a page.
    /// - Parameters:
    ///   - runs: The runs, newest first.
    ///   - nextBefore: The next page's `before`.
    public init(runs: [TaskRun], nextBefore: UInt64?) {
        self.runs = runs
        self.nextBefore = nextBefore
    }
}

extension Scheduler {
    /// Which run-history requests the daemon can answer: it needs protocol version 3.
    static let historyVersion = MessageType.getHistory.sinceVersion

    /// Fetches one page of the run history: the runs that match every filter given, newest first.
    ///
    /// ```swift
    /// let page = try await scheduler.history(taskID: "nightly-backup", limit: 5)
    /// for run in page.runs {
    ///     print(run.finishedAt, run.outcome, run.lateness ?? .zero, run.error ?? "")
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - taskID: Only this task's runs (a removed task's runs are still there until they age out).
    ///   - callback: Only runs of this callback.
    ///   - failedOnly: Only failures (``TaskRun/Outcome/isFailure``: failed, lease expired, worker
    ///     disconnected).
    ///   - since: Only runs that finished at or after this instant.
    ///   - limit: Most runs in the page (1 up to the daemon's batch limit). The daemon may return fewer, to keep
    ///     its reply within its frame size; ``TaskRunPage/nextBefore`` then still leads to the rest.
    ///   - before: Only runs older than this ``TaskRun/sequence``: the previous page's
    ///     ``TaskRunPage/nextBefore``, or `nil` for the newest runs.
    /// - Returns: The page and the next page's `before`.
    /// - Throws: ``TaskShedError``: `.invalidUsage` for a limit below 1 or above 2³²−1, or a `since` outside the
    ///   representable range (nothing is sent); `.unsupportedVersion` when the daemon speaks a protocol version
    ///   below 3 (it predates the run history); `.invalidArgument` naming `limit` for a limit above the daemon's
    ///   batch limit, or `since` for an instant the daemon refuses; connection errors; `CancellationError`.
    public func history(
        taskID: String? = nil, callback: String? = nil, failedOnly: Bool = false, since: Date? = nil,
        limit: Int = 100, before: UInt64? = nil
    ) async throws -> TaskRunPage {
        guard limit >= 1, let wireLimit = UInt32(exactly: limit) else {
            throw TaskShedError(.invalidUsage, field: "limit", message: "limit must be 1 … \(UInt32.max), got \(limit)")
        }
        let query = HistoryQuery(
            taskID: taskID, callback: callback, failedOnly: failedOnly, since: try since?.micros(field: "since"),
            limit: wireLimit, before: before)
        return try await historyPage(query, clampLimitToBatch: false)
    }

    /// Every run that matches the filters, newest first, fetched page by page as the sequence is iterated.
    ///
    /// ```swift
    /// for try await run in scheduler.allRuns(failedOnly: true, since: .now - 3600) {
    ///     print(run.taskID, run.error ?? "")
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - taskID: Only this task's runs.
    ///   - callback: Only runs of this callback.
    ///   - failedOnly: Only failures.
    ///   - since: Only runs that finished at or after this instant.
    ///   - pageSize: Runs per request; a size above the daemon's batch limit is lowered to it.
    /// - Returns: An async sequence of runs, newest first; iterating throws what
    ///   ``history(taskID:callback:failedOnly:since:limit:before:)`` throws.
    public func allRuns(
        taskID: String? = nil, callback: String? = nil, failedOnly: Bool = false, since: Date? = nil,
        pageSize: Int = 1000
    ) -> TaskRunSequence {
        TaskRunSequence(
            scheduler: self, taskID: taskID, callback: callback, failedOnly: failedOnly, since: since,
            pageSize: pageSize)
    }

    /// Sends one `GET_HISTORY`. With `clampLimitToBatch` a limit above the daemon's batch limit is lowered to it
    /// (for the sequence, whose page size is an implementation detail of iterating), else it is the daemon's to
    /// refuse, as `listTasks` leaves its limit.
    func historyPage(_ query: HistoryQuery, clampLimitToBatch: Bool) async throws -> TaskRunPage {
        let connection = try await connection.get()
        let version = connection.helloOK?.version ?? 1
        guard version >= Scheduler.historyVersion else {
            throw TaskShedError(
                .unsupportedVersion,
                message: "the daemon speaks protocol version \(version); the run history needs version \(Scheduler.historyVersion) (a newer taskshedd)")
        }
        var query = query
        if clampLimitToBatch {
            query.limit = min(query.limit, UInt32(clamping: max(1, connection.maxBatch)))
        }
        let reply = try await connection.request(.getHistory(query))
        guard case .history(let page) = reply else { throw unexpected(reply, to: "GET_HISTORY") }
        return TaskRunPage(runs: page.runs.map(TaskRun.init), nextBefore: page.nextBefore)
    }
}

/// Every run of the history that matches some filters, newest first, fetched from the daemon one page at a time
/// (see ``Scheduler/allRuns(taskID:callback:failedOnly:since:pageSize:)``).
public struct TaskRunSequence: AsyncSequence, Sendable {
    /// A run.
    public typealias Element = TaskRun

    let scheduler: Scheduler
    let taskID: String?
    let callback: String?
    let failedOnly: Bool
    let since: Date?
    let pageSize: Int

    /// Creates an iterator that starts at the newest run.
    /// - Returns: The iterator.
    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    /// Fetches the next (older) page when the current one is used up.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: TaskRunSequence
        private var buffer: [TaskRun] = []
        private var index = 0
        private var before: UInt64?
        private var exhausted = false

        init(sequence: TaskRunSequence) {
            self.sequence = sequence
        }

        /// The next (older) run, or `nil` after the oldest one.
        /// - Returns: The run.
        /// - Throws: What ``Scheduler/history(taskID:callback:failedOnly:since:limit:before:)`` throws
        ///   (`.invalidUsage` for a page size below 1).
        public mutating func next() async throws -> TaskRun? {
            while index == buffer.count {
                if exhausted { return nil }
                guard sequence.pageSize >= 1 else {
                    throw TaskShedError(
                        .invalidUsage, field: "pageSize", message: "pageSize must be at least 1, got \(sequence.pageSize)")
                }
                let query = HistoryQuery(
                    taskID: sequence.taskID, callback: sequence.callback, failedOnly: sequence.failedOnly,
                    since: try sequence.since?.micros(field: "since"),
                    limit: UInt32(clamping: sequence.pageSize), before: before)
                let page = try await sequence.scheduler.historyPage(query, clampLimitToBatch: true)
                buffer = page.runs
                index = 0
                before = page.nextBefore
                // A page that came back empty with a cursor would loop forever on a broken daemon; an empty page
                // ends the sequence whatever its cursor says.
                exhausted = page.nextBefore == nil || page.runs.isEmpty
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}
