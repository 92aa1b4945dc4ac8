import Glibc
import TaskShedProtocol

/// The daemon's datastore (`--datastore`).
public enum Datastore: Sendable, Hashable {
    /// The embedded LMDB store in `Configuration.dataDirectory`.
    case lmdb
    /// A PostgreSQL database shared with other daemons: a libpq connection string or URI, the schema, and
    /// this daemon's name among those sharing it (`PostgresStoreOptions`).
    case postgres(connectionString: String, schema: String, daemonName: String?)
}

/// Everything the daemon can be told at start: where to listen and store, who may connect, limits and
/// timeouts. The executable fills it from flags; `validate()` checks it before anything is opened.
public struct Configuration: Sendable, Hashable {
    /// The Unix socket path to bind (ignored when a socket is inherited through systemd socket activation).
    public var socketPath: String
    /// The directory holding the LMDB store (created with mode 0700 when missing).
    public var dataDirectory: String
    /// Where tasks live: the embedded LMDB store in `dataDirectory` (default), or a PostgreSQL database that
    /// several daemons share.
    public var datastore: Datastore = .lmdb
    /// With a shared datastore, how often the daemon re-reads the due times that other daemons' changes moved
    /// (µs; default 250 ms): the longest a task added elsewhere and due at once waits before it is claimed here.
    public var sharedPollMicros: Int64 = 250_000
    /// With a shared datastore, how long a daemon may go without a heartbeat before the others end its leases
    /// and deliver its tasks elsewhere (µs; default 4 s). Heartbeats go every eighth of it, so a daemon that
    /// stops (SIGKILL, power loss, network cut) has its leases ended within the timeout plus one heartbeat
    /// interval plus one poll: under 5 s by default. A live daemon cut off from the database for longer loses
    /// its leases too: its workers' acks then get `LEASE_LOST`.
    public var heartbeatTimeoutMicros: Int64 = 4_000_000
    /// With a PostgreSQL datastore reached through a connection pooler in transaction mode: no prepared
    /// statements, no LISTEN, the daemon's name claimed through the registry (`PostgresStoreOptions.transactionPooler`).
    public var transactionPooler = false
    /// Permission bits of the socket file (default 0660: owner and group may connect).
    public var socketMode: UInt32 = 0o660
    /// Group id to give the socket file, or `nil` for the daemon's own group.
    public var socketGroup: UInt32?
    /// Peer uids allowed to connect, in addition to the daemon's own uid and root.
    public var allowedUIDs: Set<UInt32> = []
    /// Peer gids allowed to connect, in addition to the daemon's own gid.
    public var allowedGIDs: Set<UInt32> = []
    /// Lease length for a pushed or claimed task when the worker does not ask for one (µs).
    public var leaseTimeoutMicros: Int64 = 30_000_000
    /// Most client connections past the handshake (`HELLO` accepted); one more gets `TOO_MANY_CONNECTIONS` and
    /// is closed. Connections still waiting for their `HELLO` count against `maxHandshakingConnections` instead.
    public var maxConnections: Int = 1024
    /// Most connections waiting for their `HELLO` at once. At the limit a new connection makes the daemon close
    /// the oldest one still waiting (`TOO_MANY_CONNECTIONS`): a flood of silent connections then cannot lock real
    /// clients out, which send `HELLO` at once.
    public var maxHandshakingConnections: Int = 64
    /// Largest frame accepted and announced in `HELLO_OK` (the length prefix's value).
    public var maxFrameBytes: UInt32 = ProtocolLimits.defaultMaxFrameBytes
    /// Most tasks, ids or updates per request.
    public var maxBatch: UInt32 = ProtocolLimits.defaultMaxBatch
    /// Largest kwargs object in bytes.
    public var maxKwargsBytes: UInt32 = ProtocolLimits.defaultMaxKwargsBytes
    /// Time a new connection has to send `HELLO` (µs).
    public var handshakeTimeoutMicros: Int64 = 10_000_000
    /// Most reply bytes buffered for one connection that the peer has not read; past it the daemon stops reading
    /// that connection's requests until the peer has read them (pushes are flow-controlled separately, see
    /// `Server.pushWindowBytes`). Must hold at least one frame of `maxFrameBytes`.
    public var maxOutputBytes: Int = 160 << 20
    /// How long output queued for a connection may wait without the peer reading any of it before the daemon
    /// closes the connection with `SLOW_CONSUMER` and redelivers its tasks (µs).
    public var slowConsumerTimeoutMicros: Int64 = 30_000_000
    /// Run-history entries kept per task (`--history-per-task`; 0 records no history).
    public var historyPerTask = 20
    /// Run-history entries kept in the whole datastore (`--history-max-runs`).
    public var historyMaxRuns = 100_000
    /// How long a run-history entry is kept (`--history-max-age`, µs).
    public var historyMaxAgeMicros: Int64 = 7 * 86_400_000_000
    /// How long a frame that began arriving may go without a byte more before the daemon closes the connection
    /// with `FRAME_TIMEOUT` (µs): a half-sent frame holds memory.
    public var frameTimeoutMicros: Int64 = 30_000_000
    /// Most bytes of partly received frames the daemon holds for all connections together; past it the
    /// connection holding the largest partial frame is closed with `OVERLOADED` (and the next, until under).
    public var maxInputBytes: Int = 512 << 20
    /// Whether acknowledged writes are synced to disk (`false` trades durability for speed).
    public var sync: Bool = true
    /// Whether the store writes through a writable map (`StoreOptions.writeMap`; `--no-write-map` turns it off).
    public var writeMap: Bool = true
    /// Largest size the store's map (and data file) may grow to, in bytes: past it, less the reserve kept for
    /// finishing and removing tasks (`StoreOptions.reserveBytes`), adds get `STORE_FULL`.
    public var mapSizeMaxBytes: UInt64 = 64 << 30
    /// How long shutdown waits for clients to take their last replies before closing them anyway (µs).
    public var shutdownGraceMicros: Int64 = 5_000_000
    /// How long before a task's due time it is claimed for a worker and staged in memory (µs); at the due time
    /// only the socket write remains. 0 claims at the due time (the claim's commit then adds to the lag).
    ///
    /// The claim is a store job whose commit flushes the data file; the default covers that flush even on a
    /// busy disk (measured on the CI machine kind: 0.1 ms when quiet, 2–14 ms while other processes write).
    /// While store jobs take longer (a 100,000-task batch), the server claims further ahead: see
    /// `Server.dispatchLeadMicros`.
    public var dispatchLeadMicros: Int64 = 50_000
    /// Whether to adopt a socket passed by systemd (`LISTEN_FDS`) instead of binding `socketPath`.
    public var socketActivation: Bool = true
    /// Where to serve `GET /metrics` over HTTP (`--metrics-listen`), or `nil` for no HTTP endpoint (the default).
    public var metricsListen: MetricsAddress?
    /// Time a metrics connection has to send a complete request (µs; 10 s). Not a flag: tests shorten it through
    /// `applyMetricsTimeouts(environment:)`.
    public var metricsRequestTimeoutMicros: Int64 = 10_000_000
    /// Time an idle keep-alive metrics connection stays open, and a scraper has to read a response (µs; 30 s).
    /// Not a flag: tests shorten it through `applyMetricsTimeouts(environment:)`.
    public var metricsIdleTimeoutMicros: Int64 = 30_000_000

    /// The environment variables that set the metrics endpoint's timeouts, for tests that cannot wait 10 s for
    /// a slow client to be dropped. They are not flags because no operator needs other values.
    public static let metricsTimeoutVariables = (request: "TASKSHEDD_METRICS_REQUEST_TIMEOUT",
                                                 idle: "TASKSHEDD_METRICS_IDLE_TIMEOUT")

    /// Sets `metricsRequestTimeoutMicros` and `metricsIdleTimeoutMicros` from `metricsTimeoutVariables`, when
    /// set (durations, as the flags take them).
    /// - Parameter environment: The process environment.
    /// - Throws: `ConfigurationError` naming the variable when its value is not a duration.
    public mutating func applyMetricsTimeouts(environment: [String: String]) throws(ConfigurationError) {
        for (name, keyPath) in [(Self.metricsTimeoutVariables.request, \Configuration.metricsRequestTimeoutMicros),
                                (Self.metricsTimeoutVariables.idle, \Configuration.metricsIdleTimeoutMicros)] {
            guard let text = environment[name] else { continue }
            guard let micros = Self.parseDuration(text) else {
                throw ConfigurationError(option: name, message: "'\(text)' is not a duration such as 500ms or 10s")
            }
            self[keyPath: keyPath] = micros
        }
    }

    /// Creates a configuration with default limits.
    /// - Parameters:
    ///   - socketPath: The socket path to bind.
    ///   - dataDirectory: The store's directory.
    public init(socketPath: String, dataDirectory: String) {
        self.socketPath = socketPath
        self.dataDirectory = dataDirectory
    }

    /// The developer defaults: the shared default socket path (`DefaultSocketPath`) and a data directory under
    /// the user's state directory.
    ///
    /// Data directory, first that applies: `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`; the first
    /// entry when it lists several), `$XDG_STATE_HOME/taskshed`, `$HOME/.local/state/taskshed`,
    /// `./var/taskshed`.
    /// - Parameters:
    ///   - environment: The process environment.
    ///   - uid: The daemon's uid (for the fallback socket path).
    /// - Returns: A configuration with default limits.
    public static func defaults(environment: [String: String], uid: UInt32) -> Configuration {
        Configuration(socketPath: DefaultSocketPath.resolve(environment: environment, uid: uid),
                      dataDirectory: defaultDataDirectory(environment: environment))
    }

    /// The default data directory for an environment (see `defaults(environment:uid:)`).
    /// - Parameter environment: The process environment.
    /// - Returns: A directory path.
    public static func defaultDataDirectory(environment: [String: String]) -> String {
        if let state = environment["STATE_DIRECTORY"], let first = state.split(separator: ":").first {
            return String(first)
        }
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") {
            return xdg + "/taskshed"
        }
        if let home = environment["HOME"], home.hasPrefix("/") {
            return home + "/.local/state/taskshed"
        }
        return "./var/taskshed"
    }

    /// Parses `--datastore`: `lmdb`, `lmdb:DIR` (which also sets the data directory), a libpq URI
    /// (`postgresql://…`, `postgres://…`), or `postgresql:` followed by a libpq keyword/value string.
    /// - Returns: The datastore and, for `lmdb:DIR`, the directory.
    /// - Throws: `ConfigurationError` naming `--datastore` and the accepted forms.
    public static func parseDatastore(_ value: String, schema: String, daemonName: String?) throws(ConfigurationError)
        -> (Datastore, String?)
    {
        if value == "lmdb" { return (.lmdb, nil) }
        if value.hasPrefix("lmdb:") {
            let directory = String(value.dropFirst(5))
            guard !directory.isEmpty else {
                throw ConfigurationError(option: "--datastore", message: "lmdb: needs a directory (lmdb:/var/lib/taskshed)")
            }
            return (.lmdb, directory)
        }
        if value.hasPrefix("postgresql://") || value.hasPrefix("postgres://") {
            return (.postgres(connectionString: value, schema: schema, daemonName: daemonName), nil)
        }
        for prefix in ["postgresql:", "postgres:"] where value.hasPrefix(prefix) {
            let keywords = String(value.dropFirst(prefix.count))
            guard !keywords.isEmpty else {
                throw ConfigurationError(option: "--datastore", message:
                    "\(prefix) needs a libpq keyword/value string, e.g. '\(prefix)host=db dbname=taskshed'")
            }
            return (.postgres(connectionString: keywords, schema: schema, daemonName: daemonName), nil)
        }
        throw ConfigurationError(option: "--datastore", message:
            "'\(value)' is not a datastore; use lmdb, lmdb:DIR, postgresql://user@host/db (a libpq URI) or postgresql:KEYWORDS")
    }

    /// The first line of a `--datastore-file`, without surrounding white space.
    /// - Throws: `ConfigurationError` naming `--datastore-file` when it cannot be read or is empty.
    public static func readDatastoreFile(_ path: String) throws(ConfigurationError) -> String {
        guard let file = fopen(path, "r") else {
            throw ConfigurationError(option: "--datastore-file", message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        guard getline(&line, &capacity, file) > 0, let line else {
            throw ConfigurationError(option: "--datastore-file", message: "\(path) is empty")
        }
        var trimmed = Substring(String(cString: line))
        while let c = trimmed.first, c.isWhitespace { trimmed.removeFirst() }
        while let c = trimmed.last, c.isWhitespace { trimmed.removeLast() }
        let value = String(trimmed)
        guard !value.isEmpty else { throw ConfigurationError(option: "--datastore-file", message: "\(path) is empty") }
        return value
    }

    /// Checks every value; the error's message is one line naming the option and what is allowed.
    /// - Throws: `ConfigurationError`.
    public func validate() throws(ConfigurationError) {
        func fail(_ option: String, _ message: String) -> ConfigurationError {
            ConfigurationError(option: option, message: message)
        }
        if socketPath.isEmpty { throw fail("--socket", "must not be empty") }
        if socketPath.utf8.count > 107 {
            throw fail("--socket", "\(socketPath) is \(socketPath.utf8.count) bytes; a Unix socket path holds at most 107")
        }
        if dataDirectory.isEmpty { throw fail("--data-dir", "must not be empty") }
        if case .postgres(let connectionString, _, let daemonName) = datastore {
            if connectionString.isEmpty { throw fail("--datastore", "the PostgreSQL connection string is empty") }
            if let daemonName, daemonName.isEmpty || daemonName.utf8.count > 255 {
                throw fail("--daemon-name", "must be 1 to 255 bytes")
            }
        }
        if transactionPooler, case .lmdb = datastore {
            throw fail("--datastore-pooler", "applies only to a PostgreSQL datastore (--datastore postgresql://…)")
        }
        if heartbeatTimeoutMicros < 500_000 || heartbeatTimeoutMicros > 3_600_000_000 {
            throw fail("--heartbeat-timeout", "must be between 500ms and 1h")
        }
        if sharedPollMicros < 10_000 || sharedPollMicros > 60_000_000 {
            throw fail("--shared-poll", "must be between 10ms and 60s")
        }
        if socketMode & ~0o777 != 0 {
            throw fail("--socket-mode", "0" + String(socketMode, radix: 8) + " has bits outside 0777")
        }
        if socketMode & 0o600 != 0o600 {
            throw fail("--socket-mode", "0" + String(socketMode, radix: 8) + " must give the owner read and write (0600)")
        }
        if leaseTimeoutMicros < 1_000 || leaseTimeoutMicros > 86_400_000_000 {
            throw fail("--lease-timeout", "must be between 1ms and 24h")
        }
        if handshakeTimeoutMicros < 1_000 || handshakeTimeoutMicros > 3_600_000_000 {
            throw fail("--handshake-timeout", "must be between 1ms and 1h")
        }
        if maxConnections < 1 || maxConnections > 1_000_000 {
            throw fail("--max-connections", "must be between 1 and 1000000")
        }
        if maxHandshakingConnections < 1 || maxHandshakingConnections > 1_000_000 {
            throw fail("--max-handshaking", "must be between 1 and 1000000")
        }
        if historyPerTask < 0 || historyPerTask > 10_000 {
            throw fail("--history-per-task", "must be between 0 (no history) and 10000, got \(historyPerTask)")
        }
        if historyMaxRuns < 1 || historyMaxRuns > 100_000_000 {
            throw fail("--history-max-runs", "must be between 1 and 100000000, got \(historyMaxRuns) (--history-per-task 0 turns the history off)")
        }
        if historyMaxAgeMicros < 1_000_000 || historyMaxAgeMicros > 3_660 * 86_400_000_000 {
            throw fail("--history-max-age", "must be between 1s and 3660d (about 10 years)")
        }
        if slowConsumerTimeoutMicros < 10_000 || slowConsumerTimeoutMicros > 86_400_000_000 {
            throw fail("--slow-consumer-timeout", "must be between 10ms and 24h")
        }
        if frameTimeoutMicros < 10_000 || frameTimeoutMicros > 86_400_000_000 {
            throw fail("--frame-timeout", "must be between 10ms and 24h")
        }
        if maxFrameBytes < 4096 || maxFrameBytes > ProtocolLimits.defaultMaxFrameBytes * 16 {
            throw fail("--max-frame-bytes", "must be between 4096 and \(ProtocolLimits.defaultMaxFrameBytes * 16)")
        }
        if maxBatch < 1 || maxBatch > 1_000_000 {
            throw fail("--max-batch", "must be between 1 and 1000000")
        }
        if maxKwargsBytes < 2 || maxKwargsBytes >= maxFrameBytes {
            throw fail("--max-kwargs-bytes", "must be between 2 and the maximum frame size")
        }
        if maxOutputBytes < Int(maxFrameBytes) + ProtocolLimits.headerBytes {
            throw fail("--max-output-bytes", "\(maxOutputBytes) cannot hold one frame of --max-frame-bytes \(maxFrameBytes)")
        }
        if maxInputBytes < Int(maxFrameBytes) + ProtocolLimits.headerBytes {
            throw fail("--max-input-bytes", "\(maxInputBytes) cannot hold one frame of --max-frame-bytes \(maxFrameBytes)")
        }
        if mapSizeMaxBytes < 1 << 20 {
            throw fail("--map-size-max", "must be at least 1MiB")
        }
        if dispatchLeadMicros < 0 || dispatchLeadMicros > 1_000_000 {
            throw fail("--dispatch-lead", "must be between 0 and 1s")
        }
        if shutdownGraceMicros < 0 {
            throw fail("--shutdown-grace", "must not be negative")
        }
        if metricsRequestTimeoutMicros < 1_000 || metricsIdleTimeoutMicros < 1_000 {
            throw fail("--metrics-listen", "the request and idle timeouts must be at least 1ms")
        }
    }

    /// Parses a duration in the syntax `taskshedctl` reads too (`DurationSyntax`): `250us`, `500ms`, `0.2s`,
    /// `30s`, `1.5m`, `2h30m`, `1d`; a bare number means seconds (`30`, `0.5`), as in systemd.
    /// - Parameter text: The duration.
    /// - Returns: Microseconds, or `nil` if the text is not a positive-or-zero duration in whole microseconds.
    public static func parseDuration(_ text: String) -> Int64? {
        try? parseDurationMicros(text)
    }

    /// Parses a duration like `parseDuration(_:)`.
    /// - Parameter text: The duration.
    /// - Returns: Microseconds (>= 0).
    /// - Throws: `DurationSyntaxError` saying what is wrong ("unknown unit 'x'", "'1.5us' is not a whole number
    ///   of microseconds …").
    public static func parseDurationMicros(_ text: String) throws(DurationSyntaxError) -> Int64 {
        try DurationSyntax.parseMicros(text, bareNumberMicros: 1_000_000)
    }

    /// Parses a byte size such as `4096`, `64KiB`, `512MiB`, `8GiB`, `1TiB` (also `K`, `M`, `G`, `T`, `KB`...,
    /// all powers of 1024).
    /// - Parameter text: The size.
    /// - Returns: Bytes, or `nil` if the text is not a size.
    public static func parseByteSize(_ text: String) -> UInt64? {
        let units: [(String, UInt64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
            ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40), ("B", 1),
        ]
        var digits = Substring(text)
        var scale: UInt64 = 1
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            digits = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let value = UInt64(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// Parses an octal file mode such as `0660` or `660`.
    /// - Parameter text: The mode.
    /// - Returns: The mode bits, or `nil`.
    public static func parseMode(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.count <= 5 else { return nil }
        return UInt32(text, radix: 8)
    }

    /// Looks up a group by name or numeric id. Corresponds to `getgrnam_r`.
    /// - Parameter name: A group name, or a number.
    /// - Returns: The gid, or `nil` if there is no such group.
    public static func lookUpGroup(_ name: String) -> UInt32? {
        if let number = UInt32(name) { return number }
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return group.gr_gid
    }

    /// Looks up a user by name or numeric id. Corresponds to `getpwnam_r`.
    /// - Parameter name: A user name, or a number.
    /// - Returns: The uid, or `nil` if there is no such user.
    public static func lookUpUser(_ name: String) -> UInt32? {
        if let number = UInt32(name) { return number }
        var user = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getpwnam_r(name, &user, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return user.pw_uid
    }
}

/// A configuration value the daemon cannot start with.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The option at fault, as spelled on the command line (`--socket`).
    public var option: String
    /// What is wrong and what is allowed.
    public var message: String

    /// Creates an error.
    public init(option: String, message: String) {
        self.option = option
        self.message = message
    }

    /// `"<option>: <message>"`, one line.
    public var description: String { "\(option): \(message)" }
}
