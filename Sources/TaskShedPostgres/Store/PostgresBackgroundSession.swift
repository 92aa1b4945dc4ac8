import Glibc
import TaskShedStore

/// A daemon's second connection to the database, on a thread of its own: it listens on the schema's
/// notification channel (`LISTEN`), so that a task added or made due by one daemon wakes the others at once
/// instead of at their next poll, and it sends this daemon's heartbeats.
///
/// Heartbeats go from here, not from the store jobs, so that a daemon whose job waits (a slow disk on the
/// database, a lock another daemon holds) is not declared lost: only a daemon that cannot reach the database
/// at all — stopped, killed, cut off — stops beating. Each heartbeat also ends the leases of daemons that have
/// sent none for the timeout (`PostgresWriteBatch.heartbeat`), but only once this daemon has itself beaten
/// without a gap for the timeout: after the database was down or out of reach, every daemon's last heartbeat
/// is old, and the first to reconnect must not declare lost the others, whose workers still run their tasks,
/// before they had the time to reconnect too (they retry at least every heartbeat interval).
///
/// Senders (`PostgresWriteBatch.notifyDue`) send at most one notification per callback per commit, and none for
/// tasks due beyond `PostgresStoreOptions.notifyHorizonMicros`: later tasks are found by the daemons' periodic
/// re-read in time. Notifications are only hints: one sent while this listener was disconnected is lost, so
/// after every (re)connection `onNotify(nil)` asks for a full re-read. The connection is retried with
/// backoff (0.1 s doubling to the heartbeat interval, an eighth of the timeout) for as long as the listener runs.
///
/// Behind a connection pooler in transaction mode (`PostgresStoreOptions.transactionPooler`) it does not listen,
/// and only beats. Elsewhere, whether notifications really arrive is checked, not assumed: behind such a pooler
/// (when the daemon was not told) `LISTEN` succeeds on whichever server connection ran it and nothing comes
/// back. Every fourth heartbeat
/// interval a probe notification (`probe:<daemon>:<n>`, which other daemons ignore) is sent from the store's
/// own connection, as another daemon's would be; when two probes in a row have not come back by the next one,
/// `onProblem` says that notifications do not arrive and the daemon relies on its periodic re-read
/// (`--shared-poll`); once a probe arrives again, `onProblem(nil)`.
public final class PostgresBackgroundSession: @unchecked Sendable {
    private let store: PostgresTaskStore
    private let connectionString: String
    private let channel: String
    private let ownPrefix: String
    private let heartbeatTimeoutMicros: Int64
    /// Whether it listens for notifications (and probes their delivery): not behind a transaction-mode pooler
    /// (`PostgresStoreOptions.transactionPooler`), where LISTEN cannot work; it only beats there.
    private let listens: Bool
    private let onNotify: @Sendable (_ callbacks: [String]?) -> Void
    private let onProblem: @Sendable (_ message: String?) -> Void
    private let onHeartbeat: @Sendable (HeartbeatOutcome) -> Void
    /// A pipe: `stop()` writes to `stopWriteFD` to wake the thread's `poll` on `stopFD`.
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private var thread: pthread_t?
    private let stopping = ManagedFlag()

    /// The probe of notification delivery (listener thread only).
    private struct Probe {
        /// The last probe sent, and whether it came back.
        var sequence = 0
        var answered = true
        /// Probes in a row that did not come back before the next was due.
        var missed = 0
        /// Whether "notifications do not arrive" was reported (and not yet taken back).
        var reported = false
    }
    private var probe = Probe()
    /// Probes in a row that must go unanswered before the daemon says notifications do not arrive.
    static let probesMissedBeforeReport = 2
    /// The payload prefix of probes; listeners skip other daemons' probes.
    static let probePrefix = "probe:"

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
        listens = !store.options.transactionPooler
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
        // Never longer than a heartbeat interval between tries: a daemon that takes longer to come back after an
        // outage than the others take to start judging would be declared lost by them.
        let maxBackoffMillis = Int32(clamping: max(heartbeatTimeoutMicros / 8_000, 10))
        var backoffMillis: Int32 = min(100, maxBackoffMillis)
        var failing = false
        while !stopping.isSet {
            let conn: PGConnection
            do {
                conn = try PGConnection(connectionString, preparesStatements: !store.options.transactionPooler)
                if listens { try conn.query("LISTEN \(PostgresSchema.quoted(channel))") }
            } catch {
                if !failing { onProblem("cannot listen for other daemons' notifications: \(error); retrying") }
                failing = true
                if waitForStop(millis: backoffMillis) { return }
                backoffMillis = min(backoffMillis * 2, maxBackoffMillis)
                continue
            }
            if failing { onProblem(nil) }
            failing = false
            backoffMillis = min(100, maxBackoffMillis)
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
        // The first probe after the first heartbeat interval: the LISTEN is in place by then.
        var nextProbe = nextBeat + interval
        // Since when heartbeats have gone through without a gap (`nil`: the last one failed).
        var beatingSince: Int64?
        probe.answered = true
        probe.missed = 0
        while true {
            let now = Self.monotonicMicros()
            if now >= nextProbe {
                nextProbe = now + interval * 4
                if listens { sendProbe() }
            }
            if now >= nextBeat {
                nextBeat = now + interval
                do {
                    let since = beatingSince ?? now
                    let outcome = try store.heartbeat(on: conn, timeoutMicros: heartbeatTimeoutMicros,
                                                      judgesOthers: now - since >= heartbeatTimeoutMicros,
                                                      now: Self.realtimeMicros())
                    beatingSince = since
                    if outcome.wasDeclaredLost || !outcome.lostDaemons.isEmpty { onHeartbeat(outcome) }
                } catch {
                    beatingSince = nil
                    if !conn.isOpen { return false }
                    onProblem("cannot send the heartbeat: \(error)")
                }
                continue
            }
            var fds = [pollfd(fd: conn.socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, Int32(max(1, (min(nextBeat, nextProbe) - now + 999) / 1000)))
            if ready < 0 && errno == EINTR { continue }
            if stopping.isSet || fds[1].revents != 0 { return true }
            if ready == 0 { continue }
            guard conn.consumeInput() else { return false }
            var callbacks: [String] = []
            var everything = false
            while let payload = conn.nextNotification() {
                if payload.hasPrefix(Self.probePrefix) {
                    if payload == probePayload(probe.sequence) { probeAnswered() }
                    continue
                }
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

    private func probePayload(_ sequence: Int) -> String { "\(Self.probePrefix)\(store.daemonID):\(sequence)" }

    /// Counts the previous probe if it did not come back (reporting after `probesMissedBeforeReport` in a row),
    /// then sends the next one through the store's connection. A probe that cannot be sent (the database out of
    /// reach: the store's jobs report that) counts for nothing.
    private func sendProbe() {
        if !probe.answered {
            probe.missed += 1
            if probe.missed >= Self.probesMissedBeforeReport && !probe.reported {
                probe.reported = true
                onProblem("notifications sent through PostgreSQL do not reach this daemon's LISTEN connection "
                    + "(\(probe.missed) probes in a row did not come back; a connection pooler in transaction mode "
                    + "does not keep LISTEN): other daemons' adds wake this one only at its periodic re-read")
            }
        }
        let next = probe.sequence + 1
        do {
            try store.notify(probePayload(next))
            probe.sequence = next
            probe.answered = false
        } catch {
            probe.answered = true
        }
    }

    private func probeAnswered() {
        probe.answered = true
        probe.missed = 0
        if probe.reported {
            probe.reported = false
            onProblem(nil)
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
