import Logging
import TaskShedEventLoop
import TaskShedProtocol
import TaskShedStore

extension Server {
    /// Claims due tasks for every subscription with free capacity and pushes them, fairly: subscriptions take
    /// turns (the first one considered rotates every round), each turn claiming one task when others compete
    /// for the same callbacks, or all its free capacity when nobody else serves them.
    ///
    /// The claims commit without a disk flush: a lease only matters while this daemon runs (the next start
    /// releases every lease), so flushing would add a disk write to every task's lag for nothing (see
    /// `openStore()`).
    func dispatch() {
        dispatchNeeded = false
        // A stopping daemon hands out nothing more: those leases would only be void at the next start.
        guard !isShuttingDown else { return }
        let now = WallClock.nowMicros()
        let releases = holdersToRelease
        holdersToRelease.removeAll()
        let leaseDeadline = storeEarliestLeaseDeadline()
        let expire = leaseDeadline.map { $0 <= now } ?? false
        // Only callbacks with a task due now are worth a claim: one index seek each, instead of a write
        // transaction of empty claims after every commit.
        var dueCallbacks: [String: Bool] = [:]
        func isDue(_ callback: String) -> Bool {
            if let known = dueCallbacks[callback] { return known }
            let due = storeEarliestRunAt(callback: callback).map { $0 <= now } ?? false
            dueCallbacks[callback] = due
            return due
        }
        let ordered = sessions.keys.sorted()
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
                    let tasks = try batch.claim(callbacks: subscription.callbacks, max: alone ? free : 1,
                                                holder: session.id, leaseDeadline: now + subscription.leaseMicros,
                                                now: now)
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
        let pushedAt = WallClock.nowMicros()
        for (session, task) in outcome.pushes {
            guard let subscription = session.subscription else { continue }
            session.pushed[task.id] = task.attempt
            pushedHolders[task.id] = session.id
            if task.attempt <= 1 { lag.record(pushedAt - task.runAt) }
            send(Frame(requestID: subscription.requestID, message: .delivery(task)), to: session)
        }
        rearmNeeded = true
    }

    /// Arms the timer for the next moment something can happen: the earliest due time among callbacks that
    /// have a worker with free capacity, or the earliest lease deadline. A due task nobody can take does not
    /// arm the timer (it waits for a subscribe or a freed slot, which trigger a dispatch themselves).
    func rearm() {
        rearmNeeded = false
        guard let timer else { return }
        var deadline = storeEarliestLeaseDeadline()
        var callbacks = Set<String>()
        for session in sessions.values where session.freeCapacity > 0 {
            for callback in session.subscription?.callbacks ?? [] { callbacks.insert(callback) }
        }
        for callback in callbacks {
            if let runAt = storeEarliestRunAt(callback: callback) {
                deadline = min(deadline ?? runAt, runAt)
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
