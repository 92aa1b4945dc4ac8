import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore

/// A session that can take pushed tasks, as the dispatch part of a store job sees it.
struct DispatchCandidate: Sendable {
    let sessionID: UInt64
    let callbacks: [String]
    /// Free delivery slots when the job was built.
    let free: Int
    /// Lease length of its pushes (µs).
    let leaseMicros: Int64
}

/// A client request applied by a store job.
struct JobRequest: Sendable {
    /// The connection id: the lease holder of what the request claims or settles.
    let holder: UInt64
    /// The connection's subscription lease (TOUCH's default extension), if it has one.
    let subscriptionLease: Int64?
    let message: Message
    /// The connection was closing when the job was built: its CLAIM is not applied (nobody would get the
    /// tasks, and their leases would only be counted against them when the holder is released).
    var holderClosing = false
}

/// Who ran a delivery, as the run history records it: the connection's HELLO `client_name` and its peer's
/// credentials.
struct RunWorker: Sendable, Hashable {
    var name: String
    var pid: UInt32
    var uid: UInt32
}

/// A lease that a received but not yet applied ACK, FAIL, TOUCH or RELEASE names: a job's expiry spares it,
/// so that the request finds it (the worker sent it in time as far as it can tell).
struct RequestedLease: Hashable, Sendable {
    let id: String
    /// The connection that sent the request: only a lease it holds is spared.
    let holder: UInt64

    /// The lease that `message`, sent by connection `holder`, names; `nil` for other requests.
    init?(_ message: Message, holder: UInt64) {
        switch message {
        case .ack(let ref), .release(let ref): id = ref.id
        case .fail(let request): id = request.lease.id
        case .touch(let request): id = request.lease.id
        default: return nil
        }
        self.holder = holder
    }

    /// The lease of task `id` held by connection `holder` (as the expiry reports an expired one).
    init(id: String, holder: UInt64) {
        self.id = id
        self.holder = holder
    }
}

/// Everything one write transaction of the daemon does, captured as values on the loop thread: the job runs
/// on a thread-pool thread and must not touch server state.
///
/// Order inside the transaction: staged leases given back (uncounted), expired leases ended (counted), the
/// client requests in arrival order, leases of closed connections released (counted), then claims for the
/// candidates (so a task added due now by a request of this job, or made due by a lease's end, is pushed by
/// this job).
///
/// A lease is honoured for every request that reached the daemon before the job began (PROTOCOL.md, section
/// 8): the expiry spares the leases that the job's requests name, and those named by requests held for a
/// later job behind a read of their connection (`sparedLeases`), so a TOUCH that waited past the deadline
/// behind a slow job finds its lease; and closed connections' leases end after the requests, so an ACK or
/// RELEASE that a worker sent just before closing is applied. Expiry still comes first, so that a polling
/// CLAIM of the job gets the tasks it frees.
struct StoreJob: Sendable {
    var stagedReleases: [StagedRelease] = []
    var releaseHolders: [UInt64] = []
    var expireLeases = false
    /// Leases named by requests held for a later job: the expiry leaves them alone this time (with those the
    /// job's own requests name).
    var sparedLeases: Set<RequestedLease> = []
    var requests: [JobRequest] = []
    var candidates: [DispatchCandidate] = []
    /// The clock for the requests and lease ends.
    var now: Int64 = 0
    /// Tasks due up to here are claimed (now + the dispatch lead).
    var horizon: Int64 = 0
    /// The daemon's default lease (µs).
    var defaultLease: Int64 = 0
    /// The largest reply frame a client accepts (`max_frame_bytes`).
    var maxReplyBytes = Int(ProtocolLimits.defaultMaxFrameBytes)
    /// The job's number: jobs run one at a time, in this order.
    var sequence: UInt64 = 0
    /// The worker of every connection whose deliveries the job may end (connection id → worker): fills in the
    /// run history's worker fields (`Server.runWorkers`).
    var workers: [UInt64: RunWorker] = [:]
    /// This daemon's name in the run history.
    var daemonName = ""
    /// The job holds a durable change of a durable store: it may flush the store itself (`flushIfAlone`).
    var flushesItself = false
    /// A shared store: the callbacks whose earliest due time the job reads after its commit (`SharedHints`).
    var hintCallbacks: [String] = []
    /// A shared store: staged or held tasks to read again after the commit (another daemon may have changed
    /// them), for `Server.revalidateStaged(_:)`.
    var revalidateIDs: [String] = []
    /// A shared store: the job exists only to refresh the hints (the periodic re-read).
    var refreshesHints = false
    /// A shared store: competing candidates claim an even share of their free capacity per turn instead of
    /// one task, since every claim is a round trip to the database (2,000 claims of one task in one job took
    /// 9 s, during which the rows it had locked stopped the other daemon's acks).
    var claimsShares = false

    /// Whether the job would do nothing.
    var isEmpty: Bool {
        stagedReleases.isEmpty && releaseHolders.isEmpty && !expireLeases && requests.isEmpty && candidates.isEmpty
            && !refreshesHints
    }
}

/// What a store job did. Built inside the write body (which the store may run more than once).
struct StoreJobResult: Sendable {
    /// One reply per request, in order.
    var replies: [Message] = []
    /// Tasks whose leases ended because their connection closed.
    var released = 0
    /// Tasks whose leases expired.
    var expired: [TaskRecord] = []
    /// Claimed tasks to push or stage: session id → task.
    var pushes: [(sessionID: UInt64, task: TaskRecord)] = []
    /// Set when the release, expiry or claim part failed (the requests still committed); the releases must
    /// be tried again.
    var dispatchFailure: StoreError?
    /// Whether the commit changed something, and so (in a durable store) flushed the data file before its
    /// meta page: every earlier job's commit is then on disk (see `LMDBTaskStore.lastCommittedTransactionID`).
    var committed = false
    /// A shared store: due times and lease deadline as of the commit.
    var hints: SharedHints?
    /// A shared store: the current records of `StoreJob.revalidateIDs`.
    var revalidated: [TaskRecord]?
    /// The run-history entries of the deliveries the job ended, as recorded (for the metrics).
    var endedRuns: [RunEntry] = []
    /// Why the job's run-history entries could not be recorded (the rest of the job committed).
    var historyFailure: StoreError?
}

/// Carries a job's result from the pool thread to the loop thread. libuv orders the two (the work returns
/// before the completion runs), hence the unchecked conformance.
final class StoreJobOutcome: @unchecked Sendable {
    var result: Result<StoreJobResult, StoreError> = .failure(StoreError(code: .internalError, message: "job did not run"))
    /// The job flushed the store after its commit (`StoreJob.flushIfAlone`).
    var flushed = false
}

extension StoreJob {
    /// Runs the job in one write transaction (one commit, one `fdatasync` of the data pages).
    ///
    /// A request that fails gets its error reply and changes nothing; a failure of the dispatch part is
    /// recorded in the result and leaves the requests committed. Only a failure of the transaction itself
    /// (I/O error, commit) fails the whole job.
    /// - Important: Runs on a thread-pool thread; touches only `store` (thread-safe) and its arguments.
    func run(on store: ServerStore) -> Result<StoreJobResult, StoreError> {
        do {
            switch store {
            case .lmdb(let store):
                let before = try store.lastCommittedTransactionID()
                var result = try write(on: store)
                result.committed = try store.lastCommittedTransactionID() != before
                return .success(result)
            case .postgres(let store):
                var result: StoreJobResult
                let hints: Wakeups
                // Read after the commit (in its round trip), so the loop plans with what this job and the other
                // daemons left.
                if isEmptyOfWrites {
                    result = StoreJobResult()
                    hints = try store.wakeups(callbacks: hintCallbacks)
                } else {
                    // Durable when a client is told of the outcome; claims and dispatch bookkeeping need not be (as
                    // with LMDB's deferred flushes, `Server.isDurable`).
                    let durable = requests.contains { Server.isDurable($0.message) }
                    (result, hints) = try store.write(isolatingRequests: true, durable: durable,
                                                      thenReadWakeupsOf: hintCallbacks) {
                        (batch: inout PostgresWriteBatch) throws(StoreError) -> StoreJobResult in try apply(&batch)
                    }
                }
                result.committed = true
                result.hints = SharedHints(runAt: hints.runAt, leaseDeadline: hints.leaseDeadline, nextWakeup: hints.any)
                if !revalidateIDs.isEmpty { result.revalidated = try store.fetch(.ids(revalidateIDs)) }
                return .success(result)
            }
        } catch {
            return .failure(error)
        }
    }

    /// Whether the job only refreshes hints (nothing to write).
    private var isEmptyOfWrites: Bool {
        stagedReleases.isEmpty && releaseHolders.isEmpty && !expireLeases && requests.isEmpty && candidates.isEmpty
    }

    /// Flushes the store right after the job's commit when the job holds a durable change and no write waits
    /// for the next job (see `WriteArrivals`): the commit left its meta page unsynced (`deferMetaSync`), and a
    /// flush here saves the replies a trip back to the loop and out to the pool again for `Server.startFlush`.
    /// A failed flush is left to that path, which reports it.
    /// - Returns: Whether every commit so far is on disk.
    /// - Important: Runs on the job's thread-pool thread, after `run(on:)`.
    func flushIfAlone(_ store: ServerStore, _ result: Result<StoreJobResult, StoreError>,
                      arrivals: WriteArrivals) -> Bool {
        guard let store = store.lmdb, flushesItself, (try? result.get().committed) == true, !arrivals.areWaiting else { return false }
        do {
            try store.sync()
            return true
        } catch {
            return false
        }
    }

    /// The job's write transaction.
    private func write<S: TaskStore>(on store: S) throws(StoreError) -> StoreJobResult {
        try store.write { (batch: inout S.WriteBatch) throws(StoreError) -> StoreJobResult in try apply(&batch) }
    }

    /// Everything the job writes, in one batch (which the store may run more than once: no other effects).
    private func apply<B: TaskStoreWriteBatch>(_ batch: inout B) throws(StoreError) -> StoreJobResult {
        var result = StoreJobResult()
        for release in stagedReleases {
            // A lease that changed meanwhile (removed task, expired lease) is simply not given back.
            _ = try? batch.release(id: release.id, attempt: release.attempt, holder: release.holder)
        }
        // Expired leases end first, so that a CLAIM of this job gets their tasks; but not the leases that a
        // request names (see the type's doc): ending them first would run the task twice for a worker that
        // did its part.
        if expireLeases {
            var spared = sparedLeases
            for request in requests {
                if let lease = RequestedLease(request.message, holder: request.holder) { spared.insert(lease) }
            }
            do throws(StoreError) {
                result.expired = try batch.expireLeases(now: now) { id, holder in
                    !spared.isEmpty && spared.contains(RequestedLease(id: id, holder: holder))
                }
            } catch {
                result.dispatchFailure = error
            }
        }
        result.replies.reserveCapacity(requests.count)
        var index = 0
        while index < requests.count {
            let request = requests[index]
            index += 1
            if request.holderClosing, case .claim = request.message {
                result.replies.append(.tasks([]))
                continue
            }
            // Runs of acks, and of adds, go to the store together: one statement each on a shared store.
            if case .ack = request.message {
                let run = consecutive(request, &index) { if case .ack = $0 { true } else { false } }
                if run.count > 1 {
                    applyAcks(run, &batch, into: &result)
                    continue
                }
            }
            if case .addTasks = request.message {
                let run = consecutive(request, &index) { if case .addTasks = $0 { true } else { false } }
                if run.count > 1 {
                    applyAdds(run, &batch, into: &result)
                    continue
                }
            }
            do throws(StoreError) {
                result.replies.append(try Server.apply(
                    request.message, holder: request.holder, subscriptionLease: request.subscriptionLease,
                    defaultLease: defaultLease, now: now, maxReplyBytes: maxReplyBytes, batch: &batch))
            } catch {
                result.replies.append(.error(Server.reply(for: error, to: request.message)))
            }
        }
        if result.dispatchFailure == nil {
            do throws(StoreError) {
                // Closed connections' leases end after the requests: an ACK or RELEASE sent just before the
                // close is applied, not counted as a failed attempt.
                for holder in releaseHolders {
                    result.released += try batch.releaseHolder(holder, reason: "worker disconnected", now: now).count
                }
                result.pushes = try claims(&batch)
            } catch {
                result.dispatchFailure = error
            }
        }
        recordHistory(&batch, into: &result)
        return result
    }

    /// Records the deliveries the batch ended in the run history, in the same transaction, with who ran them.
    private func recordHistory<B: TaskStoreWriteBatch>(_ batch: inout B, into result: inout StoreJobResult) {
        let ended = batch.endedRuns
        guard !ended.isEmpty else { return }
        result.endedRuns = ended.map { run in
            var entry = run.entry
            if run.holder != 0, let worker = workers[run.holder] {
                entry.workerName = worker.name
                entry.workerPID = worker.pid
                entry.workerUID = worker.uid
            }
            if entry.daemon.isEmpty { entry.daemon = daemonName }
            return entry
        }
        do throws(StoreError) {
            try batch.recordRuns(result.endedRuns, now: now)
        } catch {
            // The acks and the rest stand (a lost history entry is not worth a task run twice).
            result.historyFailure = error
        }
    }

    /// `first` and the requests right after it (from `index`, which moves past them) whose message `matches`.
    private func consecutive(_ first: JobRequest, _ index: inout Int, _ matches: (Message) -> Bool) -> [JobRequest] {
        var run = [first]
        while index < requests.count, matches(requests[index].message) {
            run.append(requests[index])
            index += 1
        }
        return run
    }

    /// Replies to a run of ACK requests, applied together (`TaskStoreWriteBatch.ack(_:now:)`).
    private func applyAcks<B: TaskStoreWriteBatch>(_ run: [JobRequest], _ batch: inout B,
                                                   into result: inout StoreJobResult) {
        let leases = run.map { request -> LeaseAck in
            guard case .ack(let lease) = request.message else { preconditionFailure("a run of acks") }
            return LeaseAck(id: lease.id, attempt: lease.attempt, holder: request.holder)
        }
        for (request, outcome) in zip(run, batch.ack(leases, now: now)) {
            switch outcome {
            case .success: result.replies.append(.ok)
            case .failure(let error): result.replies.append(.error(Server.reply(for: error, to: request.message)))
            }
        }
    }

    /// Replies to a run of ADD_TASKS requests, applied together (`TaskStoreWriteBatch.add(requests:now:)`).
    private func applyAdds<B: TaskStoreWriteBatch>(_ run: [JobRequest], _ batch: inout B,
                                                   into result: inout StoreJobResult) {
        let adds = run.map { request -> AddRequest in
            guard case .addTasks(let add) = request.message else { preconditionFailure("a run of adds") }
            return AddRequest(specs: add.tasks, onConflict: add.onConflict)
        }
        for (request, outcome) in zip(run, batch.add(requests: adds, now: now)) {
            switch outcome {
            case .success(let added): result.replies.append(.added(added))
            case .failure(let error): result.replies.append(.error(Server.reply(for: error, to: request.message)))
            }
        }
    }

    /// Claims for the candidates, fairly: candidates take turns in the given order, each turn claiming one
    /// task when others compete for the same callbacks, or all its free capacity when nobody else serves them.
    private func claims<B: TaskStoreWriteBatch>(_ batch: inout B) throws(StoreError) -> [(sessionID: UInt64, task: TaskRecord)] {
        var pushes: [(sessionID: UInt64, task: TaskRecord)] = []
        var servers: [String: Int] = [:]
        for candidate in candidates {
            for callback in candidate.callbacks { servers[callback, default: 0] += 1 }
        }
        var active = candidates
        var granted: [UInt64: Int] = [:]
        while !active.isEmpty {
            var stillActive: [DispatchCandidate] = []
            for candidate in active {
                let free = candidate.free - granted[candidate.sessionID, default: 0]
                if free <= 0 { continue }
                let alone = candidate.callbacks.allSatisfy { servers[$0, default: 0] <= 1 }
                let competitors = candidate.callbacks.map { servers[$0, default: 1] }.max() ?? 1
                let turn = alone ? free : (claimsShares ? max(1, (free + competitors - 1) / competitors) : 1)
                // Tasks due up to the horizon are taken; the ones not due yet are staged and pushed at their
                // due time, which the store records as their `lastRunAt`.
                let tasks = try batch.claim(callbacks: candidate.callbacks, max: turn,
                                            holder: candidate.sessionID,
                                            leaseDeadline: horizon + candidate.leaseMicros, dueBy: horizon, now: now)
                if tasks.isEmpty { continue }
                granted[candidate.sessionID, default: 0] += tasks.count
                for task in tasks { pushes.append((candidate.sessionID, task)) }
                if !alone && free - tasks.count > 0 && tasks.count == turn { stillActive.append(candidate) }
            }
            active = stillActive
        }
        return pushes
    }
}
