import Glibc
import Logging
import TaskShedEventLoop
import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore

extension RequestError {
    /// The store's error, sent to the client unchanged (the store's codes are protocol codes).
    init(_ error: StoreError) {
        reply = ErrorReply(code: error.code, field: error.field, message: error.message)
    }
}

/// A reply to a durable change, held until the change is on disk.
struct HeldReply {
    let session: ClientSession
    let requestID: UInt32
    let message: Message
    /// The store job that committed the change.
    let job: UInt64
}

/// The result of a background flush, written by the pool thread before libuv runs the completion on the loop.
final class FlushOutcome: @unchecked Sendable {
    var failure: StoreError?
}

extension Server {
    /// Opens the datastore and voids the previous run's leases: the LMDB store (which takes the data
    /// directory's lock, so a second daemon fails here), or the shared PostgreSQL store (which refuses a second
    /// daemon of the same name).
    func openStore() throws {
        switch configuration.datastore {
        case .lmdb: store = .lmdb(try openLMDBStore())
        case .postgres(let connectionString, let schema, let daemonName):
            store = .postgres(try openPostgresStore(connectionString, schema: schema, daemonName: daemonName))
        }
    }

    private func openLMDBStore() throws -> LMDBTaskStore {
        try makeDirectories(configuration.dataDirectory, mode: 0o700)
        var options = StoreOptions()
        // LMDB syncs every commit of a durable environment twice (data pages, then the meta page), but only
        // some commits need to be durable: leases are void after a restart, and the dispatch claims on the
        // delivery path must not wait for a full flush. The environment therefore defers the meta-page flush
        // (`MDB_NOMETASYNC`): each commit still flushes its data pages before writing its meta page, so a
        // system crash can never leave a meta page pointing at unwritten pages (`MDB_NOSYNC` would allow
        // that, and with it a corrupt store). The server completes durability itself before any reply to a
        // durable change is sent: the next store job's commit flushes the file (and so the meta page before
        // it), or, when no job follows, `mdb_env_sync` does (see `repliesNeedFlush`); lease-only commits are
        // flushed within a second by `syncTimer`. With `--no-sync` nothing is flushed.
        options.durable = configuration.sync
        options.deferMetaSync = true
        options.writeMap = configuration.writeMap
        options.maxMapBytes = Int(clamping: configuration.mapSizeMaxBytes)
        options.initialMapBytes = min(options.initialMapBytes, options.maxMapBytes)
        options.maxKwargsBytes = Int(configuration.maxKwargsBytes)
        options.history = configuration.historyLimits
        // `RequestValidation` checks every task's kwargs with the same function before the request is queued.
        options.checksKwargsJSON = false
        let store: LMDBTaskStore
        do {
            store = try LMDBTaskStore(directory: configuration.dataDirectory, options: options)
        } catch {
            throw ServerError("cannot open the store in \(configuration.dataDirectory): \(error.message)")
        }
        if options.writeMap && !store.usesWriteMap {
            logger.warning(
                "the store's data file cannot be allocated for its whole map (is the disk full?); writing without the writable map")
        }
        do {
            // Leases of the previous run are void: those workers' connections are gone.
            let released = try store.releaseAllLeases()
            if released > 0 {
                logger.notice("leases of the previous run released; their tasks are due again",
                              metadata: ["taskshed.count": "\(released)"])
            }
        } catch {
            store.close()
            throw ServerError("cannot release the previous run's leases: \(error.message)")
        }
        return store
    }

    private func openPostgresStore(_ connectionString: String, schema: String, daemonName: String?) throws
        -> PostgresTaskStore
    {
        var options = PostgresStoreOptions(connectionString: connectionString, schema: schema, daemonName: daemonName)
        options.maxKwargsBytes = Int(configuration.maxKwargsBytes)
        options.transactionPooler = configuration.transactionPooler
        options.heartbeatTimeoutMicros = configuration.heartbeatTimeoutMicros
        options.history = configuration.historyLimits
        // As for LMDB: `RequestValidation` has checked every task's kwargs.
        options.checksKwargsJSON = false
        let store: PostgresTaskStore
        do {
            store = try PostgresTaskStore(options: options)
        } catch {
            throw ServerError("cannot open the PostgreSQL datastore (schema \(schema)): \(error.message)")
        }
        logger.notice("PostgreSQL datastore open", metadata: [
            "taskshed.schema": "\(schema)", "taskshed.daemon": "\(store.options.daemonName)",
            "taskshed.daemon_id": "\(store.daemonID)"])
        if store.leasesReleasedAtOpen > 0 {
            logger.notice("leases of this daemon's previous run released; their tasks are due again",
                          metadata: ["taskshed.count": "\(store.leasesReleasedAtOpen)"])
        }
        return store
    }

    func closeStore() {
        if let store {
            do {
                try store.sync()
            } catch {
                logger.error("cannot flush the store at shutdown: \(error)")
            }
            store.close()
        }
        store = nil
    }

    /// Flushes lease-only commits (claims, releases, expiries) left unsynced; run by `syncTimer`.
    func syncIfNeeded() {
        guard hasUnsyncedCommits, configuration.sync else { return }
        startFlush()
    }

    /// Whether replies wait for a flush that no running job or flush will give them: the loop must start one.
    ///
    /// A held reply is durable once the data file is flushed after its job's commit wrote its meta page: by a
    /// background flush (`startFlush`), or by the commit of a later job that changed something (LMDB flushes
    /// the data file inside every such commit, before writing that commit's own meta page). Under load the
    /// next job's commit therefore makes the previous job's replies durable, and each job costs one
    /// `fdatasync` instead of two; a flush is started only when no job follows.
    var repliesNeedFlush: Bool {
        !repliesAwaitingFlush.isEmpty && !isFlushing && !jobInFlight
    }

    /// Sends the held replies of jobs up to `job` (all when nil) and forgets them: as they are, or, when the
    /// flush that was to cover them failed, as that error.
    func sendHeldReplies(through job: UInt64?, flushFailure: StoreError?) {
        let count = job.map { job in repliesAwaitingFlush.firstIndex { $0.job > job } ?? repliesAwaitingFlush.count }
            ?? repliesAwaitingFlush.count
        guard count > 0 else { return }
        for held in repliesAwaitingFlush[..<count] where !held.session.isClosing {
            let message = flushFailure.map {
                Message.error(ErrorReply(code: .internalError,
                    message: "the change was committed but could not be flushed to disk: \($0.message)"))
            } ?? held.message
            send(Frame(requestID: held.requestID, message: message), to: held.session)
        }
        repliesAwaitingFlush.removeFirst(count)
    }

    /// Starts flushing the data file (`fdatasync`) on libuv's thread pool, unless a flush is running (then
    /// `flushFinished` starts the next one if replies still wait). It covers every job completed so far; the
    /// loop keeps serving meanwhile, and due tasks are pushed on time even when the disk is slow.
    func startFlush() {
        guard !isFlushing, let store, let loop else { return }
        guard hasUnsyncedCommits || !repliesAwaitingFlush.isEmpty else { return }
        isFlushing = true
        hasUnsyncedCommits = false
        let covers = completedJobs
        let outcome = FlushOutcome()
        let timing = StoreJobTiming()
        do {
            try BackgroundWork.run(on: loop, {
                let started = WallClock.monotonicNanos()
                do throws(StoreError) {
                    try store.sync()
                } catch {
                    outcome.failure = error
                }
                timing.flushNanos = WallClock.monotonicNanos() &- started
            }, completion: { [unowned self] in
                if let nanos = timing.flushNanos { self.metrics.observeFlush(nanos: nanos) }
                self.flushFinished(outcome.failure, covering: covers)
            })
        } catch {
            // No pool thread available: flush on the loop thread rather than not at all.
            do {
                try store.sync()
                flushFinished(nil, covering: covers)
            } catch let failure {
                flushFinished(failure, covering: covers)
            }
        }
    }

    /// A flush ended: send the replies it covers (or, if it failed, an error for each of them), and start the
    /// next flush if replies of later jobs wait and no job will cover them.
    func flushFinished(_ failure: StoreError?, covering job: UInt64) {
        isFlushing = false
        if let failure {
            logger.error("cannot flush committed changes to disk", metadata: ["error": "\(failure)"])
            hasUnsyncedCommits = true
        }
        sendHeldReplies(through: job, flushFailure: failure)
        if repliesNeedFlush {
            startFlush()
        }
        flushDirtySessions()
    }

    /// Flushes on the loop thread and sends every held reply now (shutdown: the replies must go out before
    /// the goodbye).
    func finishFlushesNow() {
        guard let store else { return }
        var failure: StoreError?
        do {
            try store.sync()
            hasUnsyncedCommits = false
        } catch {
            failure = error
            logger.error("cannot flush committed changes to disk", metadata: ["error": "\(error)"])
        }
        sendHeldReplies(through: nil, flushFailure: failure)
    }

    /// Whether a write request must be on disk before its reply: everything except lease-only changes.
    static func isDurable(_ message: Message) -> Bool {
        switch message {
        case .claim, .touch, .unsubscribe: return false
        default: return true
        }
    }

    func liveStore() throws(RequestError) -> ServerStore {
        guard let store else { throw RequestError(.shuttingDown, "the store is closed") }
        return store
    }

    func storeNextWakeup() throws(RequestError) -> Int64? {
        let store = try liveStore()
        if store.isShared { return sharedHints.nextWakeup }
        do {
            return try store.earliestRunAt()
        } catch {
            throw RequestError(error)
        }
    }

    /// The store's part of `STATS` (the server fills in its own fields: `statistics(_:now:)`).
    static func storeStatistics(_ stats: StoreStats, now: Int64) -> Stats {
        let callbacks = stats.callbacks.map {
            CallbackStats(callback: $0.callback, scheduled: $0.scheduled, due: $0.due, leased: $0.leased, dead: $0.dead,
                          workers: 0)
        }
        return Stats(serverVersion: "", serverTime: now, startedAt: 0, pending: stats.pending, due: stats.due,
                     paused: stats.paused, leased: stats.leased, dead: stats.dead, waitingForWorker: 0,
                     nextWakeup: stats.earliestRunAt, connections: 0, callbacks: callbacks,
                     storeFileBytes: stats.fileBytes, storeMapBytes: stats.mapBytes, storeUsedBytes: stats.usedBytes,
                     lag: LagSummary(count: 0, p50: 0, p90: 0, p99: 0, max: 0))
    }

    /// Marks the store as changed: the cached index reads below are stale. Every write goes through here.
    func storeChanged() {
        storeGeneration &+= 1
    }

    /// The earliest lease deadline, read once per store change: the delivery path asks for it several times
    /// per loop iteration, and only this daemon's writes can change it.
    func storeEarliestLeaseDeadline() -> Int64? {
        if store?.isShared == true { return sharedHints.leaseDeadline }
        if let cached = cachedLeaseDeadline, cached.generation == storeGeneration { return cached.value }
        do {
            let value = try store?.earliestLeaseDeadline()
            cachedLeaseDeadline = (storeGeneration, value)
            return value
        } catch {
            logger.error("cannot read the earliest lease deadline: \(error)")
            return nil
        }
    }

    /// The earliest due time of a callback, read once per store change (see `storeEarliestLeaseDeadline`).
    func storeEarliestRunAt(callback: String) -> Int64? {
        if store?.isShared == true {
            // A callback no job has read yet counts as due: the next job claims for it and reads it.
            guard let known = sharedHints.runAt[callback] else { return 0 }
            return known
        }
        if cachedRunAtGeneration != storeGeneration {
            cachedRunAt.removeAll(keepingCapacity: true)
            cachedRunAtGeneration = storeGeneration
        }
        if let cached = cachedRunAt[callback] { return cached }
        do {
            let value = try store?.earliestRunAt(callback: callback)
            cachedRunAt[callback] = .some(value)
            return value
        } catch {
            logger.error("cannot read the earliest due time", metadata: ["taskshed.callback": "\(callback)",
                                                                         "error": "\(error)"])
            return nil
        }
    }

    /// The ERROR for a store failure. A lease reference to a task that no longer exists is a lost lease for
    /// the worker (the specification answers ACK/FAIL/TOUCH/RELEASE only with `LEASE_LOST`).
    static func reply(for error: StoreError, to message: Message) -> ErrorReply {
        guard error.code == .taskNotFound else {
            return ErrorReply(code: error.code, field: error.field, message: error.message)
        }
        switch message {
        case .ack(let lease), .release(let lease):
            return ErrorReply(code: .leaseLost, field: "id", message: "task \"\(lease.id)\" no longer exists: \(error.message)")
        case .fail(let request):
            return ErrorReply(code: .leaseLost, field: "lease.id",
                              message: "task \"\(request.lease.id)\" no longer exists: \(error.message)")
        case .touch(let request):
            return ErrorReply(code: .leaseLost, field: "lease.id",
                              message: "task \"\(request.lease.id)\" no longer exists: \(error.message)")
        default:
            return ErrorReply(code: error.code, field: error.field, message: error.message)
        }
    }

    /// The claimed tasks whose records fit in one TASKS frame of at most `maxReplyBytes` (earliest first, as
    /// claimed); the leases of the rest are given back uncounted in the same transaction, so they are as they
    /// were before the claim (PROTOCOL.md, CLAIM). The first task is always kept: a record alone is at most a
    /// request's largest task, which fit in a frame when it was added.
    static func fitting<B: TaskStoreWriteBatch>(_ claimed: [TaskRecord], into maxReplyBytes: Int, holder: UInt64,
                                                batch: inout B) throws(StoreError) -> [TaskRecord] {
        // The frame's length counts type, flags and request id (8 bytes) and the list's count (4).
        var room = maxReplyBytes - ProtocolLimits.headerBytesAfterLength - 4
        var kept = 0
        for task in claimed {
            room -= task.encodedByteCount
            if room < 0 && kept > 0 { break }
            kept += 1
        }
        guard kept < claimed.count else { return claimed }
        for task in claimed[kept...] {
            _ = try batch.release(id: task.id, attempt: task.attempt, holder: holder)
        }
        return Array(claimed[..<kept])
    }

    /// One write request against the batch. Static and free of side effects: the store may rerun the batch.
    /// - Parameter maxReplyBytes: The largest frame the client accepts (`max_frame_bytes`): a CLAIM leases only
    ///   the tasks whose records fit in its reply.
    static func apply<B: TaskStoreWriteBatch>(
        _ message: Message, holder: UInt64, subscriptionLease: Int64?, defaultLease: Int64, now: Int64,
        maxReplyBytes: Int, batch: inout B
    ) throws(StoreError) -> Message {
        switch message {
        case .addTasks(let request):
            return .added(try batch.add(request.tasks, onConflict: request.onConflict, now: now))
        case .pauseTasks(let selector):
            return .affected(UInt64(try batch.pause(selector, now: now)))
        case .resumeTasks(let selector):
            return .affected(UInt64(try batch.resume(selector)))
        case .removeTasks(let selector):
            return .affected(UInt64(try batch.remove(selector)))
        case .updateRunTimes(let updates):
            try batch.updateRunTimes(updates)
            return .affected(UInt64(updates.count))
        case .retryDead(let selector):
            return .affected(UInt64(try batch.retryDead(selector, now: now)))
        case .purgeDead(let selector):
            return .affected(UInt64(try batch.purgeDead(selector)))
        case .claim(let request):
            let lease = request.leaseMicros ?? defaultLease
            let claimed = try batch.claim(callbacks: request.callbacks, max: Int(request.max), holder: holder,
                                          leaseDeadline: now + lease, now: now)
            return .tasks(try fitting(claimed, into: maxReplyBytes, holder: holder, batch: &batch))
        case .ack(let lease):
            _ = try batch.ack(id: lease.id, attempt: lease.attempt, holder: holder, now: now)
            return .ok
        case .fail(let request):
            _ = try batch.fail(id: request.lease.id, attempt: request.lease.attempt, holder: holder,
                               error: request.error, retry: request.retry, now: now)
            return .ok
        case .release(let lease):
            _ = try batch.release(id: lease.id, attempt: lease.attempt, holder: holder, now: now)
            return .ok
        case .unsubscribe:
            // Its work was done on the loop (`handle`); the job's staged releases give the leases back.
            return .ok
        case .touch(let request):
            let length = request.extendMicros ?? subscriptionLease ?? defaultLease
            return .leaseExtended(deadline: try batch.touch(id: request.lease.id, attempt: request.lease.attempt,
                                                            holder: holder, leaseDeadline: now + length))
        default:
            throw StoreError(code: .internalError, message: "\(message.type.name) is not a write")
        }
    }

    /// Frees a pushed task's slot when its worker settles it.
    func settle(_ lease: LeaseRef, of session: ClientSession) {
        if let attempt = session.pushed[lease.id], attempt == lease.attempt {
            session.pushed[lease.id] = nil
            pushedHolders[lease.id] = nil
            forgetAheadPush(lease.id, sessionID: session.id)
        }
    }
}
