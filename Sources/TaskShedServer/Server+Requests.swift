import Glibc
import Logging
import TaskShedEventLoop
import TaskShedProtocol
import TaskShedStore

/// A request waiting for a store job (a write), or for the writes its connection sent before it.
struct QueuedRequest {
    enum Kind {
        /// Applied by the next store job.
        case write(Message)
        /// A read from a connection that has writes queued or being applied before it: answered after them.
        case read(Message)
        /// A reply already decided (an error) that must not overtake earlier queued replies.
        case reply(Message)

        /// Whether this is a read.
        var isRead: Bool {
            if case .read = self { return true }
            return false
        }

        /// Whether this is a write.
        var isWrite: Bool {
            if case .write = self { return true }
            return false
        }
    }

    let session: ClientSession
    let requestID: UInt32
    let kind: Kind
}

extension Server {
    /// Routes one decoded frame.
    /// - Parameter checked: The outcome of the field checks when they were made already (off the loop, with
    ///   the decoding of a large frame), else `nil`.
    func handle(_ frame: Frame, on session: ClientSession, checked: RequestError?? = nil) {
        let message = frame.message
        guard session.isReady else {
            if case .hello(let hello) = message {
                handshake(hello, requestID: frame.requestID, on: session)
            } else {
                fail(session, requestID: frame.requestID, ErrorReply(code: .handshakeRequired,
                    message: "the first request must be HELLO, got \(message.type.name)"))
            }
            return
        }
        // The session's decoder already refuses these (`FrameDecoder(accepting: .requests)`); this keeps a
        // reply type from being served whatever decoder fed the frame.
        guard message.type.isRequest else {
            reply(frame.requestID, .error(ErrorReply(code: .unknownMessageType,
                message: "\(message.type.name) is a server-to-client type, not a request")), on: session)
            return
        }
        if let checked {
            if let error = checked {
                reply(frame.requestID, .error(error.reply), on: session)
                return
            }
        } else {
            do throws(RequestError) {
                try validation.request(message)
            } catch {
                reply(frame.requestID, .error(error.reply), on: session)
                return
            }
        }
        switch message {
        case .addTasks, .pauseTasks, .resumeTasks, .removeTasks, .updateRunTimes, .retryDead, .purgeDead,
             .ack, .fail, .release, .claim, .touch:
            queue.append(QueuedRequest(session: session, requestID: frame.requestID, kind: .write(message)))
            session.queuedRequests += 1
            writeArrivals.set(true)
        case .unsubscribe:
            // No push after this point; the reply waits for the job that gives the staged tasks back, so that
            // once the worker has its OK, nothing is leased to it that it was never sent.
            removeSubscription(of: session)
            queue.append(QueuedRequest(session: session, requestID: frame.requestID, kind: .write(message)))
            session.queuedRequests += 1
            writeArrivals.set(true)
        default:
            if session.queuedRequests > 0 {
                queue.append(QueuedRequest(session: session, requestID: frame.requestID, kind: .read(message)))
                session.queuedRequests += 1
            } else {
                answerRead(message, requestID: frame.requestID, on: session)
            }
        }
    }

    /// Sends a reply now, or after the queued replies of the same connection.
    func reply(_ requestID: UInt32, _ message: Message, on session: ClientSession) {
        if session.queuedRequests > 0 {
            queue.append(QueuedRequest(session: session, requestID: requestID, kind: .reply(message)))
            session.queuedRequests += 1
        } else {
            send(Frame(requestID: requestID, message: message), to: session)
        }
    }

    func handshake(_ hello: Hello, requestID: UInt32, on session: ClientSession) {
        let speaks = ProtocolLimits.versions
        let chosen = min(hello.maxVersion, speaks.upperBound)
        guard hello.minVersion <= hello.maxVersion, chosen >= max(hello.minVersion, speaks.lowerBound) else {
            fail(session, requestID: requestID, ErrorReply(code: .unsupportedVersion,
                message: "server speaks \(speaks.lowerBound)...\(speaks.upperBound); the client offered \(hello.minVersion)...\(hello.maxVersion)"))
            return
        }
        leaveHandshaking(session)
        if connectedSessions >= configuration.maxConnections {
            // Counted as it completes its handshake: connections still waiting for HELLO have their own allowance.
            logger.warning("connection refused at HELLO: limit reached", metadata: [
                "taskshed.conn": "\(session.id)", "taskshed.max_connections": "\(configuration.maxConnections)",
            ])
            fail(session, requestID: requestID, ErrorReply(code: .tooManyConnections,
                message: "the daemon serves at most \(configuration.maxConnections) connections; retry later"))
            return
        }
        session.isReady = true
        session.countsAsConnection = true
        connectedSessions += 1
        session.clientName = hello.clientName
        runWorkers[session.id] = RunWorker(name: hello.clientName, pid: UInt32(bitPattern: session.peer.pid),
                                           uid: session.peer.uid)
        session.decoder.maxFrameBytes = configuration.maxFrameBytes
        session.decoder.version = chosen
        session.deadlineTimer?.stop()
        let ok = HelloOK(version: chosen, serverName: Self.serverName, serverVersion: Self.serverVersion,
                         maxFrameBytes: configuration.maxFrameBytes, maxBatch: configuration.maxBatch,
                         maxKwargsBytes: configuration.maxKwargsBytes,
                         defaultLeaseMicros: configuration.leaseTimeoutMicros, connectionID: session.id)
        send(Frame(requestID: requestID, message: .helloOK(ok)), to: session)
        logger.debug("handshake", metadata: ["taskshed.conn": "\(session.id)", "taskshed.client": "\(hello.clientName)"])
    }

    /// Answers a request that does not change the store (or only this connection's subscription): on the thread
    /// pool when it may read much of the store (`readsInBackground`), else at once. While shutting down, at once
    /// (everything read so far is answered before the goodbye).
    func answerRead(_ message: Message, requestID: UInt32, on session: ClientSession) {
        if case .getMetrics = message {
            // Its reply waits for a store read like STATS, and it may share one with other scrapes.
            answerMetricsRequest(requestID: requestID, on: session)
            return
        }
        if Self.readsInBackground(message) && !isShuttingDown {
            startBackgroundRead(message, requestID: requestID, on: session)
            return
        }
        send(Frame(requestID: requestID, message: readAnswer(message, requestID: requestID, on: session)), to: session)
    }

    /// The reply to a read (see `answerRead`).
    func readAnswer(_ message: Message, requestID: UInt32, on session: ClientSession) -> Message {
        do throws(RequestError) {
            switch message {
            case .ping:
                return .pong(Pong(serverTime: WallClock.nowMicros(), nextWakeup: try storeNextWakeup()))
            case .getStats, .getDaemons, .fetchTasks, .listTasks, .getHistory:
                let now = WallClock.nowMicros()
                let server = serverStatistics(for: message)
                return Self.readReply(Self.storeRead(message, store: try liveStore(), server: server, now: now,
                                                     limits: readLimits),
                                      server: server, now: now)
            case .subscribe(let request):
                if session.subscription != nil { throw Self.secondSubscription }
                return subscribe(request, aheadMicros: 0, requestID: requestID, on: session)
            case .subscribeAhead(let request, let ahead):
                if session.subscription != nil { throw Self.secondSubscription }
                return subscribe(request, aheadMicros: ahead, requestID: requestID, on: session)
            default:
                return .error(ErrorReply(code: .unknownMessageType, message: "\(message.type.name) is not served"))
            }
        } catch {
            return .error(error.reply)
        }
    }

    /// The refusal of a SUBSCRIBE or SUBSCRIBE_AHEAD on a connection that has a subscription.
    static let secondSubscription = RequestError(.invalidArgument, field: nil,
                                                 "this connection already has a subscription; UNSUBSCRIBE first")

    /// Registers the connection's subscription and schedules a dispatch for it.
    /// - Parameter aheadMicros: How long before their due time its tasks may be pushed (SUBSCRIBE_AHEAD), at
    ///   most the dispatch lead in force when they are claimed; 0 for SUBSCRIBE.
    func subscribe(_ request: Subscribe, aheadMicros: Int64, requestID: UInt32, on session: ClientSession) -> Message {
        let lease = request.leaseMicros ?? configuration.leaseTimeoutMicros
        session.subscription = Subscription(requestID: requestID, callbacks: request.callbacks,
                                            concurrency: Int(request.concurrency), leaseMicros: lease,
                                            aheadMicros: aheadMicros)
        for callback in request.callbacks {
            subscribers[callback, default: []].append(session.id)
        }
        dispatchNeeded = true
        rearmNeeded = true
        logger.debug("subscribed", metadata: ["taskshed.conn": "\(session.id)",
                                              "taskshed.callbacks": "\(request.callbacks.joined(separator: ","))",
                                              "taskshed.concurrency": "\(request.concurrency)"])
        return .subscribed(Subscribed(leaseMicros: lease))
    }

    /// The loop's end-of-iteration work: push the staged tasks that are due, start the next store job (group
    /// commit of the queued requests plus the dispatch work) unless one is running, re-arm the timer, write
    /// every connection's output.
    func endOfIteration() {
        resumeThrottledReads()
        if pushStagedDeliveries(now: WallClock.nowMicros()) {
            // These are the deliveries whose due time woke the loop: out before anything else is done.
            flushDirtySessions()
        }
        startStoreJob()
        if repliesNeedFlush {
            // No job follows whose commit would make the held replies durable: flush for them now.
            startFlush()
        }
        if rearmNeeded {
            rearm()
        }
        flushDirtySessions()
        if dispatchNeeded && !jobInFlight {
            // Flushing disconnected a slow consumer: its tasks go to other workers now.
            startStoreJob()
            rearm()
            flushDirtySessions()
        }
    }

    /// Whether a write can change a task leased to someone else (and so invalidate a staged delivery).
    static func mayChangeOtherLeases(_ message: Message) -> Bool {
        switch message {
        case .addTasks, .pauseTasks, .removeTasks, .updateRunTimes: return true
        default: return false
        }
    }

    /// The server's own part of a `STATS` or `DAEMONS` reply as it is now (`nil` for other requests). Taken when the
    /// request's turn comes, before the store part is read on the thread pool: an `UNSUBSCRIBE` the connection
    /// sent after its `STATS` (applied as soon as it is read) must not show in it.
    func serverStatistics(for message: Message) -> ServerStatistics? {
        switch message {
        case .getStats, .getDaemons: break
        default: return nil
        }
        let host = HostName.current()
        let daemon = DaemonInfo(name: host, host: host, pid: UInt32(clamping: getpid()),
                                startedAt: startedAt, heartbeatAgeMicros: 0, leased: 0, isThisDaemon: true)
        return ServerStatistics(daemon: daemon, startedAt: startedAt, connections: UInt32(clamping: sessions.count), lag: lag.summary(),
                                workers: subscribers.mapValues { UInt32(clamping: $0.count) })
    }

    /// The `STATS` reply: the store's counts (`storePart`, read at `now`) plus the server's connections, workers
    /// and lag (`server`).
    static func statistics(_ storePart: Stats, server: ServerStatistics, now: Int64) -> Stats {
        var stats = storePart
        stats.serverVersion = Self.serverVersion
        stats.serverTime = now
        stats.startedAt = server.startedAt
        stats.connections = server.connections
        stats.lag = server.lag
        var byName: [String: CallbackStats] = [:]
        for entry in stats.callbacks { byName[entry.callback] = entry }
        for (callback, workers) in server.workers {
            var entry = byName[callback] ?? CallbackStats(callback: callback, scheduled: 0, due: 0, leased: 0, dead: 0,
                                                          workers: 0)
            entry.workers = workers
            byName[callback] = entry
        }
        stats.callbacks = byName.values.sorted { $0.callback < $1.callback }
        stats.waitingForWorker = stats.callbacks.filter { $0.workers == 0 }.reduce(0) { $0 + $1.due }
        return stats
    }
}
