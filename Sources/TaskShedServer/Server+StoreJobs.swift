import Glibc
import Synchronization
import CLibUV
import Logging
import TaskShedEventLoop
import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore

extension Server {
    /// Builds the next store job from the queued requests and the dispatch work, or returns nil when there is
    /// nothing to write. Answers, on the way, the queued reads that no longer wait for a write.
    func nextStoreJob() -> StoreJob? {
        // A shared store that cannot be reached is retried with backoff: client requests still go (and get
        // STORE_UNAVAILABLE at once), dispatch and re-reads wait for the retry time.
        if sharedRetryAfterNanos != 0 && WallClock.monotonicNanos() < sharedRetryAfterNanos
            && !queue.contains(where: { $0.kind.isWrite })
        {
            return nil
        }
        var job = StoreJob()
        job.now = WallClock.nowMicros()
        job.horizon = job.now + dispatchLeadMicros
        job.defaultLease = configuration.leaseTimeoutMicros
        job.maxReplyBytes = Int(configuration.maxFrameBytes)
        job.workers = runWorkers
        job.daemonName = runDaemonName
        let taken = takeQueuedWrites()
        writeArrivals.set(queue.contains { $0.kind.isWrite })
        job.requests = taken.map { item in
            guard case .write(let message) = item.kind else { preconditionFailure("takeQueuedWrites returns writes") }
            return JobRequest(holder: item.session.id, subscriptionLease: item.session.subscription?.leaseMicros,
                              message: message, holderClosing: item.session.isClosing)
        }
        returnExpiringHeldDeliveries(now: job.now)
        // Staged tasks an UNSUBSCRIBE gave back wait while a read its connection sent before is on the thread
        // pool: that read must still see them leased.
        let waitForRead = { (release: StagedRelease) -> Bool in
            self.sessions[release.holder]?.awaitsReadReply ?? false
        }
        job.stagedReleases = stagedReleases.filter { !waitForRead($0) }
        stagedReleases.removeAll { !waitForRead($0) }
        if dispatchNeeded || !taken.isEmpty || !holdersToRelease.isEmpty {
            planDispatch(into: &job, force: !taken.isEmpty)
        }
        if job.expireLeases { job.sparedLeases = heldLeases() }
        if store?.isShared == true { prepareSharedRead(&job) }
        guard !job.isEmpty else { return nil }
        job.flushesItself = configuration.sync && store?.isShared != true
            && job.requests.contains { Self.isDurable($0.message) }
        jobRequests = taken
        startedJobs += 1
        job.sequence = startedJobs
        return job
    }

    /// A shared store: what the job reads after its commit for the loop (see `SharedHints`): the due times of
    /// every subscribed callback, and the staged and held tasks that other daemons may have changed. The
    /// periodic re-read (`sharedHintsStale`) makes a job of its own.
    func prepareSharedRead(_ job: inout StoreJob) {
        var callbacks = Set<String>()
        for session in sessions.values {
            for callback in session.subscription?.callbacks ?? [] { callbacks.insert(callback) }
        }
        job.hintCallbacks = Array(callbacks)
        job.claimsShares = true
        if sharedHintsStale || !job.isEmpty {
            job.revalidateIDs = stagedAndHeldIDs()
            job.refreshesHints = sharedHintsStale
            sharedHintsStale = false
        }
    }

    /// A shared store: starts the background session (`PostgresBackgroundSession`), which sends the heartbeats
    /// and listens for the other daemons' notifications; each one makes the next store job re-read the due
    /// times, at once if no job runs.
    func startNotificationListener() throws(UVError) {
        guard case .postgres(let store)? = store else { return }
        let notified = NotifiedCallbacks()
        let wakeup = try CrossThreadWakeup(loop: loop) { [unowned self] in
            // A notified callback's due time is unknown until read: it counts as due, so the next job claims for
            // it at once instead of first re-reading and then claiming in a job after (one job, not two, between
            // another daemon's add and the delivery here).
            switch notified.take() {
            case .some(let callbacks): for callback in callbacks { self.sharedHints.runAt[callback] = nil }
            case .none: self.sharedHints.runAt.removeAll()
            }
            self.sharedHintsStale = true
            self.dispatchNeeded = true
            if !self.jobInFlight { self.startStoreJob() }
        }
        let log = logger
        let listener = PostgresBackgroundSession(
            store: store, heartbeatTimeoutMicros: configuration.heartbeatTimeoutMicros,
            onNotify: { callbacks in
                notified.add(callbacks)
                wakeup.signal()
            },
            onProblem: { problem in
                if let problem {
                    log.warning("\(problem); other daemons' changes are seen at the next poll meanwhile")
                } else {
                    log.notice("listening for other daemons' notifications again")
                }
            },
            onHeartbeat: { beat in
                Self.logHeartbeat(beat, log)
                // Tasks of lost daemons are due; a daemon declared lost must drop what it staged: re-read.
                notified.add(nil)
                wakeup.signal()
            })
        listener.start()
        if configuration.transactionPooler {
            logger.notice("behind a transaction-mode connection pooler: not listening for other daemons' notifications; their changes are seen at the re-read every \(configuration.sharedPollMicros / 1000) ms")
        }
        notificationWakeup = wakeup
        notificationListener = listener
    }

    /// A shared store's job could not reach the database: log it once per outage and back off (50 ms doubling
    /// to 5 s) before the next job that no client waits for.
    func sharedStoreUnavailable(_ error: StoreError) {
        if sharedRetryMicros == 0 {
            logger.error("the PostgreSQL datastore cannot be reached; requests get STORE_UNAVAILABLE until it can",
                         metadata: ["error": "\(error.message)"])
        }
        sharedRetryMicros = min(max(sharedRetryMicros * 2, 50_000), 5_000_000)
        sharedRetryAfterNanos = WallClock.monotonicNanos() &+ UInt64(sharedRetryMicros) * 1000
        sharedHintsStale = true
    }

    /// Logs what a heartbeat of the background session found (on its thread: the logger is thread-safe). A
    /// daemon that was declared lost has no leases any more: the re-read that follows drops its staged
    /// deliveries, and its workers' acks get `LEASE_LOST`.
    static func logHeartbeat(_ beat: HeartbeatOutcome, _ logger: Logger) {
        if beat.wasDeclaredLost {
            logger.warning("""
                the other daemons declared this one lost (no heartbeat reached the database for the heartbeat \
                timeout) and ended its leases: those tasks are delivered elsewhere, and acks for them get LEASE_LOST
                """)
        }
        if !beat.lostDaemons.isEmpty {
            logger.warning("daemons lost (no heartbeat); their leases ended and their tasks are due again",
                           metadata: ["taskshed.daemons": "\(beat.lostDaemons.joined(separator: ","))",
                                      "taskshed.count": "\(beat.rescued.count)"])
        }
    }

    /// Answers the queued reads and decided replies that no longer wait for a write of their connection, and
    /// takes the queued writes the next job applies.
    ///
    /// Per connection, order is kept: a read waits for the writes its connection sent before it (it must see
    /// them), and a write sent after such a read waits for the job after (the read must not see it).
    func takeQueuedWrites() -> [QueuedRequest] {
        guard !queue.isEmpty else { return [] }
        var taken: [QueuedRequest] = []
        var kept: [QueuedRequest] = []
        var writing = Set<UInt64>()
        var waiting = Set<UInt64>()
        for item in queue {
            let id = item.session.id
            // A read of this connection is on the thread pool: what it sent after waits for the reply.
            if item.session.awaitsReadReply { waiting.insert(id) }
            switch item.kind {
            case .write:
                if waiting.contains(id) {
                    kept.append(item)
                } else {
                    taken.append(item)
                    writing.insert(id)
                }
            case .read, .reply:
                // A closing connection's reads and replies are never sent: dropped here, they do not hold back
                // its writes (an ACK or RELEASE sent before the close must be applied before its leases are
                // released, PROTOCOL.md section 8).
                if item.session.isClosing {
                    item.session.queuedRequests -= 1
                    continue
                }
                // A read also waits while its connection leaves replies unread (`maxOutputBytes`): its reply
                // could be one more maximum frame.
                if waiting.contains(id) || writing.contains(id)
                    || (item.kind.isRead && repliesHoldBack(item.session)) {
                    kept.append(item)
                    waiting.insert(id)
                    continue
                }
                item.session.queuedRequests -= 1
                if case .read(let message) = item.kind {
                    answerRead(message, requestID: item.requestID, on: item.session)
                } else if case .reply(let message) = item.kind {
                    send(Frame(requestID: item.requestID, message: message), to: item.session)
                }
            }
        }
        queue = kept
        return taken
    }

    /// The leases named by the ACK, FAIL, TOUCH and RELEASE requests still queued (held behind a read of their
    /// connection for a later job): the next job's expiry spares them (`StoreJob.sparedLeases`).
    func heldLeases() -> Set<RequestedLease> {
        var held = Set<RequestedLease>()
        for item in queue {
            if case .write(let message) = item.kind, let lease = RequestedLease(message, holder: item.session.id) {
                held.insert(lease)
            }
        }
        return held
    }

    /// Starts the next store job on libuv's thread pool, unless one is running (jobs run one at a time, in
    /// order) or the daemon is stopping (then `finishShutdown` runs what is left on the loop thread). With
    /// `--no-sync` the job runs on the loop thread at once.
    ///
    /// The loop keeps serving while the job runs: reads are answered from the committed state (with the
    /// job's lease changes, which the store makes in memory as the job goes: a task the job claims may read as
    /// leased a moment before its commit), due tasks that are staged are pushed on time, new requests queue for
    /// the next job (group commit: the longer a job takes, the more the next one carries). The job's
    /// completion re-arms the timer from the store as the job left it.
    func startStoreJob() {
        guard !jobInFlight, !isShuttingDown, let store, let loop else { return }
        guard let job = nextStoreJob() else { return }
        jobInFlight = true
        jobStartedNanos = WallClock.monotonicNanos()
        let outcome = StoreJobOutcome()
        let timing = StoreJobTiming()
        if !configuration.sync && store.lmdb != nil {
            // Without syncing, a commit only copies pages into the page cache: run it here and save the two
            // thread hops (tens of microseconds each on a busy machine) of every request's round trip.
            Self.runTimed(job, on: store, arrivals: nil, outcome: outcome, timing: timing)
            metrics.observeStoreJob(commitNanos: timing.commitNanos, flushNanos: nil)
            storeJobFinished(job, outcome.result)
            return
        }
        let arrivals = writeArrivals
        do {
            try BackgroundWork.run(on: loop, {
                Self.runTimed(job, on: store, arrivals: arrivals, outcome: outcome, timing: timing)
            }, completion: { [unowned self] in
                self.metrics.observeStoreJob(commitNanos: timing.commitNanos, flushNanos: timing.flushNanos)
                self.storeJobFinished(job, outcome.result, flushed: outcome.flushed)
            })
        } catch {
            logger.warning("no thread-pool thread for the store job; running it on the loop thread: \(error)")
            Self.runTimed(job, on: store, arrivals: nil, outcome: outcome, timing: timing)
            metrics.observeStoreJob(commitNanos: timing.commitNanos, flushNanos: nil)
            storeJobFinished(job, outcome.result)
        }
    }

    /// Runs every pending store job on the loop thread, blocking (shutdown: everything read so far must be
    /// answered with its committed result before the goodbye).
    func runStoreJobsNow() {
        guard let store, !jobInFlight else { return }
        while let job = nextStoreJob() {
            jobInFlight = true
            storeJobFinished(job, job.run(on: store))
        }
    }

    /// A store job ended (loop thread): answers its requests (held for the disk flush when they hold a durable
    /// change), frees the slots of settled pushes, pushes or stages what it claimed, and schedules the follow-up
    /// work.
    /// - Parameter flushed: The job flushed the store after its commit (`StoreJob.flushIfAlone`): every commit
    ///   so far is on disk, and the held replies go out now.
    func storeJobFinished(_ job: StoreJob, _ result: Result<StoreJobResult, StoreError>, flushed: Bool = false) {
        jobInFlight = false
        recordJobDuration(WallClock.monotonicNanos() &- jobStartedNanos)
        completedJobs = job.sequence
        let items = jobRequests
        jobRequests.removeAll()
        storeChanged()
        let replies: [Message]
        switch result {
        case .success(let value):
            replies = value.replies
            runsEnded(value, releasing: job.releaseHolders)
            // Counted even when their history entries could not be written: the runs themselves committed.
            metrics.observeEndedRuns(value.endedRuns)
            if let hints = value.hints {
                if sharedRetryMicros != 0 {
                    logger.notice("the PostgreSQL datastore is reachable again")
                    sharedRetryMicros = 0
                    sharedRetryAfterNanos = 0
                }
                sharedHints = hints
                rearmNeeded = true
            }
            if let records = value.revalidated { revalidateStaged(records) }
            if value.committed && store?.isShared != true {
                hasUnsyncedCommits = true
                if configuration.sync {
                    // The commit flushed the data file before writing its own meta page: the meta pages of
                    // every earlier job are on disk.
                    sendHeldReplies(through: job.sequence - 1, flushFailure: nil)
                }
            }
            // Settled pushes free their subscription's slots (whatever the outcome: a worker that acks or fails
            // a task considers it finished, even when its lease was lost meanwhile).
            for item in items {
                guard case .write(let message) = item.kind else { continue }
                switch message {
                case .ack(let lease), .release(let lease): settle(lease, of: item.session)
                case .fail(let request): settle(request.lease, of: item.session)
                default: break
                }
            }
            deliver(value, of: job)
        case .failure(let error) where store?.isShared == true && error.code == .storeUnavailable:
            sharedStoreUnavailable(error)
            let reply = Message.error(ErrorReply(code: error.code, field: error.field, message: error.message))
            replies = items.map { _ in reply }
            // As below: nothing was committed; the staged releases are retried, since the database will hold
            // those leases until they are given back or expire.
            holdersToRelease.append(contentsOf: job.releaseHolders)
            stagedReleases.append(contentsOf: job.stagedReleases)
            rearmNeeded = true
        case .failure(let error):
            logger.error("write transaction failed", metadata: ["error": "\(error)",
                                                                 "taskshed.requests": "\(items.count)"])
            let reply = Message.error(ErrorReply(code: error.code, field: error.field, message: error.message))
            replies = items.map { _ in reply }
            // Nothing was committed: the releases must be applied by a later job; staged leases not given
            // back return when they expire.
            holdersToRelease.append(contentsOf: job.releaseHolders)
            for release in job.stagedReleases { forgetPush(release.id, sessionID: release.holder) }
            rearmNeeded = true
        }
        let flushedEarlierJobs = (try? result.get().committed) == true
        answer(items, with: replies, job: job.sequence)
        if flushed {
            hasUnsyncedCommits = false
            sendHeldReplies(through: job.sequence, flushFailure: nil)
        }
        if !flushedEarlierJobs && !repliesAwaitingFlush.isEmpty && !isFlushing {
            // This job did not flush the file for the replies held before it; a stream of such jobs must not
            // hold them back.
            startFlush()
        }
        if !items.isEmpty {
            // The requests may have made tasks due (adds, resumes, retries) or freed slots (acks).
            dispatchNeeded = true
            rearmNeeded = true
        }
        if isShuttingDown {
            finishShutdown()
        }
        trimHeapAfterLargeAdds(items)
    }

    /// After a job that added at least `heapTrimTaskThreshold` tasks, hands the heap's free pages back to the
    /// system (`malloc_trim`). Decoding and applying a large request frees tens of MiB that glibc otherwise keeps
    /// (it raises its mmap threshold after large frees): measured, RssAnon after ten 100k-task batches went from
    /// 95.5 to 49.4 MiB (`git show 4615f6e:BENCHMARKS.md`, 5.5).
    ///
    /// The trim runs on a pool thread, one at a time: on a heap of hundreds of MiB it takes 1–6 ms, which the
    /// loop must not spend. Its arena locks can still make a loop-thread allocation wait, but only right after a
    /// request whose decoding already held the loop for far longer.
    func trimHeapAfterLargeAdds(_ items: [QueuedRequest]) {
        var added = 0
        for item in items {
            if case .write(.addTasks(let request)) = item.kind { added += request.tasks.count }
        }
        guard added >= Self.heapTrimTaskThreshold else { return }
        // This job's requests (most of the memory to return) are freed only after `storeJobFinished` returns,
        // and the pool may run the trim before that: a second trim follows the first, whose completion the loop
        // runs after this job is gone.
        isHeapTrimPending = true
        trimHeap()
    }

    /// Starts a `malloc_trim` on the pool, or, while one runs, leaves `isHeapTrimPending` for its completion,
    /// which then starts one more: memory freed after a trim began is returned by the next one.
    func trimHeap() {
        guard !isShuttingDown, let loop else { return }
        guard !isTrimmingHeap else {
            isHeapTrimPending = true
            return
        }
        isTrimmingHeap = true
        do {
            try BackgroundWork.run(on: loop, { _ = malloc_trim(0) }, completion: { [unowned self] in
                self.isTrimmingHeap = false
                guard self.isHeapTrimPending else { return }
                self.isHeapTrimPending = false
                self.trimHeap()
            })
        } catch {
            // No pool thread: the memory stays with the heap, as it would without the trim.
            isTrimmingHeap = false
        }
    }

    /// Serves every allocation of 1 MiB or more with its own `mmap`, so that it goes back to the system when
    /// freed: a large request's buffer, its decoded tasks, the store's index queue. glibc's default threshold
    /// starts at 128 KiB but rises to the size of each large block freed (up to 32 MiB), after which such blocks
    /// come from the heap or a thread's arena and stay there, fragmented, when freed; `malloc_trim` returned only
    /// part of them. Measured (`taskshed-bench scale`, ten batch adds of 100k tasks): RssAnon after the adds 91.4
    /// → 17.1 MiB, after the next add and drain 59.4 → 10.9–18.2 MiB; batch add and drain rates within noise
    /// (`git show 4615f6e:BENCHMARKS.md`, 5.9). Process-wide: called once by `run()`.
    static func configureHeap() {
        // mallopt returns 0 only for an unknown parameter; glibc knows this one.
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    }

    /// Sizes libuv's thread pool (read once, at its first job) unless the environment does: the daemon can
    /// have a store job, a flush, a background read, a heap trim and a large-frame decode on it at once, and
    /// libuv's default of 4 threads would make one of them wait for another. Process-wide: called by `run()`.
    static func configureThreadPool() {
        setenv("UV_THREADPOOL_SIZE", "8", 0)
    }

    /// Tasks added by one job from which `trimHeapAfterLargeAdds` trims the heap.
    static let heapTrimTaskThreshold = 10_000

    /// Sends the replies of a job's requests, in order. When one of them is a durable change and syncing is on,
    /// all are held until the change is on disk (see `repliesNeedFlush`): a success reply means the change is
    /// on disk.
    func answer(_ items: [QueuedRequest], with replies: [Message], job: UInt64) {
        var hold = false
        var revalidate = false
        for item in items {
            guard case .write(let message) = item.kind else { continue }
            // A shared store's COMMIT is durable when it returns; LMDB's needs the server's flush.
            if configuration.sync && Self.isDurable(message) && store?.lmdb != nil { hold = true }
            // A shared store's job re-read its staged tasks itself (`StoreJob.revalidateIDs`).
            if Self.mayChangeOtherLeases(message) && store?.lmdb != nil { revalidate = true }
        }
        // Before the replies: a worker sees the REVOKE of a task written ahead before the client that changed
        // the task sees its reply.
        if revalidate && hasDeliveriesToRevalidate {
            revalidateStaged()
        }
        for (index, item) in items.enumerated() {
            item.session.queuedRequests -= 1
            guard !item.session.isClosing else { continue }
            let reply = index < replies.count
                ? replies[index] : .error(ErrorReply(code: .internalError, message: "the write produced no reply"))
            if hold {
                repliesAwaitingFlush.append(HeldReply(session: item.session, requestID: item.requestID, message: reply,
                                                      job: job))
            } else {
                send(Frame(requestID: item.requestID, message: reply), to: item.session)
            }
        }
    }
}

/// Callbacks named by other daemons' notifications since the loop last looked, handed from the listener thread
/// to the loop thread; `nil` means all of them (a re-read after a reconnection, or a notification for many).
final class NotifiedCallbacks: Sendable {
    private let pending = Mutex<Set<String>?>(Set())

    /// Adds the callbacks of a notification (`nil`: all).
    func add(_ callbacks: [String]?) {
        pending.withLock { set in
            guard let callbacks else {
                set = nil
                return
            }
            set?.formUnion(callbacks)
        }
    }

    /// The callbacks added since the last call (`nil`: all), and starts over.
    func take() -> Set<String>? {
        pending.withLock { set in
            defer { set = Set() }
            return set
        }
    }
}
