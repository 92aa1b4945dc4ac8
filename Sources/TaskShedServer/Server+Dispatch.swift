import Logging
import TaskShedEventLoop
import TaskShedProtocol

/// The store operations one dispatch round needs, inside one (unsynced) write transaction.
protocol DispatchOperations {
    /// Makes every task leased to `holder` due again at once; returns how many.
    mutating func releaseHolder(_ holder: UInt64) throws -> Int
    /// Makes every task whose lease ended by `now` due again; returns the (task id, holder) pairs.
    mutating func expireLeases(now: Int64) throws -> [(id: String, holder: UInt64)]
    /// Leases up to `max` due tasks of `callbacks` to `holder` until `deadline`.
    mutating func claim(callbacks: [String], max: Int, holder: UInt64, deadline: Int64, now: Int64) throws -> [TaskRecord]
}

extension Server {
    /// Claims due tasks for every subscription with free capacity and pushes them, fairly: subscriptions take
    /// turns (the first one considered rotates every round), each turn claiming one task when others compete
    /// for the same callbacks, or all its free capacity when nobody else serves them.
    ///
    /// The claims commit without fsync: a lease only matters while this daemon runs (the next start releases
    /// every lease), so making it durable would add a disk flush to every task's lag for nothing.
    func dispatch() {
        dispatchNeeded = false
        let now = WallClock.nowMicros()
        let releases = holdersToRelease
        holdersToRelease.removeAll()
        let leaseDeadline = storeEarliestLeaseDeadline()
        let expire = leaseDeadline.map { $0 <= now } ?? false
        let ordered = sessions.keys.sorted()
        var eligible: [ClientSession] = []
        if !ordered.isEmpty {
            let start = dispatchRound % ordered.count
            for index in 0..<ordered.count {
                if let session = sessions[ordered[(start + index) % ordered.count]], session.freeCapacity > 0 {
                    eligible.append(session)
                }
            }
            dispatchRound &+= 1
        }
        guard !releases.isEmpty || expire || !eligible.isEmpty else { return }

        var pushes: [(ClientSession, TaskRecord)] = []
        var released = 0
        var expired: [(id: String, holder: UInt64)] = []
        let outcome = storeDispatchTransaction { (operations: inout any DispatchOperations) throws in
            for holder in releases {
                released += try operations.releaseHolder(holder)
            }
            if expire {
                expired = try operations.expireLeases(now: now)
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
                    let tasks = try operations.claim(callbacks: subscription.callbacks, max: alone ? free : 1,
                                                     holder: session.id, deadline: now + subscription.leaseMicros,
                                                     now: now)
                    if tasks.isEmpty { continue }
                    granted[session.id, default: 0] += tasks.count
                    for task in tasks { pushes.append((session, task)) }
                    if !alone && free - tasks.count > 0 { stillActive.append(session) }
                }
                active = stillActive
            }
        }
        if let failure = outcome {
            logger.error("dispatch transaction failed; will retry at the next wake-up", metadata: ["error": "\(failure)"])
            // Nothing was committed: the releases must be applied next time.
            holdersToRelease.append(contentsOf: releases)
            rearmNeeded = true
            return
        }
        for (id, holder) in expired {
            if let session = sessions[holder] { session.pushed[id] = nil }
        }
        if !expired.isEmpty {
            logger.info("leases expired; tasks are due again", metadata: ["taskshed.count": "\(expired.count)"])
        }
        if released > 0 {
            logger.debug("released leases of closed connections", metadata: ["taskshed.count": "\(released)"])
        }
        let pushedAt = WallClock.nowMicros()
        for (session, task) in pushes {
            guard let subscription = session.subscription else { continue }
            session.pushed[task.id] = task.attempt
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
