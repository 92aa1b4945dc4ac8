import Glibc
import Logging
import TaskShedEventLoop
import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore

/// The daemon: one libuv loop on the calling thread owns the store, the precise timer and every connection.
///
/// `run()` opens the store, binds (or adopts) the socket, tells systemd it is ready, and serves until SIGTERM
/// or SIGINT; then it stops accepting, commits and answers what is in flight, closes every connection and
/// handle, closes the store and returns.
///
/// Per loop iteration: frames are read and decoded; reads are answered at once; mutations are queued; at the
/// end of the iteration (`IterationHook`) staged tasks that are due are pushed, and unless a store job is
/// running, the queued mutations and the dispatch work (releases, lease expiry, claims) become the next store
/// job; the timer is re-armed, and every connection's output is written once.
///
/// Store jobs are write transactions run one at a time on libuv's thread pool (`StoreJob`): LMDB flushes the
/// data pages of every commit to disk inside `mdb_txn_commit`, which takes from 0.1 ms to tens of
/// milliseconds on a busy disk, and the loop must never wait for it. The job's completion, back on the loop,
/// answers its requests (after the background flush of the meta page, for durable changes), pushes what it
/// claimed and starts the next job with everything that queued meanwhile (group commit).
///
/// - Important: Not thread-safe. Create it and call `run()` on one thread; nothing else may touch it.
public final class Server {
    /// Server software name announced in `HELLO_OK`.
    public static let serverName = "taskshedd"
    /// Server software version announced in `HELLO_OK` and `STATS`.
    public static let serverVersion = TaskShedVersion.current

    let configuration: Configuration
    let logger: Logger
    let environment: [String: String]
    let notifier: SystemdNotifier
    let validation: RequestValidation

    // Set up by run().
    var loop: EventLoop!
    var store: ServerStore?
    var listener: UnixListener?
    /// The HTTP metrics endpoint (`--metrics-listen`), when asked for.
    var metricsListener: MetricsListener?
    var timer: PreciseTimer?
    var hook: IterationHook?
    var signalWatchers: [SignalWatcher] = []
    var watchdog: CoarseTimer?
    var graceTimer: CoarseTimer?
    /// Flushes lease-only commits once a second (see `openStore()`).
    var syncTimer: CoarseTimer?
    /// A shared store: starts the periodic re-read of `sharedHints` (`Configuration.sharedPollMicros`).
    var sharedPollTimer: CoarseTimer?
    /// A shared store: what the last store job read of due times and lease deadlines (the loop never reads a
    /// shared store itself).
    var sharedHints = SharedHints()
    /// A shared store: the next job re-reads the hints even if it has nothing else to do.
    var sharedHintsStale = false
    /// A shared store: sends the heartbeats and listens for other daemons' notifications (waking the loop).
    var notificationListener: PostgresBackgroundSession?
    var notificationWakeup: CrossThreadWakeup?
    /// A shared store that cannot be reached: the current backoff (µs, 0 while reachable) and when the next
    /// job that no client waits for may start (monotonic ns).
    var sharedRetryMicros: Int64 = 0
    var sharedRetryAfterNanos: UInt64 = 0
    /// Whether commits since the last flush are not on disk yet.
    var hasUnsyncedCommits = false
    /// Counts store writes; cached index reads of an older generation are stale.
    var storeGeneration: UInt64 = 0
    var cachedLeaseDeadline: (generation: UInt64, value: Int64?)?
    var cachedRunAt: [String: Int64?] = [:]
    var cachedRunAtGeneration: UInt64 = .max
    /// Whether a background flush is running.
    var isFlushing = false
    /// Whether a heap trim runs on the pool (`trimHeapAfterLargeAdds`).
    var isTrimmingHeap = false
    /// Trim once more when the running trim ends: a large add finished (its memory is freed after the trim it
    /// started, or during a running one).
    var isHeapTrimPending = false
    /// Replies to durable changes not known to be on disk yet, in job order (see `repliesNeedFlush`).
    var repliesAwaitingFlush: [HeldReply] = []
    /// Store jobs started so far: the number of the last one.
    var startedJobs: UInt64 = 0
    /// The number of the last store job that completed.
    var completedJobs: UInt64 = 0

    var sessions: [UInt64: ClientSession] = [:]
    /// Session ids in connection order (ids only grow, so appending keeps it sorted): the dispatch ring.
    var sessionOrder: [UInt64] = []
    var nextSessionID: UInt64 = 1
    /// Sessions with output to flush at the end of the iteration.
    var dirtySessions: [ClientSession] = []
    /// Requests waiting for a store job, in arrival order.
    var queue: [QueuedRequest] = []
    /// Whether `queue` holds writes, as the running store job sees it (`StoreJob.flushesItself`).
    let writeArrivals = WriteArrivals()
    /// Whether a store job is running (at most one at a time).
    var jobInFlight = false
    /// Reads running on the thread pool (`Server+BackgroundReads`).
    var readsInFlight = 0
    /// Reads waiting for their turn on the thread pool, oldest first.
    var waitingReads: [BackgroundRead] = []
    /// The requests the running job applies, in order.
    var jobRequests: [QueuedRequest] = []
    /// Set once the stopping daemon has answered everything and said goodbye.
    var shutdownFinished = false
    /// Holders whose leases must be released (closed connections), applied in the next dispatch transaction.
    var holdersToRelease: [UInt64] = []
    /// The worker of each connection that said HELLO, for the run history's entries (`StoreJob.workers`); a
    /// closed connection's stays until the job that ends its leases has committed.
    var runWorkers: [UInt64: RunWorker] = [:]
    /// This daemon's name in the run history: the shared datastore's daemon name, else the host name.
    lazy var runDaemonName: String = {
        if case .postgres(let store)? = store { return store.options.daemonName }
        return HostName.current()
    }()
    /// Callback name → ids of sessions subscribed to it, in subscription order (the round-robin ring).
    var subscribers: [String: [UInt64]] = [:]
    /// Rotates the first subscriber considered by each dispatch round, for fairness.
    var dispatchRound = 0
    /// Whether due tasks may be waiting for a worker with free capacity (set by timer, commits, closes).
    var dispatchNeeded = false
    /// Whether the timer's deadline may be stale.
    var rearmNeeded = false
    /// The past deadline the timer was last armed for (see `rearm()`).
    var spinGuardDeadline: Int64?
    /// Tasks claimed ahead of their due time, in due order (see `planDispatch`).
    var staged = StagedQueue()
    /// Leases of staged tasks to give back uncounted (the worker left, or the task changed before its push).
    var stagedReleases: [StagedRelease] = []
    /// Pushed, unsettled task id → the session it was pushed to (to free the slot when its lease expires).
    var pushedHolders: [String: UInt64] = [:]
    /// Sessions with deliveries held for their socket (`Server+FlowControl`).
    var holdingSessions = Set<UInt64>()
    /// Sessions with tasks written ahead of their due time (`ClientSession.pushedAhead` not empty).
    var aheadSessions = Set<UInt64>()
    /// Bytes buffered in every session's decoder: partly received frames (`Configuration.maxInputBytes`).
    var bufferedInputBytes = 0
    /// Sessions past their HELLO and not closing: what `Configuration.maxConnections` limits.
    var connectedSessions = 0
    /// Sessions waiting for their HELLO, oldest first (`Configuration.maxHandshakingConnections`).
    var handshaking: [UInt64] = []
    /// When the running store job started (monotonic ns), and the longest job of the last five seconds
    /// (`dispatchLeadMicros`).
    var jobStartedNanos: UInt64 = 0
    var longJobMicros: Int64 = 0
    var longJobAtNanos: UInt64 = 0
    /// Bytes read in this loop iteration (`received`).
    var bytesReadThisIteration = 0
    /// Sessions whose reading stopped until the end of the iteration (`resumeThrottledReads`).
    var throttledSessions: [ClientSession] = []
    /// Large frames waiting to be decoded off the loop, oldest first, and how many are being decoded.
    var waitingDecodes: [LargeFrameDecode] = []
    var decodesInFlight = 0
    /// Closes stalled connections (`sweepStalledConnections`).
    var sweepTimer: CoarseTimer?
    var lag = LagRecorder()
    /// The Prometheus metrics (`GET_METRICS`, `GET /metrics`); made again by `run()` with the start time.
    var metrics = ServerMetrics(version: Server.serverVersion, startedAtMicros: 0)
    /// Scrapes waiting for the store read of a running one (`scrapeMetrics`).
    var metricsScrapes: [([UInt8]) -> Void] = []
    /// Whether a scrape's store read runs on the thread pool.
    var isMetricsReadRunning = false
    var startedAt: Int64 = 0
    var isShuttingDown = false
    let ownUID = getuid()
    let ownGID = getgid()

    /// Prepares a server; nothing is opened until `run()`.
    /// - Parameters:
    ///   - configuration: A configuration (validated again here).
    ///   - logger: Where events go.
    ///   - environment: The process environment (systemd variables).
    /// - Throws: `ConfigurationError` when the configuration is invalid.
    public init(configuration: Configuration, logger: Logger, environment: [String: String]) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.environment = environment
        notifier = SystemdNotifier(environment: environment, pid: getpid())
        validation = RequestValidation(maxBatch: configuration.maxBatch, maxKwargsBytes: configuration.maxKwargsBytes)
    }

    /// Starts serving and returns after a clean shutdown (SIGTERM or SIGINT).
    /// - Throws: `ServerError` when the daemon cannot start (socket in use, store locked, bad activation
    ///   socket...) or the loop cannot be closed cleanly.
    public func run() throws {
        Self.configureHeap()
        Self.configureThreadPool()
        startedAt = WallClock.nowMicros()
        metrics = ServerMetrics(version: Self.serverVersion, startedAtMicros: startedAt)
        let activation: SocketActivation.Outcome
        do {
            activation = configuration.socketActivation
                ? try SocketActivation.inspect(environment: environment, pid: getpid()) : .notActivated
        } catch {
            throw ServerError(error.description)
        }
        if case .notActivated = activation {
            try prepareSocketPath()
        }
        try openStore()
        do {
            try startLoop(activation: activation)
        } catch {
            closeStore()
            throw error
        }
        let where_ = listener?.path ?? "fd \(SocketActivation.firstDescriptor) (socket activation)"
        var metadata: Logger.Metadata = ["taskshed.socket": "\(where_)", "taskshed.pid": "\(getpid())"]
        if case .postgres(_, let schema, _) = configuration.datastore {
            // The data directory and sync mode are the LMDB store's; the PostgreSQL one was logged at its open.
            metadata["taskshed.datastore"] = "postgresql"
            metadata["taskshed.schema"] = "\(schema)"
        } else {
            metadata["taskshed.data_dir"] = "\(configuration.dataDirectory)"
            metadata["taskshed.sync"] = "\(configuration.sync)"
        }
        logger.notice("taskshedd \(Self.serverVersion) ready", metadata: metadata)
        if let failure = notifier.notify("READY=1\nSTATUS=Serving on \(where_)\nMAINPID=\(getpid())") {
            logger.warning("systemd notification failed: \(failure)")
        }
        loop.run()
        // The loop ran dry: every connection and handle is closed.
        closeStore()
        do {
            try loop.close()
        } catch {
            throw ServerError("event loop did not close cleanly: \(error)")
        }
        logger.notice("taskshedd stopped")
    }

    /// Refuses to start when another daemon listens on the socket path; removes a stale socket file; creates
    /// the socket's directory when missing.
    func prepareSocketPath() throws {
        let path = configuration.socketPath
        let state: SocketInspection.PathState
        do {
            state = try SocketInspection.probe(path: path)
        } catch {
            throw ServerError("cannot check socket \(path): \(error)")
        }
        switch state {
        case .live:
            throw ServerError("another daemon is already listening on \(path); stop it or choose another --socket")
        case .notASocket:
            throw ServerError("\(path) exists and is not a socket; refusing to replace it")
        case .stale:
            logger.info("removing stale socket file left by a previous daemon", metadata: ["taskshed.socket": "\(path)"])
            if unlink(path) != 0 && errno != ENOENT {
                throw ServerError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
            }
        case .absent:
            break
        }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), mode: 0o700)
        }
    }

    /// `mkdir -p` with a mode for the directories it creates.
    func makeDirectories(_ path: String, mode: mode_t) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw ServerError("cannot create directory \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    func startLoop(activation: SocketActivation.Outcome) throws {
        do {
            loop = try EventLoop()
        } catch {
            throw ServerError("cannot create the event loop: \(error)")
        }
        do {
            // The precise timer's wake-up lag depends on the loop thread's timer slack (50 µs default).
            try EventLoop.setTimerSlack(nanoseconds: 1)
        } catch {
            logger.warning("cannot set the timer slack to 1 ns, timer wake-ups will be up to 50 µs later: \(error)")
        }
        do {
            try createHandles(activation: activation)
        } catch {
            closeAllHandles()
            _ = loop.run()
            try? loop.close()
            throw ServerError("cannot listen on \(configuration.socketPath): \(error)")
        }
        do {
            try startMetricsListener()
        } catch {
            closeAllHandles()
            _ = loop.run()
            try? loop.close()
            throw error
        }
        dispatchNeeded = true
        rearmNeeded = true
    }

    /// Creates the listener, timer, iteration hook, signal watchers and watchdog on the loop.
    func createHandles(activation: SocketActivation.Outcome) throws(UVError) {
        let listener: UnixListener
        switch activation {
        case .activated(let descriptor, let count):
            listener = try UnixListener(loop: loop, adoptingDescriptor: descriptor)
            logger.info("adopted socket from systemd", metadata: ["taskshed.fd": "\(descriptor)",
                                                                  "taskshed.listen_fds": "\(count)"])
        case .notActivated:
            listener = try UnixListener(loop: loop, path: configuration.socketPath, mode: configuration.socketMode,
                                        group: configuration.socketGroup)
        }
        self.listener = listener
        listener.onConnection = { [unowned self] error in self.acceptConnection(error: error) }
        try listener.listen()

        timer = try PreciseTimer(loop: loop, onFire: { [unowned self] in
            self.dispatchNeeded = true
            self.rearmNeeded = true
        }, onClockChange: { [unowned self] in
            self.logger.notice("wall clock was set; re-arming the task timer by the new time")
            self.dispatchNeeded = true
            self.rearmNeeded = true
        })
        hook = try IterationHook(loop: loop) { [unowned self] in self.endOfIteration() }
        for signal in [SIGTERM, SIGINT] {
            signalWatchers.append(try SignalWatcher(loop: loop, signal: signal) { [unowned self] number in
                self.beginShutdown(signal: number)
            })
        }
        // SIGHUP's default action would end the daemon without its clean stop, e.g. when the terminal it was
        // started from closes, or for an operator who expects a reload. There is no configuration to reload.
        signalWatchers.append(try SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in
            self.logger.notice("SIGHUP received: there is no configuration to reload; still serving (SIGTERM stops)")
        })
        // A client that disappears while the daemon writes must not kill it with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let syncTimer = try CoarseTimer(loop: loop) { [unowned self] in self.syncIfNeeded() }
        syncTimer.unreference()
        syncTimer.start(afterMillis: 1000, repeatMillis: 1000)
        self.syncTimer = syncTimer
        let sweepTimer = try CoarseTimer(loop: loop) { [unowned self] in self.sweepStalledConnections() }
        sweepTimer.unreference()
        sweepTimer.start(afterMillis: sweepIntervalMillis, repeatMillis: sweepIntervalMillis)
        self.sweepTimer = sweepTimer
        if store?.isShared == true {
            // Other daemons add, claim and remove tasks: re-read the due times now and then (a claim for a task
            // another daemon made due finds it at the latest one poll interval later).
            let pollTimer = try CoarseTimer(loop: loop) { [unowned self] in
                self.sharedHintsStale = true
                self.startStoreJob()
            }
            pollTimer.unreference()
            let millis = UInt64(max(10, configuration.sharedPollMicros / 1000))
            pollTimer.start(afterMillis: millis, repeatMillis: millis)
            sharedPollTimer = pollTimer
            try startNotificationListener()
        }
        if let interval = notifier.watchdogPingIntervalMicros {
            let watchdog = try CoarseTimer(loop: loop) { [unowned self] in self.notifier.notify("WATCHDOG=1") }
            watchdog.unreference()
            let millis = UInt64(max(1, interval / 1000))
            watchdog.start(afterMillis: millis, repeatMillis: millis)
            self.watchdog = watchdog
        }
    }

    func closeAllHandles() {
        listener?.close()
        listener = nil
        metricsListener?.close()
        metricsListener = nil
        timer?.close()
        timer = nil
        hook?.close()
        hook = nil
        signalWatchers.forEach { $0.close() }
        if !signalWatchers.isEmpty {
            // Closing the last watcher restores the default action, which would kill a daemon that is only
            // finishing its stop with status 143 if a second SIGTERM came now.
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
        }
        signalWatchers = []
        watchdog?.close()
        watchdog = nil
        syncTimer?.close()
        syncTimer = nil
        sharedPollTimer?.close()
        sharedPollTimer = nil
        // The thread first: it signals the wake-up handle, which must outlive it.
        notificationListener?.stop()
        notificationListener = nil
        notificationWakeup?.close()
        notificationWakeup = nil
        sweepTimer?.close()
        sweepTimer = nil
    }

    /// SIGTERM/SIGINT: stop accepting, commit and answer what is queued, tell every client, close after the
    /// output drains (or after the grace period).
    func beginShutdown(signal: Int32) {
        guard !isShuttingDown else {
            logger.notice("second stop signal: closing connections now")
            for session in Array(sessions.values) { session.connection.close() }
            return
        }
        isShuttingDown = true
        logger.notice("stopping on signal \(signal)", metadata: ["taskshed.connections": "\(sessions.count)"])
        notifier.notify("STOPPING=1\nSTATUS=Stopping")
        listener?.close()
        listener = nil
        finishShutdown()
    }

    /// The rest of a shutdown, once no store job, background read or large-frame decode runs (else its completion
    /// calls it):
    /// answer everything read so far with its durable result, then say goodbye and close.
    func finishShutdown() {
        guard isShuttingDown, !shutdownFinished, !jobInFlight, readsInFlight == 0, decodesInFlight == 0,
              waitingDecodes.isEmpty else { return }
        shutdownFinished = true
        // Requests that waited in a decoder for their connection's unread replies were read: answer them too.
        for session in Array(sessions.values) where session.inputPaused && !session.isClosing { resumeInput(session) }
        // The waiting reads first: each connection's requests queued after one wait for its reply.
        answerWaitingReadsNow()
        runStoreJobsNow()
        finishFlushesNow()
        let goodbye = Frame(requestID: 0, message: .error(ErrorReply(code: .shuttingDown,
                                                                     message: "the daemon is stopping; reconnect later")))
        for session in Array(sessions.values) {
            session.isClosing = true
            FrameEncoder.encode(goodbye, into: &session.connection.outputBuffer)
            metrics.countError(.shuttingDown)
            session.connection.closeAfterFlush()
        }
        closeAllHandles()
        if !sessions.isEmpty {
            do {
                let grace = try CoarseTimer(loop: loop) { [unowned self] in
                    self.logger.warning("clients did not read their last replies in time; closing them",
                                        metadata: ["taskshed.connections": "\(self.sessions.count)"])
                    for session in Array(self.sessions.values) { session.connection.close() }
                    self.graceTimer?.close()
                    self.graceTimer = nil
                }
                grace.start(afterMillis: UInt64(configuration.shutdownGraceMicros / 1000))
                graceTimer = grace
            } catch {
                for session in Array(sessions.values) { session.connection.close() }
            }
        }
    }

    /// Called when the last session closed during shutdown: nothing keeps the loop alive any more.
    func shutdownSessionClosed() {
        if sessions.isEmpty {
            graceTimer?.close()
            graceTimer = nil
        }
    }
}
