import TaskShedEventLoop
import TaskShedProtocol

/// Flow control in both directions, and the limits on what one connection can make the daemon hold.
///
/// - Pushes: a connection is written deliveries while fewer than `pushWindowBytes` of its output wait for the
///   kernel; the rest are held, leased, in `ClientSession.heldDeliveries` and written as the peer reads
///   (`Connection.onDrained`). A claim takes for one connection only what fits `claimWindowBytes`. Held
///   deliveries that the peer never got are given back uncounted when it goes away, unsubscribes, or its lease
///   is about to end.
/// - Replies: past `Configuration.maxOutputBytes` unread, the daemon decodes no more of that connection's
///   requests (they wait in its decoder, within the input budget) and answers none of its queued reads until
///   the peer has read its output. Its socket is still read: a worker's ACKs sent before it closes must be
///   seen (PROTOCOL.md section 8), and its end completes them.
/// - `SLOW_CONSUMER` only for a peer that reads nothing of its waiting output for
///   `Configuration.slowConsumerTimeoutMicros`; `FRAME_TIMEOUT` for a frame that stops arriving.
/// - Input memory: frames before `HELLO` are small (`ProtocolLimits.maxHandshakeFrameBytes`); partly received
///   frames of all connections together stay within `Configuration.maxInputBytes` (the largest holder is closed
///   with `OVERLOADED`); connections waiting for `HELLO` have their own allowance
///   (`Configuration.maxHandshakingConnections`, the oldest is closed to make room).
extension Server {
    /// Unwritten output below which a connection is written more deliveries. Small enough that a peer that
    /// stops reading holds little, large enough that a reading peer never waits for the next delivery: the
    /// kernel's socket buffer alone holds ~200 KiB.
    static let pushWindowBytes = 1 << 20
    /// Most delivery bytes one store job claims for one connection (by its average delivery size): tasks
    /// beyond what its socket can soon take would only sit leased in memory, and pushing 50,000 deliveries of
    /// 4 KiB at once would hold the loop for hundreds of milliseconds.
    static let claimWindowBytes = 4 << 20

    /// How many tasks the next claim may lease for a session: its free capacity, within `claimWindowBytes`, and
    /// none while deliveries already claimed for it wait for its socket.
    func claimAllowance(for session: ClientSession) -> Int {
        let free = session.freeCapacity
        guard free > 0, !session.holdsDeliveries else { return 0 }
        return min(free, max(1, Self.claimWindowBytes / max(1, session.deliveryBytesEstimate)))
    }

    /// Writes one leased task as a DELIVERY, or holds it while the connection's unwritten output is past the
    /// push window (or earlier deliveries are held: order is kept).
    func writeOrHold(_ task: TaskRecord, to session: ClientSession, subscription: Subscription, at pushedAt: Int64) {
        if session.holdsDeliveries || session.connection.pendingOutputBytes >= Self.pushWindowBytes {
            if !session.holdsDeliveries { holdingSessions.insert(session.id) }
            session.heldDeliveries.append(task)
            return
        }
        writeDelivery(task, to: session, subscription: subscription, at: pushedAt)
    }

    /// Encodes one DELIVERY into the session's output, records its lateness and its size.
    func writeDelivery(_ task: TaskRecord, to session: ClientSession, subscription: Subscription, at pushedAt: Int64) {
        // A task written ahead is not late: its worker starts it at its due time.
        if task.attempt <= 1 { lag.record(max(0, pushedAt - task.runAt)) }
        metrics.observeDelivery(callback: task.callback, attempt: task.attempt, latenessMicros: pushedAt - task.runAt)
        if task.runAt > pushedAt { recordAheadPush(task, to: session, requestID: subscription.requestID) }
        let before = session.connection.outputBuffer.count
        send(Frame(requestID: subscription.requestID, message: .delivery(task)), to: session)
        let size = session.connection.outputBuffer.count - before
        if size > 0 { session.deliveryBytesEstimate = (session.deliveryBytesEstimate * 7 + size) / 8 }
    }

    /// The kernel took every queued byte of a session: write held deliveries, and read requests again if that
    /// had stopped for unread replies.
    func outputDrained(_ session: ClientSession) {
        guard !session.isClosing else { return }
        writeHeldDeliveries(of: session)
        if session.inputPaused && session.connection.pendingOutputBytes <= configuration.maxOutputBytes {
            resumeInput(session)
        }
    }

    /// Writes held deliveries while the push window has room. A delivery with less than half its lease left is
    /// given back uncounted instead (the worker would likely lose its lease before it could answer), as is one
    /// whose lease ended meanwhile.
    func writeHeldDeliveries(of session: ClientSession) {
        guard session.holdsDeliveries else { return }
        guard let subscription = session.subscription, !session.isClosing else {
            returnHeldDeliveries(of: session)
            return
        }
        let now = WallClock.nowMicros()
        while session.holdsDeliveries && session.connection.pendingOutputBytes < Self.pushWindowBytes {
            let task = session.heldDeliveries[session.heldHead]
            session.heldHead += 1
            guard session.pushed[task.id] == task.attempt else { continue }
            if let deadline = task.leaseDeadline, deadline - now < subscription.leaseMicros / 2 {
                giveBack(task, from: session)
                continue
            }
            writeDelivery(task, to: session, subscription: subscription, at: now)
        }
        compactHeldDeliveries(of: session)
    }

    /// Gives back, uncounted, every delivery held for a session (it closes or unsubscribes: it never got them).
    func returnHeldDeliveries(of session: ClientSession) {
        while session.holdsDeliveries {
            let task = session.heldDeliveries[session.heldHead]
            session.heldHead += 1
            if session.pushed[task.id] == task.attempt { giveBack(task, from: session) }
        }
        compactHeldDeliveries(of: session)
    }

    /// Gives back, uncounted, held deliveries whose lease ends by `now`: the next store job applies these
    /// releases before its lease expiry, which would count the attempt of a task the worker never got.
    func returnExpiringHeldDeliveries(now: Int64) {
        guard !holdingSessions.isEmpty else { return }
        for id in holdingSessions {
            guard let session = sessions[id] else { continue }
            var kept: [TaskRecord] = []
            for task in session.heldDeliveries[session.heldHead...] where session.pushed[task.id] == task.attempt {
                if let deadline = task.leaseDeadline, deadline <= now {
                    giveBack(task, from: session)
                } else {
                    kept.append(task)
                }
            }
            session.heldDeliveries = kept
            session.heldHead = 0
            compactHeldDeliveries(of: session)
        }
    }

    /// Hands a leased, never-written task back (uncounted) through the next store job.
    func giveBack(_ task: TaskRecord, from session: ClientSession) {
        stagedReleases.append(StagedRelease(id: task.id, attempt: task.attempt, holder: session.id))
        session.pushed[task.id] = nil
        pushedHolders[task.id] = nil
        dispatchNeeded = true
        rearmNeeded = true
    }

    /// Drops the written part of a session's held deliveries; once none is held, its free slots are worth a
    /// claim again.
    func compactHeldDeliveries(of session: ClientSession) {
        if !session.holdsDeliveries {
            session.heldDeliveries = []
            session.heldHead = 0
            holdingSessions.remove(session.id)
            if session.freeCapacity > 0 {
                dispatchNeeded = true
                rearmNeeded = true
            }
        } else if session.heldHead >= 1024 && session.heldHead * 2 >= session.heldDeliveries.count {
            session.heldDeliveries.removeFirst(session.heldHead)
            session.heldHead = 0
        }
    }

    // MARK: Input

    /// Stops decoding a session's requests until its peer has read its replies.
    func pauseInput(_ session: ClientSession) {
        guard !session.inputPaused else { return }
        session.inputPaused = true
        logger.debug("replies unread; reading no more requests until they are", metadata: [
            "taskshed.conn": "\(session.id)", "taskshed.unread_bytes": "\(session.connection.pendingOutputBytes)",
        ])
    }

    /// Handles the frames that waited in the decoder (until that pauses it anew).
    func resumeInput(_ session: ClientSession) {
        session.inputPaused = false
        session.lastInputNanos = WallClock.monotonicNanos()
        handleBufferedFrames(of: session)
    }

    /// Whether a session's requests wait for its peer to read its replies: not once the peer has closed its end
    /// (what it sent before must be applied) or while the daemon stops (everything read is answered first).
    func repliesHoldBack(_ session: ClientSession) -> Bool {
        !session.peerEnded && !isShuttingDown && session.connection.pendingOutputBytes > configuration.maxOutputBytes
    }

    /// Counts a session's buffered input in the daemon-wide budget; past the budget, closes the connections
    /// holding the largest partial frames until it is met again.
    func accountInput(of session: ClientSession) {
        let now = session.isClosing ? 0 : session.decoder.bufferedByteCount
        bufferedInputBytes += now - session.bufferedInputBytes
        session.bufferedInputBytes = now
        while bufferedInputBytes > configuration.maxInputBytes {
            guard let largest = sessions.values.filter({ !$0.isClosing && $0.bufferedInputBytes > 0 })
                .max(by: { $0.bufferedInputBytes < $1.bufferedInputBytes })
            else { return }
            logger.warning("input budget used up; closing the connection with the largest partial frame", metadata: [
                "taskshed.conn": "\(largest.id)", "taskshed.buffered_bytes": "\(largest.bufferedInputBytes)",
                "taskshed.max_input_bytes": "\(configuration.maxInputBytes)",
            ])
            let held = largest.bufferedInputBytes
            fail(largest, requestID: 0, ErrorReply(code: .overloaded, message:
                "the daemon holds over \(configuration.maxInputBytes) bytes of partly received frames; this connection's \(held) bytes were the most. Send the request again later"))
        }
    }

    /// Forgets a closing session's buffered input (and the decoder's memory).
    func releaseInput(of session: ClientSession) {
        bufferedInputBytes -= session.bufferedInputBytes
        session.bufferedInputBytes = 0
        let version = session.decoder.version
        session.decoder = FrameDecoder(maxFrameBytes: session.decoder.maxFrameBytes)
        session.decoder.version = version
    }

    // MARK: Handshake allowance

    /// Makes room for one more connection waiting for its HELLO: at the allowance, the oldest one still waiting
    /// is closed (a real client sends HELLO at once; a flood of silent connections only evicts itself).
    func admitHandshaking(_ session: ClientSession) {
        while handshaking.count >= configuration.maxHandshakingConnections, let oldest = handshaking.first {
            handshaking.removeFirst()
            guard let victim = sessions[oldest], !victim.isClosing else { continue }
            logger.info("too many connections without HELLO; closing the oldest", metadata: [
                "taskshed.conn": "\(oldest)", "taskshed.max_handshaking": "\(configuration.maxHandshakingConnections)",
            ])
            fail(victim, requestID: 0, ErrorReply(code: .tooManyConnections, message:
                "\(configuration.maxHandshakingConnections) connections are waiting for their HELLO; the oldest is closed: send HELLO as soon as you connect"))
        }
        handshaking.append(session.id)
    }

    /// The session no longer waits for its HELLO (it sent one, or it is closing).
    func leaveHandshaking(_ session: ClientSession) {
        if let index = handshaking.firstIndex(of: session.id) { handshaking.remove(at: index) }
    }

    /// The session no longer counts against `maxConnections` (it is closing).
    func leaveConnected(_ session: ClientSession) {
        guard session.countsAsConnection else { return }
        session.countsAsConnection = false
        connectedSessions -= 1
    }

    // MARK: Stalls

    /// Every `sweepIntervalMillis`: closes connections whose waiting output the peer has read nothing of for
    /// the slow-consumer timeout, and those with a partial frame that stopped arriving.
    func sweepStalledConnections() {
        let now = WallClock.monotonicNanos()
        let slowNanos = UInt64(configuration.slowConsumerTimeoutMicros) * 1_000
        let frameNanos = UInt64(configuration.frameTimeoutMicros) * 1_000
        for session in Array(sessions.values) where !session.isClosing {
            if let since = session.connection.outputWaitingSinceNanos, now &- since > slowNanos {
                disconnectSlowConsumer(session)
            } else if session.bufferedInputBytes > 0 && !session.inputPaused
                        && now &- session.lastInputNanos > frameNanos {
                logger.info("frame stopped arriving; closing", metadata: [
                    "taskshed.conn": "\(session.id)", "taskshed.buffered_bytes": "\(session.bufferedInputBytes)",
                ])
                fail(session, requestID: 0, ErrorReply(code: .frameTimeout, message:
                    "a frame began arriving and no byte of it came for \(configuration.frameTimeoutMicros / 1000) ms (\(session.bufferedInputBytes) bytes received)"))
            }
        }
    }

    /// How often `sweepStalledConnections` runs: a fraction of the shorter timeout, so that a stall is noticed
    /// within about a quarter of it more.
    var sweepIntervalMillis: UInt64 {
        UInt64(max(5, min(1_000, min(configuration.slowConsumerTimeoutMicros, configuration.frameTimeoutMicros) / 4_000)))
    }
}
