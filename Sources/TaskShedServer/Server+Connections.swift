import Glibc
import Logging
import TaskShedEventLoop
import TaskShedProtocol

extension Server {
    /// Accepts one pending connection and either serves it or refuses it with a closing error.
    func acceptConnection(error: UVError?) {
        if let error {
            logger.error("accept failed: \(error)")
            return
        }
        guard let listener else { return }
        let connection: Connection
        do {
            connection = try listener.accept()
        } catch {
            logger.warning("accept failed: \(error)")
            return
        }
        let id = nextSessionID
        nextSessionID += 1
        let peer: PeerCredentials
        do {
            peer = try connection.peerCredentials()
        } catch {
            logger.warning("cannot read peer credentials; closing", metadata: ["taskshed.conn": "\(id)",
                                                                              "error": "\(error)"])
            connection.close()
            return
        }
        if !isAllowed(peer) {
            logger.warning("connection refused: peer not allowed", metadata: [
                "taskshed.conn": "\(id)", "taskshed.peer.uid": "\(peer.uid)", "taskshed.peer.gid": "\(peer.gid)",
                "taskshed.peer.pid": "\(peer.pid)",
            ])
            refuse(connection, code: .permissionDenied,
                   message: "uid \(peer.uid) gid \(peer.gid) is not allowed to use this daemon")
            return
        }
        if connectedSessions >= configuration.maxConnections || isShuttingDown {
            logger.warning("connection refused: limit reached", metadata: [
                "taskshed.conn": "\(id)", "taskshed.max_connections": "\(configuration.maxConnections)",
            ])
            refuse(connection, code: isShuttingDown ? .shuttingDown : .tooManyConnections,
                   message: isShuttingDown ? "the daemon is stopping"
                       : "the daemon serves at most \(configuration.maxConnections) connections; retry later")
            return
        }
        let session = ClientSession(id: id, connection: connection, peer: peer)
        session.lastInputNanos = WallClock.monotonicNanos()
        admitHandshaking(session)
        sessions[id] = session
        sessionOrder.append(id)
        connection.onData = { [unowned self, unowned session] bytes in self.received(bytes, on: session) }
        connection.onDrained = { [unowned self, unowned session] in self.outputDrained(session) }
        connection.onEnd = { [unowned self, unowned session] error in
            if let error, !error.isEndOfFile {
                self.logger.info("connection error", metadata: ["taskshed.conn": "\(session.id)", "error": "\(error)"])
            }
            // Requests that waited in the decoder for unread replies were sent before the end: apply them, after
            // the large frame being decoded, if any (its completion closes the connection).
            session.peerEnded = true
            if session.inputPaused { self.resumeInput(session) }
            if !session.decodeInFlight { session.connection.close() }
        }
        connection.onClose = { [unowned self] in self.sessionClosed(id: id) }
        do {
            let deadline = try CoarseTimer(loop: loop) { [unowned self, unowned session] in
                self.logger.info("handshake timeout", metadata: ["taskshed.conn": "\(session.id)"])
                self.fail(session, requestID: 0, ErrorReply(code: .handshakeTimeout,
                    message: "no HELLO within \(self.configuration.handshakeTimeoutMicros / 1000) ms"))
            }
            deadline.start(afterMillis: UInt64(max(1, configuration.handshakeTimeoutMicros / 1000)))
            session.deadlineTimer = deadline
            try connection.startReading()
        } catch {
            logger.error("cannot start serving a connection: \(error)", metadata: ["taskshed.conn": "\(id)"])
            connection.close()
            return
        }
        logger.debug("connection accepted", metadata: [
            "taskshed.conn": "\(id)", "taskshed.peer.uid": "\(peer.uid)", "taskshed.peer.pid": "\(peer.pid)",
        ])
    }

    /// Whether a peer may use the daemon: root, the daemon's own uid or gid, the socket's group, or a
    /// configured uid/gid.
    func isAllowed(_ peer: PeerCredentials) -> Bool {
        peer.uid == 0 || peer.uid == ownUID || peer.gid == ownGID || configuration.allowedUIDs.contains(peer.uid)
            || configuration.allowedGIDs.contains(peer.gid)
            || configuration.socketGroup.map({ $0 == peer.gid }) == true
    }

    /// Sends one closing error on a connection that never became a session, then closes it once the peer has
    /// closed its end (what it sent meanwhile, its HELLO, is read and dropped, so that it sees the error and the
    /// end of the stream rather than a reset), or after `closeGraceMillis`.
    func refuse(_ connection: Connection, code: ErrorCode, message: String) {
        var bytes: [UInt8] = []
        FrameEncoder.encode(Frame(requestID: 0, message: .error(ErrorReply(code: code, message: message))), into: &bytes)
        metrics.countError(code)
        connection.outputBuffer = bytes
        if let grace = try? CoarseTimer(loop: loop, onFire: { [unowned connection] in connection.close() }) {
            connection.onClose = { grace.close() }
            grace.start(afterMillis: Self.closeGraceMillis)
            connection.closeAfterFlush(awaitingPeerClose: true)
        } else {
            connection.closeAfterFlush()
        }
    }

    /// How long a closing connection may take to read its last error before the socket is closed anyway.
    static let closeGraceMillis: UInt64 = 2_000

    /// Sends an error that closes the connection, then closes once it is written (or after `closeGraceMillis`,
    /// for a peer that does not read).
    func fail(_ session: ClientSession, requestID: UInt32, _ reply: ErrorReply) {
        guard !session.isClosing else { return }
        send(Frame(requestID: requestID, message: .error(reply)), to: session)
        closeAfterFlush(session)
    }

    /// Stops handling requests and closes the session once its output is written and the peer has closed its
    /// end (see `refuse`), within `closeGraceMillis`.
    func closeAfterFlush(_ session: ClientSession) {
        session.isClosing = true
        leaveHandshaking(session)
        leaveConnected(session)
        releaseInput(of: session)
        if let timer = session.deadlineTimer {
            timer.onFire = { [unowned session] in session.connection.close() }
            timer.start(afterMillis: Self.closeGraceMillis)
        }
        do {
            try session.connection.flush()
        } catch {
            session.connection.close()
            return
        }
        session.connection.closeAfterFlush(awaitingPeerClose: true)
    }

    /// Appends a frame to a session's output; it goes out at the end of the iteration. What a peer can make
    /// the daemon buffer is bounded elsewhere: deliveries by the push window, replies by reading no more
    /// requests past `maxOutputBytes` (`Server+FlowControl`).
    func send(_ frame: Frame, to session: ClientSession) {
        let connection = session.connection
        guard !session.isSlowConsumer else { return }
        let before = connection.outputBuffer.count
        FrameEncoder.encode(frame, into: &connection.outputBuffer, version: session.decoder.version)
        let length = connection.outputBuffer.count - before - 4
        if length > Int(configuration.maxFrameBytes) {
            // A reply the client could not accept (its decoder rejects frames above the announced limit).
            connection.outputBuffer.removeSubrange(before...)
            let error = ErrorReply(code: .invalidArgument, field: nil,
                message: "the reply would be \(length) bytes, over the maximum frame size \(configuration.maxFrameBytes); ask for fewer tasks")
            FrameEncoder.encode(Frame(requestID: frame.requestID, message: .error(error)), into: &connection.outputBuffer)
            metrics.countError(error.code)
        } else if case .error(let error) = frame.message {
            metrics.countError(error.code)
        }
        markDirty(session)
    }

    func markDirty(_ session: ClientSession) {
        if !session.needsFlush {
            session.needsFlush = true
            dirtySessions.append(session)
        }
    }

    /// Bytes read from all connections in one loop iteration past which each connection that reads more stops
    /// until the iteration's end (copying received bytes costs ~1 ms per 2 MiB here).
    static let readBytesPerIteration = 2 << 20

    /// Reads again from the connections that filled a read buffer in this iteration (see `received`).
    func resumeThrottledReads() {
        bytesReadThisIteration = 0
        guard !throttledSessions.isEmpty else { return }
        let throttled = throttledSessions
        throttledSessions.removeAll(keepingCapacity: true)
        for session in throttled {
            session.readThrottled = false
            guard !session.isClosing, !session.peerEnded else { continue }
            do {
                try session.connection.startReading()
            } catch {
                logger.info("cannot read again; closing", metadata: ["taskshed.conn": "\(session.id)", "error": "\(error)"])
                session.connection.close()
            }
        }
    }

    /// Writes every session's gathered output, and the deliveries held for a session whose socket took all of it
    /// at once (no write completion will come to say so).
    func flushDirtySessions() {
        guard !dirtySessions.isEmpty else { return }
        let sessionsToFlush = dirtySessions
        dirtySessions.removeAll(keepingCapacity: true)
        for session in sessionsToFlush {
            session.needsFlush = false
            let connection = session.connection
            guard !connection.isClosing else { continue }
            do {
                try connection.flush()
                while session.holdsDeliveries && !session.isClosing && !connection.isClosing
                        && connection.pendingOutputBytes < Self.pushWindowBytes {
                    writeHeldDeliveries(of: session)
                    try connection.flush()
                }
            } catch {
                logger.info("write failed; closing", metadata: ["taskshed.conn": "\(session.id)", "error": "\(error)"])
                connection.close()
                continue
            }
        }
    }

    /// The peer read nothing of its waiting output for the slow-consumer timeout: drop what is not yet handed
    /// to the kernel (whole frames), queue `SLOW_CONSUMER` after what is, redeliver its tasks now (those never
    /// written uncounted), and close.
    func disconnectSlowConsumer(_ session: ClientSession) {
        guard !session.isSlowConsumer else { return }
        session.isSlowConsumer = true
        let connection = session.connection
        logger.warning("slow consumer: closing and redelivering its tasks", metadata: [
            "taskshed.conn": "\(session.id)", "taskshed.unread_bytes": "\(connection.pendingOutputBytes)",
            "taskshed.leased": "\(session.pushed.count)",
        ])
        connection.outputBuffer.removeAll()
        removeSubscription(of: session)
        unstage(sessionID: session.id)
        holdersToRelease.append(session.id)
        dispatchNeeded = true
        rearmNeeded = true
        let reply = ErrorReply(code: .slowConsumer,
            message: "\(connection.pendingOutputBytes) bytes of output waited \(configuration.slowConsumerTimeoutMicros / 1000) ms without being read; the connection is closed and its tasks redelivered")
        FrameEncoder.encode(Frame(requestID: 0, message: .error(reply)), into: &connection.outputBuffer)
        metrics.countError(reply.code)
        closeAfterFlush(session)
    }

    /// Buffers `bytes` and handles every complete frame.
    func received(_ bytes: UnsafeRawBufferPointer, on session: ClientSession) {
        guard !session.isClosing else { return }
        session.decoder.append(bytes)
        session.lastInputNanos = WallClock.monotonicNanos()
        bytesReadThisIteration += bytes.count
        if (bytes.count >= EventLoop.readBufferBytes || bytesReadThisIteration > Self.readBytesPerIteration)
            && !session.readThrottled {
            // A full read buffer: more is likely waiting, and libuv would read on (up to 32 times) before the
            // loop does anything else. One buffer per connection per iteration, and a few MiB for all, keep
            // clients that stream megabytes from holding up everyone else's pushes and replies; reading resumes
            // at the iteration's end.
            session.readThrottled = true
            session.connection.stopReading()
            throttledSessions.append(session)
        }
        handleBufferedFrames(of: session)
    }

    /// Decodes and handles the session's complete frames, until its input is paused (its peer leaves replies
    /// unread) or it closes; then counts what stays buffered in the input budget.
    func handleBufferedFrames(of session: ClientSession) {
        defer { accountInput(of: session) }
        while !session.isClosing && !session.decodeInFlight {
            if repliesHoldBack(session) {
                pauseInput(session)
                return
            }
            if decodeLargeFrameOffLoop(of: session) { return }
            let frame: Frame?
            do {
                frame = try session.decoder.next()
            } catch {
                logger.info("bad frame", metadata: ["taskshed.conn": "\(session.id)", "error": "\(error)"])
                var reply = error.errorReply
                if error.code == .frameTooLarge && !session.isReady {
                    reply.message += " (before HELLO, frames are limited to \(ProtocolLimits.maxHandshakeFrameBytes) bytes)"
                }
                if error.isFatal {
                    fail(session, requestID: error.requestID ?? 0, reply)
                    return
                }
                send(Frame(requestID: error.requestID ?? 0, message: .error(reply)), to: session)
                continue
            }
            guard let frame else { return }
            handle(frame, on: session)
        }
    }

    /// A connection's close callback ran: forget the session, release its leases, re-dispatch.
    func sessionClosed(id: UInt64) {
        guard let session = sessions.removeValue(forKey: id) else { return }
        if let index = sessionOrder.firstIndex(of: id) { sessionOrder.remove(at: index) }
        session.isClosing = true
        leaveHandshaking(session)
        leaveConnected(session)
        releaseInput(of: session)
        session.deadlineTimer?.close()
        session.deadlineTimer = nil
        removeSubscription(of: session)
        for taskID in session.pushed.keys { pushedHolders[taskID] = nil }
        logger.debug("connection closed", metadata: ["taskshed.conn": "\(id)", "taskshed.leased": "\(session.pushed.count)"])
        if isShuttingDown {
            shutdownSessionClosed()
            return
        }
        unstage(sessionID: id)
        returnAheadPushes(of: session)
        holdersToRelease.append(id)
        dispatchNeeded = true
        rearmNeeded = true
        // Close callbacks run after this iteration's end-of-iteration hook, and nothing may wake the loop
        // again soon: release and redeliver now.
        endOfIteration()
    }

    /// Removes a session from the subscriber rings; its staged and held deliveries go back uncounted.
    func removeSubscription(of session: ClientSession) {
        guard let subscription = session.subscription else { return }
        unstage(sessionID: session.id)
        returnHeldDeliveries(of: session)
        for callback in subscription.callbacks {
            subscribers[callback]?.removeAll { $0 == session.id }
            if subscribers[callback]?.isEmpty == true { subscribers[callback] = nil }
        }
        session.subscription = nil
    }
}
