import Glibc
import TaskShedStore

/// Listens on the schema's notification channel (`LISTEN`) on a thread of its own and its own connection, so
/// that a task added or made due by one daemon wakes the others at once instead of at their next poll.
///
/// Senders (`PostgresWriteBatch.notifyDue`) send at most one notification per callback per commit, and none for
/// tasks due beyond `PostgresStoreOptions.notifyHorizonMicros`: later tasks are found by the daemons' periodic
/// re-read in time. Notifications are only hints: one sent while this listener was disconnected is lost, so
/// after every (re)connection `onNotify(nil)` asks for a full re-read. The connection is retried with
/// backoff (0.1 s doubling to 5 s) for as long as the listener runs.
///
/// With a connection pooler in transaction mode (no `LISTEN`), notifications never arrive and the daemons
/// fall back to their periodic re-read.
public final class PostgresNotificationListener: @unchecked Sendable {
    private let connectionString: String
    private let channel: String
    private let ownPrefix: String
    private let onNotify: @Sendable (_ callbacks: [String]?) -> Void
    private let onProblem: @Sendable (_ message: String?) -> Void
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
    public init(options: PostgresStoreOptions, daemonID: Int64,
                onNotify: @escaping @Sendable (_ callbacks: [String]?) -> Void,
                onProblem: @escaping @Sendable (_ message: String?) -> Void)
    {
        connectionString = options.connectionString
        channel = PostgresTaskStore.channel(schema: options.schema)
        ownPrefix = "\(daemonID):"
        self.onNotify = onNotify
        self.onProblem = onProblem
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
            let listener = Unmanaged<PostgresNotificationListener>.fromOpaque(raw!).takeRetainedValue()
            listener.run()
            return nil
        }, box.toOpaque())
        if status == 0 {
            thread = created
        } else {
            box.release()
            onProblem("cannot start the notification thread (error \(status)); polling only")
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

    /// Reads notifications until the connection breaks (`false`) or `stop()` is called (`true`).
    private func listen(on conn: PGConnection) -> Bool {
        while true {
            var fds = [pollfd(fd: conn.socket, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 && errno == EINTR { continue }
            if stopping.isSet || fds[1].revents != 0 { return true }
            guard ready > 0, conn.consumeInput() else { return false }
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
