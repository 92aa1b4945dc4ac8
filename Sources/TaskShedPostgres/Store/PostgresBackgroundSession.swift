import Glibc
import TaskShedStore

/// A daemon's second connection to the database, on a thread of its own: it listens on the schema's
/// notification channel (`LISTEN`), so that a task added or made due by one daemon wakes the others at once
/// instead of at their next poll, and it sends this daemon's heartbeats.
///
/// Heartbeats go from here, not from the store jobs, so that a daemon whose job waits (a slow disk on the
/// database, a lock another daemon holds) is not declared lost: only a daemon that cannot reach the database
/// at all — stopped, killed, cut off — stops beating. Each heartbeat also ends the leases of daemons that have
/// sent none for the timeout (`PostgresWriteBatch.heartbeat`).
///
/// Senders (`PostgresWriteBatch.notifyDue`) send at most one notification per callback per commit, and none for
/// tasks due beyond `PostgresStoreOptions.notifyHorizonMicros`: later tasks are found by the daemons' periodic
/// re-read in time. Notifications are only hints: one sent while this listener was disconnected is lost, so
/// after every (re)connection `onNotify(nil)` asks for a full re-read. The connection is retried with
/// backoff (0.1 s doubling to 5 s) for as long as the listener runs.
///
/// With a connection pooler in transaction mode (no `LISTEN`), notifications never arrive and the daemons
/// fall back to their periodic re-read.
public final class PostgresBackgroundSession: @unchecked Sendable {
    private let store: PostgresTaskStore
    private let connectionString: String
    private let channel: String
    private let ownPrefix: String
    private let heartbeatTimeoutMicros: Int64
    private let onNotify: @Sendable (_ callbacks: [String]?) -> Void
    private let onProblem: @Sendable (_ message: String?) -> Void
    private let onHeartbeat: @Sendable (HeartbeatOutcome) -> Void
    /// A pipe: `stop()` writes to `stopWriteFD` to wake the thread's `poll` on `stopFD`.
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private var thread: pthread_t?
    private let stopping = ManagedFlag()

    /// Creates a listener; `start()` begins listening.
    /// - Parameters:
    ///   - onNotify: Called on the listener's thread with the callbacks named by other daemons' notifications
    ///     (several coalesced), or `nil` after a (re)connection: re-read everything.
    ///   - onProblem: Called on the listener's thread with a message when listening fails (`nil` once it works
    ///     again), for the daemon's log.
    ///   - heartbeatTimeoutMicros: How long a daemon may send no heartbeat before it is declared lost; this
    ///     one beats every eighth of it.
    ///   - onHeartbeat: Called on the thread after a heartbeat that found something (this daemon declared
    ///     lost meanwhile, or other daemons lost now).
    public init(store: PostgresTaskStore, heartbeatTimeoutMicros: Int64,
                onNotify: @escaping @Sendable (_ callbacks: [String]?) -> Void,
                onProblem: @escaping @Sendable (_ message: String?) -> Void,
                onHeartbeat: @escaping @Sendable (HeartbeatOutcome) -> Void)
    {
        self.store = store
        connectionString = store.options.connectionString
        channel = PostgresTaskStore.channel(schema: store.options.schema)
        ownPrefix = "\(store.daemonID):"
        self.heartbeatTimeoutMicros = heartbeatTimeoutMicros
        self.onNotify = onNotify
        self.onProblem = onProblem
        self.onHeartbeat = onHeartbeat
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } else {
            fds = [-1, -1]
        }
        stopFD = fds[0]
        stopWriteFD = fds[1]
    }

    deinit {
        stop()
        close(stopFD)
        close(stopWriteFD)
    }

    /// Starts the listening thread.
    public func start() {
        guard thread == nil else { return }
        let box = Unmanaged.passRetained(self)
        var created = pthread_t()
        let status = pthread_create(&created, nil, { raw in
            let listener = Unmanaged<PostgresBackgroundSession>.fromOpaque(raw!).takeRetainedValue()
            listener.run()
            return nil
        }, box.toOpaque())
        if status == 0 {
            thread = created
        } else {
            box.release()
            onProblem("cannot start the notification and heartbeat thread (error \(status)); without heartbeats other daemons will declare this one lost")
        }
    }

    /// Stops the thread and waits for it (its callbacks do not run after this returns).
    public func stop() {
        guard let thread else { return }
        stopping.set()
        var one: UInt8 = 1
        _ = write(stopWriteFD, &one, 1)
        pthread_join(thread, nil)
        self.thread = nil
    }

    private func run() {
        var backoffMillis: Int32 = 100
        var failing = false
        while !stopping.isSet {
            let conn: PGConnection
            do {
                conn = try PGConnection(connectionString)
                try conn.query("LISTEN \(PostgresSchema.quoted(channel))")
            } catch {
                if !failing { onProblem("cannot listen for other daemons' notifications: \(error); retrying") }
                failing = true
                if waitForStop(millis: backoffMillis) { return }
                backoffMillis = min(backoffMillis * 2, 5_000)
                continue
            }
            if failing { onProblem(nil) }
            failing = false
            backoffMillis = 100
            // Whatever was sent while not listening is lost: re-read everything.
            onNotify(nil)
            if listen(on: conn) { return }
            if !stopping.isSet { onProblem("the notification connection to PostgreSQL broke; reconnecting") }
            failing = true
        }
    }

    /// Reads notifications and sends heartbeats until the connection breaks (`false`) or `stop()` is called
    /// (`true`).
    private func listen(on conn: PGConnection) -> Bool {
        let interval = max(heartbeatTimeoutMicros / 8, 10_000)
        var nextBeat = Self.monotonicMicros()
        while true {
            let now = Self.monotonicMicros()
            if now >= nextBeat {
                nextBeat = now + interval
                do {
                    let outcome = try store.heartbeat(on: conn, timeoutMicros: heartbeatTimeoutMicros,
                                                      now: Self.realtimeMicros())
                    if outcome.wasDeclaredLost || !outcome.lostDaemons.isEmpty { onHeartbeat(outcome) }
                } catch {
                    if !conn.isOpen { return false }
                    onProblem("cannot send the heartbeat: \(error)")
                }
                continue
            }
            var fds = [pollfd(fd: conn.socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, Int32(max(1, (nextBeat - now + 999) / 1000)))
            if ready < 0 && errno == EINTR { continue }
            if stopping.isSet || fds[1].revents != 0 { return true }
            if ready == 0 { continue }
            guard conn.consumeInput() else { return false }
            var callbacks: [String] = []
            var everything = false
            while let payload = conn.nextNotification() {
                guard !payload.hasPrefix(ownPrefix) else { continue }
                let callback = payload.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
                if callback == "*" || callback.isEmpty { everything = true } else { callbacks.append(callback) }
            }
            if everything {
                onNotify(nil)
            } else if !callbacks.isEmpty {
                onNotify(callbacks)
            }
        }
    }

    private static func monotonicMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    private static func realtimeMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Sleeps up to `millis`, or until `stop()`; returns whether stopping.
    private func waitForStop(millis: Int32) -> Bool {
        var fd = pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)
        _ = poll(&fd, 1, millis)
        return stopping.isSet
    }
}

/// A flag set once from one thread and read from another.
private final class ManagedFlag: @unchecked Sendable {
    private var value = false
    private let lock = PthreadMutex()

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
