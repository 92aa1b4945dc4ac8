import TaskShedEventLoop
import TaskShedProtocol

/// Delivery ahead of the due time (SUBSCRIBE_AHEAD, protocol version 3).
///
/// A subscription that asks for it is written each task up to its lead before the task is due, and its worker
/// starts the task from its own timer at `run_at`: the daemon's timer wake-up, the socket hop and the worker's
/// decoding are then behind the worker, not in the task's lateness. The daemon keeps every task written ahead
/// in `ClientSession.pushedAhead` until its due time passes. A change committed before then that leaves the
/// delivery void (the task removed, replaced, paused or rescheduled) ends the lease and sends `REVOKE`, before
/// the reply to the change: a worker that reads what has reached its socket before it starts a task never
/// starts one whose change the changing client saw confirmed before the due time. A connection that closes
/// before a task's due time gives it back uncounted: its worker cannot have started it.
extension Server {
    /// Remembers a task written ahead of its due time.
    func recordAheadPush(_ task: TaskRecord, to session: ClientSession, requestID: UInt32) {
        session.pushedAhead[task.id] = AheadPush(task: task, requestID: requestID)
        aheadSessions.insert(session.id)
    }

    /// Forgets a task written ahead (settled, expired, revoked, or given back).
    func forgetAheadPush(_ taskID: String, sessionID: UInt64) {
        guard aheadSessions.contains(sessionID), let session = sessions[sessionID] else { return }
        session.pushedAhead[taskID] = nil
        if session.pushedAhead.isEmpty { aheadSessions.remove(sessionID) }
    }

    /// The ids of the tasks written ahead whose due time is after `now`; those already due are forgotten (their
    /// workers may have started them: a change from now on is one to a running task).
    func pushedAheadIDs(now: Int64) -> [String] {
        var ids: [String] = []
        for sessionID in Array(aheadSessions) {
            guard let session = sessions[sessionID] else {
                aheadSessions.remove(sessionID)
                continue
            }
            session.pushedAhead = session.pushedAhead.filter { $0.value.task.runAt > now }
            if session.pushedAhead.isEmpty {
                aheadSessions.remove(sessionID)
            } else {
                ids.append(contentsOf: session.pushedAhead.keys)
            }
        }
        return ids
    }

    /// Revokes the tasks written ahead, not yet due, whose record (`current`, by id; absent = removed) is no
    /// longer the one written: the worker is sent `REVOKE`, the slot is freed, and a lease the change left in
    /// place (a paused or rescheduled task) is given back uncounted.
    func revokeChangedAheadPushes(_ current: [String: TaskRecord]) {
        guard !aheadSessions.isEmpty else { return }
        let now = WallClock.nowMicros()
        var revoked = false
        // Written out at once, not at the iteration's end: the change's reply, which follows, must not reach its
        // client before the REVOKE reaches the worker's socket.
        defer { if revoked { flushDirtySessions() } }
        for sessionID in Array(aheadSessions) {
            guard let session = sessions[sessionID] else {
                aheadSessions.remove(sessionID)
                continue
            }
            for (id, push) in session.pushedAhead {
                let written = push.task
                if written.runAt <= now {
                    session.pushedAhead[id] = nil
                    continue
                }
                let record = current[id]
                let stillOurs = record?.state == .leased && record?.attempt == written.attempt
                    && record?.leaseDeadline == written.leaseDeadline
                if stillOurs && record?.paused == false && record?.runAt == written.runAt { continue }
                session.pushedAhead[id] = nil
                session.pushed[id] = nil
                pushedHolders[id] = nil
                if stillOurs {
                    stagedReleases.append(StagedRelease(id: id, attempt: written.attempt, holder: sessionID))
                }
                dispatchNeeded = true
                if !session.isClosing {
                    revoked = true
                    send(Frame(requestID: push.requestID,
                               message: .revoke(LeaseRef(id: id, attempt: written.attempt))), to: session)
                }
            }
            if session.pushedAhead.isEmpty { aheadSessions.remove(sessionID) }
        }
    }

    /// A closing session: the tasks written ahead whose due time has not come go back uncounted (its worker
    /// never started them), before the release of the rest of its leases counts their attempts.
    func returnAheadPushes(of session: ClientSession) {
        defer {
            session.pushedAhead.removeAll()
            aheadSessions.remove(session.id)
        }
        guard !session.pushedAhead.isEmpty else { return }
        let now = WallClock.nowMicros()
        for (id, push) in session.pushedAhead where push.task.runAt > now && session.pushed[id] == push.task.attempt {
            stagedReleases.append(StagedRelease(id: id, attempt: push.task.attempt, holder: session.id))
        }
    }
}
