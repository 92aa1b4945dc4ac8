import Logging
import TaskShedEventLoop
import TaskShedProtocol
import TaskShedStore

/// A task claimed for a worker shortly before it is due, waiting in memory for its due time.
struct StagedDelivery {
    /// The session it is leased to.
    let sessionID: UInt64
    /// The leased record, as the claim returned it.
    let task: TaskRecord
    /// When to write it: its due time, less the subscription's lead for SUBSCRIBE_AHEAD.
    let pushAt: Int64
}

/// A lease to give back without counting the attempt (a staged task that was never pushed).
struct StagedRelease {
    let id: String
    let attempt: UInt32
    let holder: UInt64
}

extension Server {
    /// Fills in the dispatch part of the next store job: leases of closed connections to release, whether
    /// leases expired, and the subscriptions with free capacity that are to claim (rotating the first one
    /// considered every round, for fairness; the job claims for them in that order).
    ///
    /// Tasks due within the dispatch lead (`Configuration.dispatchLeadMicros`) are claimed ahead and staged:
    /// the claim's write transaction, commit and flush of data pages then happen on the thread pool before
    /// the due time, and at the due time the loop only writes the delivery to the socket.
    /// - Parameter force: Claim for every subscription with free capacity (the job applies requests, which can
    ///   make tasks due that the committed indexes do not show yet); otherwise only for those whose callbacks
    ///   have a task due by the horizon, unless the job also ends leases.
    func planDispatch(into job: inout StoreJob, force: Bool) {
        dispatchNeeded = false
        job.releaseHolders = holdersToRelease
        holdersToRelease.removeAll()
        // A stopping daemon hands out nothing more: those leases would only be void at the next start.
        guard !isShuttingDown else { return }
        job.expireLeases = storeEarliestLeaseDeadline().map { $0 <= job.now } ?? false
        // Leases that end in this job make tasks due that the committed indexes do not show as due yet.
        let force = force || job.expireLeases || !job.releaseHolders.isEmpty || !job.stagedReleases.isEmpty
        // Only callbacks with a task due by the horizon are worth a claim: one index seek each.
        var dueCallbacks: [String: Bool] = [:]
        func isDue(_ callback: String) -> Bool {
            if force { return true }
            if let known = dueCallbacks[callback] { return known }
            let due = storeEarliestRunAt(callback: callback).map { $0 <= job.horizon } ?? false
            dueCallbacks[callback] = due
            return due
        }
        let ordered = sessionOrder
        guard !ordered.isEmpty else { return }
        let start = dispatchRound % ordered.count
        for index in 0..<ordered.count {
            guard let session = sessions[ordered[(start + index) % ordered.count]], session.freeCapacity > 0,
                  let subscription = session.subscription, subscription.callbacks.contains(where: isDue)
            else { continue }
            let allowance = claimAllowance(for: session)
            guard allowance > 0 else { continue }
            job.candidates.append(DispatchCandidate(sessionID: session.id, callbacks: subscription.callbacks,
                                                    free: allowance, leaseMicros: subscription.leaseMicros))
        }
        dispatchRound &+= 1
    }

    /// Applies the dispatch part of a finished job: forgets expired leases, pushes the claimed tasks that are
    /// due, stages the others until their due time.
    func deliver(_ result: StoreJobResult, of job: StoreJob) {
        for release in job.stagedReleases { forgetPush(release.id, sessionID: release.holder) }
        for record in result.expired {
            if let holder = pushedHolders.removeValue(forKey: record.id), let session = sessions[holder] {
                session.pushed[record.id] = nil
                forgetAheadPush(record.id, sessionID: holder)
            }
        }
        if !result.expired.isEmpty {
            logger.info("leases expired; tasks are due again", metadata: ["taskshed.count": "\(result.expired.count)"])
        }
        if result.released > 0 {
            logger.info("leases of closed connections released; tasks are due again",
                        metadata: ["taskshed.count": "\(result.released)"])
        }
        if let failure = result.dispatchFailure {
            logger.error("dispatch failed; will retry at the next wake-up", metadata: ["error": "\(failure)"])
            // The releases did not happen: they are tried again by the next job.
            holdersToRelease.append(contentsOf: job.releaseHolders)
        }
        let now = WallClock.nowMicros()
        var claimed: [UInt64: Int] = [:]
        for (sessionID, task) in result.pushes {
            claimed[sessionID, default: 0] += 1
            guard let session = sessions[sessionID], session.subscription != nil, !session.isClosing else {
                // The connection closed or unsubscribed while the job ran: give the lease back uncounted (the
                // worker never saw the task).
                stagedReleases.append(StagedRelease(id: task.id, attempt: task.attempt, holder: sessionID))
                dispatchNeeded = true
                continue
            }
            session.pushed[task.id] = task.attempt
            pushedHolders[task.id] = session.id
            let pushAt = task.runAt - (session.subscription?.aheadMicros ?? 0)
            if pushAt <= now {
                push(task, to: session, at: now)
            } else {
                stage(StagedDelivery(sessionID: session.id, task: task, pushAt: pushAt))
            }
        }
        // A candidate that got all it was allowed may have more due: claim again (its allowance was cut to what
        // its socket can soon take, see `claimAllowance`).
        if job.candidates.contains(where: { claimed[$0.sessionID, default: 0] >= $0.free }) { dispatchNeeded = true }
        rearmNeeded = true
    }

    /// Sends one leased task to its worker as a DELIVERY carrying the subscription's request id (or holds it
    /// until the worker's socket takes more: `writeOrHold`).
    func push(_ task: TaskRecord, to session: ClientSession, at pushedAt: Int64) {
        guard let subscription = session.subscription, !session.isClosing else {
            // The worker unsubscribed or is going away before the push: give the lease back uncounted.
            stagedReleases.append(StagedRelease(id: task.id, attempt: task.attempt, holder: session.id))
            dispatchNeeded = true
            return
        }
        writeOrHold(task, to: session, subscription: subscription, at: pushedAt)
    }

    /// Keeps a claimed task until its push time (in push-time order).
    func stage(_ delivery: StagedDelivery) {
        staged.insert(delivery)
    }

    /// Pushes every staged task whose push time has come by `now`.
    /// - Returns: Whether anything was pushed.
    @discardableResult
    func pushStagedDeliveries(now: Int64) -> Bool {
        guard let first = staged.first, first.pushAt <= now else { return false }
        let due = staged.takeDue(now: now)
        for delivery in due {
            guard let session = sessions[delivery.sessionID] else { continue }
            push(delivery.task, to: session, at: now)
        }
        return true
    }

    /// Stops staged deliveries of a session (it closed or unsubscribed): their leases go back uncounted.
    func unstage(sessionID: UInt64) {
        guard staged.contains(where: { $0.sessionID == sessionID }) else { return }
        for delivery in staged where delivery.sessionID == sessionID {
            stagedReleases.append(StagedRelease(id: delivery.task.id, attempt: delivery.task.attempt,
                                                holder: sessionID))
            if let session = sessions[sessionID] { session.pushed[delivery.task.id] = nil }
            pushedHolders[delivery.task.id] = nil
        }
        staged.removeAll { $0.sessionID == sessionID }
        dispatchNeeded = true
        rearmNeeded = true
    }

    /// After a commit that may have changed staged tasks (removed, replaced, paused, rescheduled), drops the
    /// staged deliveries whose record is no longer exactly what was claimed; those still leased to their
    /// session are given back.
    func revalidateStaged() {
        guard hasDeliveriesToRevalidate, let store = store?.lmdb else { return }
        do {
            revalidateStaged(try store.fetch(.ids(stagedAndHeldIDs())))
        } catch {
            logger.error("cannot re-check staged deliveries: \(error)")
        }
    }

    /// Whether a change to a task may concern a delivery not yet due here: staged, held for a full socket, or
    /// written ahead.
    var hasDeliveriesToRevalidate: Bool {
        !staged.isEmpty || !holdingSessions.isEmpty || !aheadSessions.isEmpty
    }

    /// The ids of the staged deliveries, of those held for sockets that were full, and of those written ahead
    /// whose due time has not come.
    func stagedAndHeldIDs() -> [String] {
        var ids = staged.map(\.task.id)
        ids.append(contentsOf: pushedAheadIDs(now: WallClock.nowMicros()))
        for id in holdingSessions {
            guard let session = sessions[id] else { continue }
            ids.append(contentsOf: session.heldDeliveries[session.heldHead...].map(\.id))
        }
        return ids
    }

    /// `revalidateStaged()` with the current `records` of `stagedAndHeldIDs()` (read by a shared store's
    /// job, or on the loop for LMDB).
    func revalidateStaged(_ records: [TaskRecord]) {
        guard hasDeliveriesToRevalidate else { return }
        var current: [String: TaskRecord] = [:]
        for record in records { current[record.id] = record }
        revokeChangedAheadPushes(current)
        var kept: [StagedDelivery] = []
        for delivery in staged {
            let claimed = delivery.task
            guard let now = current[claimed.id] else {
                forgetPush(claimed.id, sessionID: delivery.sessionID)
                continue
            }
            let stillOurs = now.state == .leased && now.attempt == claimed.attempt
                && now.leaseDeadline == claimed.leaseDeadline
            if stillOurs && !now.paused && now.runAt == claimed.runAt {
                kept.append(delivery)
                continue
            }
            forgetPush(claimed.id, sessionID: delivery.sessionID)
            if stillOurs {
                stagedReleases.append(StagedRelease(id: claimed.id, attempt: claimed.attempt, holder: delivery.sessionID))
                dispatchNeeded = true
            }
        }
        staged = StagedQueue(kept)
        for id in holdingSessions {
            guard let session = sessions[id] else { continue }
            var held: [TaskRecord] = []
            for claimed in session.heldDeliveries[session.heldHead...] where session.pushed[claimed.id] == claimed.attempt {
                let now = current[claimed.id]
                let stillOurs = now?.state == .leased && now?.attempt == claimed.attempt
                    && now?.leaseDeadline == claimed.leaseDeadline
                if stillOurs && now?.paused == false && now?.runAt == claimed.runAt {
                    held.append(claimed)
                } else if stillOurs {
                    giveBack(claimed, from: session)
                } else {
                    forgetPush(claimed.id, sessionID: session.id)
                }
            }
            session.heldDeliveries = held
            session.heldHead = 0
        }
        for id in Array(holdingSessions) {
            if let session = sessions[id] { compactHeldDeliveries(of: session) } else { holdingSessions.remove(id) }
        }
        rearmNeeded = true
    }

    func forgetPush(_ taskID: String, sessionID: UInt64) {
        sessions[sessionID]?.pushed[taskID] = nil
        pushedHolders[taskID] = nil
        forgetAheadPush(taskID, sessionID: sessionID)
    }

    /// How long before its due time a task is claimed: the configured lead, or, while store jobs take long
    /// (a 100,000-task batch holds the writer for hundreds of milliseconds), twice the longest job of the last
    /// five seconds, at most 2 s. A task that falls due during a long job is then claimed by an earlier one and
    /// pushed from memory on time, instead of waiting for the long job's commit. A configured lead of 0 stays 0.
    var dispatchLeadMicros: Int64 {
        let configured = configuration.dispatchLeadMicros
        guard configured > 0 else { return 0 }
        return max(configured, min(Self.maxAdaptiveLeadMicros, 2 * longJobMicros))
    }

    /// The longest lead `dispatchLeadMicros` takes for long store jobs.
    static let maxAdaptiveLeadMicros: Int64 = 2_000_000

    /// Keeps the longest store job of the last five seconds (`dispatchLeadMicros`).
    func recordJobDuration(_ nanos: UInt64) {
        let micros = Int64(clamping: nanos / 1_000)
        let now = WallClock.monotonicNanos()
        if micros >= longJobMicros || now &- longJobAtNanos > 5_000_000_000 {
            longJobMicros = micros
            longJobAtNanos = now
        }
    }

    /// Arms the timer for the next moment something can happen: a staged delivery's due time, the dispatch
    /// lead before the earliest due time among callbacks that have a worker with free capacity, or the
    /// earliest lease deadline. A due task nobody can take does not arm the timer (it waits for a subscribe or
    /// a freed slot, which trigger a dispatch themselves).
    ///
    /// While a store job runs, store deadlines already past are left out: only the job's completion can act
    /// on them (it re-arms), and arming for them would spin the loop meanwhile. Staged deliveries always
    /// count: they are pushed from memory, whatever the store is doing.
    func rearm() {
        rearmNeeded = false
        guard let timer else { return }
        let now = WallClock.nowMicros()
        var deadline: Int64?
        func consider(_ time: Int64, fromStore: Bool) {
            if fromStore && jobInFlight && time <= now { return }
            deadline = min(deadline ?? time, time)
        }
        if let lease = storeEarliestLeaseDeadline() { consider(lease, fromStore: true) }
        if let first = staged.first { consider(first.pushAt, fromStore: false) }
        var callbacks = Set<String>()
        for session in sessions.values where session.freeCapacity > 0 {
            for callback in session.subscription?.callbacks ?? [] { callbacks.insert(callback) }
        }
        for callback in callbacks {
            if let runAt = storeEarliestRunAt(callback: callback) {
                consider(runAt - dispatchLeadMicros, fromStore: true)
            }
        }
        guard let next = deadline else {
            timer.disarm()
            return
        }
        var target = next
        if next <= now {
            // A deadline already past: usually a task that became due after this iteration's dispatch read the
            // clock, so fire at once. If the same past deadline comes back after a dispatch round, that round
            // could not take it; retry a millisecond later instead of spinning.
            if spinGuardDeadline == next {
                target = now + 1_000
                logger.debug("due task not claimable yet; retrying in 1 ms", metadata: ["taskshed.run_at": "\(next)"])
            }
            spinGuardDeadline = next
        } else {
            spinGuardDeadline = nil
        }
        do {
            try timer.arm(atMicros: target)
        } catch {
            logger.error("cannot arm the task timer: \(error)")
        }
    }
}
