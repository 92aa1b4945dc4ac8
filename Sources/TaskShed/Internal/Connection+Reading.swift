import Glibc
import TaskShedProtocol

/// The reading half of `Connection`: reader threads, the reading loans, routing of frames to waiting calls and
/// push handlers, deliveries sent ahead of their due time (`DeferredDeliveries`), and the end of the connection.
extension Connection {
    // MARK: Reader threads

    /// A reader thread: reads while it holds the reading turn, waits as an idle reader after a push handler
    /// kept it, and ends with the connection.
    func readerThread(first: ReaderState?) {
        var reader = first
        while true {
            if reader == nil {
                idleReaderWake.wait()
                // Nil: the wake-up came from `finish`, the connection is over.
                reader = state.withLock { state -> ReaderState? in
                    let handed = state.handedOffReader
                    state.handedOffReader = nil
                    return handed
                }
                guard reader != nil else { return }
            }
            guard let current = reader, read(with: current) else { return }
            reader = nil
            let stay = state.withLock { state -> Bool in
                state.keptThreads -= 1
                if state.readersEnded { return false }
                state.idleReaders += 1
                return true
            }
            guard stay else { return }
        }
    }

    /// Reads and dispatches frames until the connection ends (returns `false`) or a push handler keeps this
    /// thread (returns `true`; `reader` then belongs to another thread).
    private func read(with reader: ReaderState) -> Bool {
        var reason: TaskShedError
        reading: while true {
            // Frames that arrived with an earlier read wait in the decoder: a kept thread left them behind.
            while true {
                let frame: Frame?
                do {
                    frame = try reader.decoder.next()
                } catch {
                    let violation = TaskShedError(
                        .protocolViolation, field: error.field,
                        message: "undecodable frame from the daemon at \(path): \(error)")
                    if error.isFatal {
                        reason = violation
                        break reading
                    }
                    if let requestID = error.requestID, requestID != 0 {
                        fail(requestID: requestID, with: violation)
                    } else {
                        logger.warning("\(violation)")
                    }
                    continue
                }
                guard let frame else { break }
                // The daemon writes the layouts of the version it chose from here on (a v2 task record has no
                // skip counters); HELLO_OK is the first frame, so nothing after it was decoded yet.
                if case .helloOK(let ok) = frame.message { reader.decoder.version = ok.version }
                if dispatch(frame, reader: reader) { return true }
            }
            // A delivery sent ahead starts at its due time, once what the daemon wrote by then has been read (a
            // REVOKE among it cancels the start).
            var wait = true
            if let first = reader.deferred.first {
                let now = ReadingLoan.realtimeNanos()
                if first.startNanos <= now {
                    if reader.drainedNanos >= first.startNanos {
                        if startDeferred(reader.deferred.removeFirst(), reader: reader) { return true }
                        continue
                    }
                    wait = false
                } else if !reader.deferred.wait(socket: fd) {
                    continue
                }
            }
            let readStart = ReadingLoan.realtimeNanos()
            let count = reader.buffer.withUnsafeMutableBytes {
                wait ? Glibc.read(fd, $0.baseAddress, $0.count) : recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            reader.readNanos = ReadingLoan.realtimeNanos()
            if count < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK) {
                reader.drainedNanos = readStart
                continue
            }
            if count > 0 && count < reader.buffer.count { reader.drainedNanos = readStart }
            if count < 0 {
                if errno == EINTR { continue }
                reason = TaskShedError(
                    .connectionClosed, message: "reading from \(path) failed: \(String(cString: strerror(errno)))")
                break
            }
            if count == 0 {
                reason = TaskShedError(.connectionClosed, message: "the daemon closed the connection to \(path)")
                break
            }
            reader.buffer.withUnsafeBytes { reader.decoder.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
        finish(reason, reader: reader)
        return false
    }

    /// How the reading moves to another thread.
    private enum Handoff {
        case wakeIdle
        case spawn
    }

    /// Lends the reading thread to the push handler running on it (see `ReaderTurn.keepThread()`), unless
    /// `maxKeptThreads` are kept already or the connection is closing. Without a loan timer (timerfd creation
    /// failed) the reading moves at once, as it did before loans.
    /// - Returns: How the thread is kept, or `nil` when the handler must hand its work off.
    func lendReading(_ reader: ReaderState) -> ReaderTurn.Keep? {
        let loan = reader.loanTimer()
        let now = ReadingLoan.monotonicNanos()
        enum Lend {
            case refused
            case lent
            case handOff(Handoff)
        }
        let lend = state.withLock { state -> Lend in
            guard state.closeReason == nil, state.keptThreads < Connection.maxKeptThreads else { return .refused }
            state.keptThreads += 1
            guard loan != nil else { return .handOff(Connection.prepareHandoff(&state, reader)) }
            state.loan = (reader, now)
            return .lent
        }
        switch lend {
        case .refused:
            return nil
        case .handOff(let handoff):
            perform(handoff, reader)
            return .handedOff
        case .lent:
            loan?.arm(afterNanos: Connection.loanGraceNanos)
            return .lent
        }
    }

    /// Ends the loan after the push handler returned on the reading thread.
    /// - Returns: Whether the reading moved meanwhile (this thread is then kept and must stop reading).
    private func endLoan(_ reader: ReaderState) -> Bool {
        let taken = state.withLock { state -> Bool in
            state.loan = nil
            if state.loanTaken {
                state.loanTaken = false
                // The kept thread is uncounted by `readerThread` when it stops reading.
                return true
            }
            state.keptThreads -= 1
            return false
        }
        // Still the reading's holder: nobody else arms the timer meanwhile. A taken reading's timer belongs to
        // its new holder.
        if !taken { reader.loanTimer()?.disarm() }
        return taken
    }

    /// The loan timer fired (on its own thread): moves the reading if the handler still holds it after its grace.
    func loanExpired() {
        let now = ReadingLoan.monotonicNanos()
        let move = state.withLock { state -> (Handoff, ReaderState)? in
            // An expiry that outlived its loan (disarmed too late, or a later loan just begun) is ignored.
            guard let loan = state.loan, !state.loanTaken, now - loan.since >= Connection.loanGraceNanos else {
                return nil
            }
            state.loanTaken = true
            return (Connection.prepareHandoff(&state, loan.reader), loan.reader)
        }
        if let (handoff, reader) = move { perform(handoff, reader) }
    }

    /// Under the lock: gives the reading state to an idle reader, or asks for a new reader thread.
    private static func prepareHandoff(_ state: inout State, _ reader: ReaderState) -> Handoff {
        guard state.idleReaders > 0 else { return .spawn }
        state.idleReaders -= 1
        state.handedOffReader = reader
        return .wakeIdle
    }

    private func perform(_ handoff: Handoff, _ reader: ReaderState) {
        switch handoff {
        case .wakeIdle: idleReaderWake.signal()
        case .spawn: startReaderThread(reader)
        }
    }

    /// Routes one frame; returns whether a push handler kept this thread.
    private func dispatch(_ frame: Frame, reader: ReaderState) -> Bool {
        if frame.requestID == 0 {
            if case .error(let reply) = frame.message {
                let error = TaskShedError(reply)
                logger.debug("connection error from the daemon", metadata: ["taskshed.error": "\(error)"])
                state.withLock { $0.connectionError = error }
            } else {
                logger.warning("unexpected \(frame.message.type) frame with request id 0 from the daemon at \(path)")
            }
            return false
        }
        enum Route {
            case reply(CheckedContinuation<Message, any Error>)
            case push(PushHandler)
            case deferUntilDue(TaskRecord)
            case drop
        }
        if case .revoke(let lease) = frame.message {
            // Revoked before its start: the daemon has ended the lease, nothing to answer. After its start the
            // callback's outcome gets LEASE_LOST.
            let waiting = reader.deferred.revoke(lease)
            logger.debug("delivery revoked", metadata: ["taskshed.task.id": "\(lease.id)", "taskshed.started": "\(!waiting)"])
            return false
        }
        let route = state.withLock { state -> Route in
            if case .delivery(let task) = frame.message {
                guard let handler = state.pushHandlers[frame.requestID] else { return .drop }
                // Version 3 daemons send deliveries ahead of time only when asked (SUBSCRIBE_AHEAD); the task
                // starts at its due time, not before.
                if (state.helloOK?.version ?? 1) >= 3 && task.runAt &* 1_000 > ReadingLoan.realtimeNanos() {
                    return .deferUntilDue(task)
                }
                return .push(handler)
            }
            if let continuation = state.pending.removeValue(forKey: frame.requestID) { return .reply(continuation) }
            // An error after SUBSCRIBED concerns the subscription.
            if let handler = state.pushHandlers[frame.requestID] { return .push(handler) }
            return .drop
        }
        switch route {
        case .reply(let continuation):
            continuation.resume(returning: frame.message)
            return false
        case .push(let handler):
            return runPush(handler, frame.message, reader: reader)
        case .deferUntilDue(let task):
            reader.deferred.add(DeferredDelivery(requestID: frame.requestID, task: task))
            return false
        case .drop:
            // The reply to a cancelled call, or a push after its subscription ended.
            logger.trace("dropped \(frame.message.type) frame for request \(frame.requestID)")
            return false
        }
    }

    /// Runs a push handler on the reading thread; returns whether it kept this thread.
    private func runPush(_ handler: PushHandler, _ message: Message, reader: ReaderState) -> Bool {
        let turn = ReaderTurn(connection: self, reader: reader)
        handler(message, turn)
        switch turn.keep {
        case nil: return false
        case .handedOff: return true
        case .lent: return endLoan(reader)
        }
    }

    /// Starts a delivery sent ahead, now due; returns whether its handler kept this thread. When its
    /// subscription has ended meanwhile the task is given back (RELEASE, uncounted) so another worker runs it.
    private func startDeferred(_ delivery: DeferredDelivery, reader: ReaderState) -> Bool {
        reader.readNanos = ReadingLoan.realtimeNanos()
        let handler = state.withLock { $0.pushHandlers[delivery.requestID] }
        guard let handler else {
            sendUnanswered(.release(LeaseRef(id: delivery.task.id, attempt: delivery.task.attempt)))
            return false
        }
        return runPush(handler, .delivery(delivery.task), reader: reader)
    }

    /// Queues a request whose reply nobody waits for (it is dropped on arrival).
    private func sendUnanswered(_ message: Message) {
        let queued = state.withLock { state -> Bool in
            guard state.closeReason == nil else { return false }
            state.nextRequestID &+= 1
            if state.nextRequestID == 0 { state.nextRequestID = 1 }
            state.output.append(contentsOf: FrameEncoder.encode(Frame(requestID: state.nextRequestID, message: message)))
            return true
        }
        if queued { writerWake.signal() }
    }

    private func fail(requestID: UInt32, with error: TaskShedError) {
        state.withLock { $0.pending.removeValue(forKey: requestID) }?.resume(throwing: error)
    }

    private func finish(_ readerReason: TaskShedError, reader: ReaderState) {
        // No loan is open while the reading runs: the timer's thread has nothing left to do. Deliveries still
        // deferred were never started: the daemon gives them back uncounted when it sees the close.
        reader.stopTimers()
        let (pending, handlers, reason) = state.withLock { state in
            // The daemon's own explanation (SHUTTING_DOWN, PERMISSION_DENIED…) beats "closed".
            let reason = state.closeReason ?? state.connectionError ?? readerReason
            state.closeReason = reason
            state.finished = true
            let pending = state.pending.values
            state.pending.removeAll()
            state.pushHandlers.removeAll()
            let handlers = state.closeHandlers
            state.closeHandlers.removeAll()
            return (Array(pending), handlers, reason)
        }
        for continuation in pending { continuation.resume(throwing: reason) }
        logger.debug("connection closed", metadata: ["taskshed.socket": "\(path)", "taskshed.reason": "\(reason)"])
        writerWake.signal()
        writerStopped.wait()
        let idle = state.withLock { state -> Int in
            state.descriptorOpen = false
            Glibc.close(fd)
            state.readersEnded = true
            let idle = state.idleReaders
            state.idleReaders = 0
            return idle
        }
        for _ in 0..<idle { idleReaderWake.signal() }
        for handler in handlers { handler(reason) }
    }
}
