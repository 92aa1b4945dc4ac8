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
}

/// A lease to give back without counting the attempt (a staged task that was never pushed).
struct StagedRelease {
    let id: String
    let attempt: UInt32
    let holder: UInt64
}

extension Server {
    /// Claims due tasks for every subscription with free capacity and pushes them, fairly: subscriptions take
    /// turns (the first one considered rotates every round), each turn claiming one task when others compete
    /// for the same callbacks, or all its free capacity when nobody else serves them.
    ///
    /// Tasks due within the dispatch lead (`Configuration.dispatchLeadMicros`) are claimed ahead and staged:
    /// the claim's write transaction (tens of microseconds of LMDB work) then happens before the due time, and
    /// at the due time the timer only has to write the delivery to the socket. With a lead of 0 the claim
    /// happens when the task is due and the push follows its commit.
    ///
    /// The claims commit without a disk flush: a lease only matters while this daemon runs (the next start
    /// releases every lease), so flushing would add a disk write to every task's lag for nothing (see
    /// `openStore()`).
    func dispatch() {
        dispatchNeeded = false
        // A stopping daemon hands out nothing more: those leases would only be void at the next start.
        guard !isShuttingDown else { return }
        if pushStagedDeliveries(now: WallClock.nowMicros()) {
            // These are the deliveries whose due time woke the loop: out before anything else is done.
            flushDirtySessions()
        }
        releaseStaged()
        let now = WallClock.nowMicros()
        let horizon = now + configuration.dispatchLeadMicros
        let releases = holdersToRelease
        holdersToRelease.removeAll()
        let leaseDeadline = storeEarliestLeaseDeadline()
        let expire = leaseDeadline.map { $0 <= now } ?? false
        // Only callbacks with a task due by the horizon are worth a claim: one index seek each, instead of a
        // write transaction of empty claims after every commit.
        var dueCallbacks: [String: Bool] = [:]
        func isDue(_ callback: String) -> Bool {
            if let known = dueCallbacks[callback] { return known }
            let due = storeEarliestRunAt(callback: callback).map { $0 <= horizon } ?? false
            dueCallbacks[callback] = due
            return due
        }
        let ordered = sessionOrder
        var eligible: [ClientSession] = []
        if !ordered.isEmpty {
            let start = dispatchRound % ordered.count
            for index in 0..<ordered.count {
                guard let session = sessions[ordered[(start + index) % ordered.count]], session.freeCapacity > 0,
                      let subscription = session.subscription, subscription.callbacks.contains(where: isDue)
                else { continue }
                eligible.append(session)
            }
            dispatchRound &+= 1
        }
        guard !releases.isEmpty || expire || !eligible.isEmpty else { return }

        let reason = "worker disconnected"
        // The plan only reads server state and writes to the batch: the store may run it more than once.
        let result = storeDispatch { (batch: inout LMDBWriteBatch) throws(StoreError) -> DispatchOutcome in
            var outcome = DispatchOutcome()
            for holder in releases {
                outcome.released += try batch.releaseHolder(holder, reason: reason, now: now).count
            }
            if expire {
                outcome.expired = try batch.expireLeases(now: now)
            }
            // Callback → how many eligible sessions serve it: a session alone on its callbacks takes its whole
            // free capacity in one claim; otherwise sessions alternate one task at a time.
            var servers: [String: Int] = [:]
            for session in eligible {
                for callback in session.subscription?.callbacks ?? [] { servers[callback, default: 0] += 1 }
            }
            var active = eligible
            var granted: [UInt64: Int] = [:]
            while !active.isEmpty {
                var stillActive: [ClientSession] = []
                for session in active {
                    guard let subscription = session.subscription else { continue }
                    let free = session.freeCapacity - granted[session.id, default: 0]
                    if free <= 0 { continue }
                    let alone = subscription.callbacks.allSatisfy { servers[$0, default: 0] <= 1 }
                    // `now: horizon` makes the store take tasks due up to the horizon; `lastRunAt` is recorded
                    // as the horizon, at most the lead ahead of the real delivery.
                    let tasks = try batch.claim(callbacks: subscription.callbacks, max: alone ? free : 1,
                                                holder: session.id,
                                                leaseDeadline: horizon + subscription.leaseMicros, now: horizon)
                    if tasks.isEmpty { continue }
                    granted[session.id, default: 0] += tasks.count
                    for task in tasks { outcome.pushes.append((session, task)) }
                    if !alone && free - tasks.count > 0 { stillActive.append(session) }
                }
                active = stillActive
            }
            return outcome
        }
        let outcome: DispatchOutcome
        switch result {
        case .success(let value):
            outcome = value
        case .failure(let failure):
            logger.error("dispatch transaction failed; will retry at the next wake-up", metadata: ["error": "\(failure)"])
            // Nothing was committed: the releases must be applied next time.
            holdersToRelease.append(contentsOf: releases)
            rearmNeeded = true
            return
        }
        for record in outcome.expired {
            if let holder = pushedHolders.removeValue(forKey: record.id), let session = sessions[holder] {
                session.pushed[record.id] = nil
            }
        }
        if !outcome.expired.isEmpty {
            logger.info("leases expired; tasks are due again", metadata: ["taskshed.count": "\(outcome.expired.count)"])
        }
        if outcome.released > 0 {
            logger.info("leases of closed connections released; tasks are due again",
                        metadata: ["taskshed.count": "\(outcome.released)"])
        }
        let afterCommit = WallClock.nowMicros()
        for (session, task) in outcome.pushes {
            session.pushed[task.id] = task.attempt
            pushedHolders[task.id] = session.id
            if task.runAt <= afterCommit {
                push(task, to: session, at: afterCommit)
            } else {
                stage(StagedDelivery(sessionID: session.id, task: task))
            }
        }
        rearmNeeded = true
    }

    /// Sends one leased task to its worker as a DELIVERY carrying the subscription's request id.
    func push(_ task: TaskRecord, to session: ClientSession, at pushedAt: Int64) {
        guard let subscription = session.subscription, !session.isClosing else {
            // The worker unsubscribed or is going away before the push: give the lease back uncounted.
            stagedReleases.append(StagedRelease(id: task.id, attempt: task.attempt, holder: session.id))
            dispatchNeeded = true
            return
        }
        if task.attempt <= 1 { lag.record(pushedAt - task.runAt) }
        send(Frame(requestID: subscription.requestID, message: .delivery(task)), to: session)
    }

    /// Keeps a claimed task until its due time (in due order).
    func stage(_ delivery: StagedDelivery) {
        let index = staged.firstIndex { $0.task.runAt > delivery.task.runAt } ?? staged.count
        staged.insert(delivery, at: index)
    }

    /// Pushes every staged task that is due by `now`.
    /// - Returns: Whether anything was pushed.
    @discardableResult
    func pushStagedDeliveries(now: Int64) -> Bool {
        guard let first = staged.first, first.task.runAt <= now else { return false }
        let count = staged.firstIndex { $0.task.runAt > now } ?? staged.count
        let due = staged[0..<count]
        staged.removeFirst(count)
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
        guard !staged.isEmpty, let store else { return }
        let records: [TaskRecord]
        do {
            records = try store.fetch(.ids(staged.map(\.task.id)))
        } catch {
            logger.error("cannot re-check staged deliveries: \(error)")
            return
        }
        var current: [String: TaskRecord] = [:]
        for record in records { current[record.id] = record }
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
        staged = kept
        rearmNeeded = true
    }

    func forgetPush(_ taskID: String, sessionID: UInt64) {
        sessions[sessionID]?.pushed[taskID] = nil
        pushedHolders[taskID] = nil
    }

    /// Gives back leases of staged tasks that were never pushed, without counting an attempt. Each release
    /// runs isolated: one whose lease changed meanwhile fails alone.
    func releaseStaged() {
        guard !stagedReleases.isEmpty, let store else { return }
        let releases = stagedReleases
        stagedReleases.removeAll()
        defer { storeChanged() }
        do {
            try store.write { (batch: inout LMDBWriteBatch) throws(StoreError) in
                for release in releases {
                    _ = try? batch.release(id: release.id, attempt: release.attempt, holder: release.holder)
                }
            }
            hasUnsyncedCommits = true
        } catch {
            logger.error("cannot give back staged leases; they return when they expire", metadata: ["error": "\(error)"])
        }
        for release in releases { forgetPush(release.id, sessionID: release.holder) }
    }

    /// Arms the timer for the next moment something can happen: a staged delivery's due time, the dispatch
    /// lead before the earliest due time among callbacks that have a worker with free capacity, or the
    /// earliest lease deadline. A due task nobody can take does not arm the timer (it waits for a subscribe or
    /// a freed slot, which trigger a dispatch themselves).
    func rearm() {
        rearmNeeded = false
        guard let timer else { return }
        var deadline = storeEarliestLeaseDeadline()
        if let first = staged.first {
            deadline = min(deadline ?? first.task.runAt, first.task.runAt)
        }
        var callbacks = Set<String>()
        for session in sessions.values where session.freeCapacity > 0 {
            for callback in session.subscription?.callbacks ?? [] { callbacks.insert(callback) }
        }
        for callback in callbacks {
            if let runAt = storeEarliestRunAt(callback: callback) {
                let claimAt = runAt - configuration.dispatchLeadMicros
                deadline = min(deadline ?? claimAt, claimAt)
            }
        }
        guard let next = deadline else {
            timer.disarm()
            return
        }
        let now = WallClock.nowMicros()
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
