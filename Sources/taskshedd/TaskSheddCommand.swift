import ArgumentParser
import Glibc
import Logging
import TaskShedProtocol
import TaskShedServer

/// `taskshedd`: parses flags into a `Configuration`, sets up logging, and runs the `Server` until SIGTERM or
/// SIGINT. Exit codes: 0 after a clean stop, 1 when the server fails at start or while running, 2 for invalid
/// flags or configuration (one line on stderr).
@main
struct TaskSheddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskshedd",
        abstract: "The TaskShed daemon: stores tasks and hands them to workers when they are due.",
        discussion: """
            Without flags it serves a developer: the socket is $TASKSHED_SOCKET, else \
            $XDG_RUNTIME_DIR/taskshed/taskshedd.sock, else /tmp/taskshed-<uid>/taskshedd.sock; the data directory \
            is $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/taskshed, else ~/.local/state/taskshed.

            Under systemd it adopts a socket passed by socket activation (LISTEN_FDS), reports readiness and \
            watchdog pings through NOTIFY_SOCKET, and writes journald priority prefixes on its log lines.

            Durations take a unit (250us, 500ms, 30s, 5m, 1h, 1d), may combine units largest first (2h30m) and \
            may have a decimal part down to 1us (0.2s, 1.5m); a bare number is seconds. Sizes take KiB, MiB, GiB \
            (or K, M, G). \
            Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime failure, 2 on invalid configuration.
            """,
        version: TaskShedVersion.current)

    @Option(name: .customLong("config"), help: ArgumentHelp(
        "Read settings from this TOML file: each key is a flag's long name without --, and flags given here "
            + "override it (README, \"Config file\"). No file is read without it.", valueName: "path"))
    var config: String?

    @Option(name: .customLong("socket"), help: ArgumentHelp(
        "Unix socket path to listen on (at most 107 bytes).", valueName: "path"))
    var socket: String?

    @Option(name: .customLong("data-dir"), help: ArgumentHelp(
        "Directory of the task store; created (mode 0700) if missing. One daemon per directory.", valueName: "dir"))
    var dataDirectory: String?

    @Option(name: .customLong("datastore"), help: ArgumentHelp(
        "Where tasks live: lmdb (the embedded store in --data-dir, the default), lmdb:DIR, or a PostgreSQL "
            + "database shared with other daemons: postgresql://user@host/db?sslmode=verify-full (any libpq URI) or "
            + "postgresql:KEYWORDS (a libpq keyword/value string, e.g. 'postgresql:host=db dbname=taskshed'). libpq "
            + "also reads the PG* environment variables and ~/.pgpass.", valueName: "store"))
    var datastore: String?

    @Option(name: .customLong("datastore-file"), help: ArgumentHelp(
        "Read --datastore's value from this file (first line), so a password in it stays out of the process list.",
        valueName: "path"))
    var datastoreFile: String?

    @Option(name: .customLong("schema"), help: ArgumentHelp(
        "PostgreSQL schema holding the tables (created if missing); daemons sharing tasks use the same one.",
        valueName: "name"))
    var schema: String = "taskshed"

    @Option(name: .customLong("daemon-name"), help: ArgumentHelp(
        "This daemon's name among those sharing a PostgreSQL datastore (default: the host name); unique per daemon.",
        valueName: "name"))
    var daemonName: String?

    @Option(name: .customLong("datastore-pooler"), help: ArgumentHelp(
        "With PostgreSQL: 'transaction' when --datastore leads to a connection pooler in transaction mode "
            + "(PgBouncer's pool_mode = transaction): no prepared statements, no LISTEN (other daemons' changes are "
            + "seen at the --shared-poll re-read), the name claimed through the daemons table; 'none' otherwise "
            + "(also for a pooler in session mode).", valueName: "mode"))
    var datastorePooler: String = "none"

    @Option(name: .customLong("shared-poll"), help: ArgumentHelp(
        "With PostgreSQL: how often to re-read due times that other daemons changed.", valueName: "duration"))
    var sharedPoll: String = "250ms"

    @Option(name: .customLong("heartbeat-timeout"), help: ArgumentHelp(
        "With PostgreSQL: how long a daemon may send no heartbeat before the others end its leases and deliver "
            + "its tasks elsewhere.", valueName: "duration"))
    var heartbeatTimeout: String = "4s"

    @Option(name: .customLong("socket-mode"), help: ArgumentHelp(
        "Permission bits of the socket file, in octal.", valueName: "mode"))
    var socketMode: String = "0660"

    @Option(name: .customLong("socket-group"), help: ArgumentHelp(
        "Group (name or gid) that owns the socket file; with mode 0660 its members may connect.", valueName: "group"))
    var socketGroup: String?

    @Option(name: .customLong("allow-uid"), help: ArgumentHelp(
        "A peer user (name or uid) allowed to connect, besides the daemon's own uid and root. Repeatable.",
        valueName: "user"))
    var allowUID: [String] = []

    @Option(name: .customLong("allow-gid"), help: ArgumentHelp(
        "A peer group (name or gid) allowed to connect, besides the daemon's own gid and the socket group. Repeatable.",
        valueName: "group"))
    var allowGID: [String] = []

    @Option(name: .customLong("lease-timeout"), help: ArgumentHelp(
        "How long a worker holds a delivered task before it is redelivered, unless the worker asks for another lease.",
        valueName: "duration"))
    var leaseTimeout: String = "30s"

    @Option(name: .customLong("max-connections"), help: ArgumentHelp(
        "Most client connections past their HELLO at once; one more gets TOO_MANY_CONNECTIONS.", valueName: "n"))
    var maxConnections: Int = 1024

    @Option(name: .customLong("max-handshaking"), help: ArgumentHelp(
        "Most connections waiting for their HELLO at once; at the limit a new connection closes the oldest one "
            + "still waiting.", valueName: "n"))
    var maxHandshaking: Int = 64

    @Option(name: .customLong("max-frame-bytes"), help: ArgumentHelp(
        "Largest frame accepted and announced to clients.", valueName: "size"))
    var maxFrameBytes: String = "64MiB"

    @Option(name: .customLong("max-batch"), help: ArgumentHelp(
        "Most tasks, ids or updates in one request.", valueName: "n"))
    var maxBatch: UInt32 = ProtocolLimits.defaultMaxBatch

    @Option(name: .customLong("max-kwargs-bytes"), help: ArgumentHelp(
        "Largest kwargs JSON object of a task.", valueName: "size"))
    var maxKwargsBytes: String = "64KiB"

    @Option(name: .customLong("handshake-timeout"), help: ArgumentHelp(
        "Time a new connection has to send HELLO before it is closed with HANDSHAKE_TIMEOUT.", valueName: "duration"))
    var handshakeTimeout: String = "10s"

    @Option(name: .customLong("max-output-bytes"), help: ArgumentHelp(
        "Most unread reply bytes buffered for one client; past it the daemon reads no more of its requests until "
            + "it has read its replies. At least one maximum frame.", valueName: "size"))
    var maxOutputBytes: String = "160MiB"

    @Option(name: .customLong("history-per-task"), help: ArgumentHelp(
        "Run-history entries kept per task (the newest); 0 records no history.", valueName: "n"))
    var historyPerTask: Int = 20

    @Option(name: .customLong("history-max-runs"), help: ArgumentHelp(
        "Run-history entries kept in the whole datastore; the oldest go first.", valueName: "n"))
    var historyMaxRuns: Int = 100_000

    @Option(name: .customLong("history-max-age"), help: ArgumentHelp(
        "How long a run-history entry is kept after its run ended.", valueName: "duration"))
    var historyMaxAge: String = "7d"

    @Option(name: .customLong("slow-consumer-timeout"), help: ArgumentHelp(
        "How long output for a client may wait without the client reading any of it; then the client is "
            + "disconnected with SLOW_CONSUMER and its tasks are redelivered.", valueName: "duration"))
    var slowConsumerTimeout: String = "30s"

    @Option(name: .customLong("frame-timeout"), help: ArgumentHelp(
        "How long a frame that began arriving may go without a byte more before the connection is closed with "
            + "FRAME_TIMEOUT.", valueName: "duration"))
    var frameTimeout: String = "30s"

    @Option(name: .customLong("max-input-bytes"), help: ArgumentHelp(
        "Most bytes of partly received frames held for all clients together; past it the client with the "
            + "largest is disconnected with OVERLOADED. At least one maximum frame.", valueName: "size"))
    var maxInputBytes: String = "512MiB"

    @Flag(name: .customLong("sync"), inversion: .prefixedNo, help: ArgumentHelp(
        "Fsync commits (the default). --no-sync does not: faster, but a power failure or kernel crash may lose acknowledged changes or "
            + "corrupt the store (a daemon crash loses nothing)."))
    var sync = true

    @Flag(name: .customLong("write-map"), inversion: .prefixedNo, help: ArgumentHelp(
        "Write the store through a writable map (the default). --no-write-map writes it with pwrite instead of through a writable map: slower, but better for a store much "
            + "larger than memory, and the data file is not sized and allocated to the whole map."))
    var writeMap = true

    @Option(name: .customLong("map-size-max"), help: ArgumentHelp(
        "Largest size the store may grow to; past it, less a reserve for finishing and removing tasks, "
            + "adding tasks fails with STORE_FULL.", valueName: "size"))
    var mapSizeMax: String = "64GiB"

    @Option(name: .customLong("shutdown-grace"), help: ArgumentHelp(
        "On SIGTERM, how long to wait for clients to read their last replies before closing them.",
        valueName: "duration"))
    var shutdownGrace: String = "5s"

    @Option(name: .customLong("dispatch-lead"), help: ArgumentHelp(
        "How long before its due time a task is claimed for a worker and held in memory, so that at the due time "
            + "only the socket write remains; it must cover a commit's disk flush. 0 claims at the due time. While "
            + "store jobs take long, the lead grows to twice the longest job of the last 5 s (at most 2 s).",
        valueName: "duration"))
    var dispatchLead: String = "50ms"

    @Flag(name: .customLong("socket-activation"), inversion: .prefixedNo, help: ArgumentHelp(
        "Serve a socket passed by systemd (LISTEN_FDS) if there is one (the default). --no-socket-activation "
            + "ignores it and binds --socket instead."))
    var socketActivation = true

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp(
        "Serve GET /metrics (Prometheus text format) over HTTP on this address: a numeric IPv4 address and port "
            + "(127.0.0.1:9464) or an IPv6 one in brackets ([::1]:9464); port 0 picks a free port, logged at start "
            + "(\"metrics: serving http://…/metrics\"). Off by default. Nothing but the metrics is served, and "
            + "there is no authentication: listen on a loopback or private address.", valueName: "host:port"))
    var metricsListen: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp(
        "Least severe events logged: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: String = "info"

    @Option(name: .customLong("log-format"), help: ArgumentHelp(
        "How log lines are written on stderr: text (the default) or json (one JSON object per line, for log "
            + "shippers).", valueName: "format"))
    var logFormat: String = "text"

    /// Parses, and prints a bad flag as one line (argument-parser would add the whole usage text).
    ///
    /// With `--config`, the command line is parsed alone first (for `--help`, bad flags and the file's path), then
    /// again after the file's settings turned into arguments (`ConfigurationFile.arguments(overriddenBy:)`), so
    /// that a key goes through exactly the parsing and checks of its flag.
    static func main() {
        let commandLine = Array(CommandLine.arguments.dropFirst())
        do {
            var parsed = try parseAsRoot(commandLine)
            guard let command = parsed as? TaskSheddCommand else {
                // `--help` parses as argument-parser's help command; running it throws the help text.
                try parsed.run()
                Glibc.exit(0)
            }
            guard let path = command.config else { Glibc.exit(command.start(file: nil, commandLine: commandLine)) }
            let file: ConfigurationFile
            do throws(ConfigurationFileError) {
                file = try ConfigurationFile.load(path: path)
            } catch {
                failConfiguration(error.description)
            }
            let merged: TaskSheddCommand
            do {
                merged = try parse(file.arguments(overriddenBy: commandLine) + commandLine)
            } catch {
                // The command line parsed alone and the file's types were checked: what is left is the file's.
                failConfiguration("\(path): \(message(for: error))")
            }
            Glibc.exit(merged.start(file: file, commandLine: commandLine))
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            failConfiguration(message(for: error))
        }
    }

    /// What the logging flags ask for; the daemon's core never sees it (only executables configure logging).
    struct LogSettings {
        var level: Logger.Level
        var format: StderrLogHandler.Format
    }

    /// Builds the configuration from the flags.
    func makeConfiguration(environment: [String: String]) throws(ConfigurationError) -> (Configuration, LogSettings) {
        var configuration = Configuration.defaults(environment: environment, uid: getuid())
        if let socket { configuration.socketPath = socket }
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if datastore != nil && datastoreFile != nil {
            throw ConfigurationError(option: "--datastore-file", message: "give --datastore or --datastore-file, not both")
        }
        var datastoreValue = datastore
        if let datastoreFile { datastoreValue = try Configuration.readDatastoreFile(datastoreFile) }
        if let datastoreValue {
            let (store, directory) = try Configuration.parseDatastore(datastoreValue, schema: schema,
                                                                      daemonName: daemonName)
            configuration.datastore = store
            if let directory { configuration.dataDirectory = directory }
        }
        switch datastorePooler {
        case "none", "session": configuration.transactionPooler = false
        case "transaction": configuration.transactionPooler = true
        default:
            throw ConfigurationError(option: "--datastore-pooler",
                                     message: "'\(datastorePooler)' is not a pooler mode; use 'transaction' or 'none'")
        }
        configuration.sharedPollMicros = try duration(sharedPoll, "--shared-poll")
        configuration.heartbeatTimeoutMicros = try duration(heartbeatTimeout, "--heartbeat-timeout")
        guard let mode = Configuration.parseMode(socketMode) else {
            throw ConfigurationError(option: "--socket-mode", message: "'\(socketMode)' is not an octal mode such as 0660")
        }
        configuration.socketMode = mode
        if let socketGroup {
            guard let gid = Configuration.lookUpGroup(socketGroup) else {
                throw ConfigurationError(option: "--socket-group", message: "no group named '\(socketGroup)'")
            }
            configuration.socketGroup = gid
        }
        for user in allowUID {
            guard let uid = Configuration.lookUpUser(user) else {
                throw ConfigurationError(option: "--allow-uid", message: "no user named '\(user)'")
            }
            configuration.allowedUIDs.insert(uid)
        }
        for group in allowGID {
            guard let gid = Configuration.lookUpGroup(group) else {
                throw ConfigurationError(option: "--allow-gid", message: "no group named '\(group)'")
            }
            configuration.allowedGIDs.insert(gid)
        }
        configuration.leaseTimeoutMicros = try duration(leaseTimeout, "--lease-timeout")
        configuration.handshakeTimeoutMicros = try duration(handshakeTimeout, "--handshake-timeout")
        configuration.shutdownGraceMicros = try duration(shutdownGrace, "--shutdown-grace")
        configuration.dispatchLeadMicros = try duration(dispatchLead, "--dispatch-lead")
        configuration.slowConsumerTimeoutMicros = try duration(slowConsumerTimeout, "--slow-consumer-timeout")
        configuration.frameTimeoutMicros = try duration(frameTimeout, "--frame-timeout")
        configuration.historyPerTask = historyPerTask
        configuration.historyMaxRuns = historyMaxRuns
        configuration.historyMaxAgeMicros = try duration(historyMaxAge, "--history-max-age")
        configuration.maxConnections = maxConnections
        configuration.maxHandshakingConnections = maxHandshaking
        let frame = try size(maxFrameBytes, "--max-frame-bytes")
        guard frame <= UInt64(UInt32.max) else {
            throw ConfigurationError(option: "--max-frame-bytes", message: "must fit in 32 bits")
        }
        configuration.maxFrameBytes = UInt32(frame)
        configuration.maxBatch = maxBatch
        let kwargs = try size(maxKwargsBytes, "--max-kwargs-bytes")
        configuration.maxKwargsBytes = UInt32(min(kwargs, UInt64(UInt32.max)))
        let output = try size(maxOutputBytes, "--max-output-bytes")
        configuration.maxOutputBytes = Int(min(output, UInt64(Int.max)))
        let input = try size(maxInputBytes, "--max-input-bytes")
        configuration.maxInputBytes = Int(min(input, UInt64(Int.max)))
        configuration.mapSizeMaxBytes = try size(mapSizeMax, "--map-size-max")
        configuration.sync = sync
        configuration.writeMap = writeMap
        configuration.socketActivation = socketActivation
        if let metricsListen { configuration.metricsListen = try MetricsAddress.parse(metricsListen) }
        try configuration.applyMetricsTimeouts(environment: environment)
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ConfigurationError(option: "--log-level",
                                     message: "'\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard let format = StderrLogHandler.Format(rawValue: logFormat.lowercased()) else {
            throw ConfigurationError(option: "--log-format", message: "'\(logFormat)' is not one of "
                + StderrLogHandler.Format.allCases.map(\.rawValue).joined(separator: ", "))
        }
        try configuration.validate()
        return (configuration, LogSettings(level: level, format: format))
    }

    private func duration(_ text: String, _ option: String) throws(ConfigurationError) -> Int64 {
        do {
            return try Configuration.parseDurationMicros(text)
        } catch {
            throw ConfigurationError(
                option: option,
                message: "'\(text)' is not a duration: \(error.problem) (write e.g. 500ms, 0.2s, 30s, 1.5m or 2h30m; a bare number is seconds)")
        }
    }

    private func size(_ text: String, _ option: String) throws(ConfigurationError) -> UInt64 {
        guard let bytes = Configuration.parseByteSize(text) else {
            throw ConfigurationError(option: option, message: "'\(text)' is not a size such as 4096, 64KiB or 8GiB")
        }
        return bytes
    }

    /// Runs the daemon; returns the process exit status.
    /// - Parameters:
    ///   - file: The config file the flags were merged with, to name its line in an error about one of its keys.
    ///   - commandLine: The command-line arguments, to tell which options the file set.
    func start(file: ConfigurationFile?, commandLine: [String]) -> Int32 {
        let environment = currentEnvironment()
        let (configuration, log): (Configuration, LogSettings)
        do {
            (configuration, log) = try makeConfiguration(environment: environment)
        } catch {
            Self.failConfiguration(file?.locate(error, commandLine: commandLine)?.description ?? error.description)
        }
        // JSON gets the priority prefix only when stderr really is the journal: elsewhere it would break the JSON.
        let journal = log.format == .json ? StderrLogHandler.stderrIsJournal(environment: environment)
            : StderrLogHandler.runsUnderSystemd(environment: environment)
        LoggingSystem.bootstrap { label in
            StderrLogHandler(label: label, level: log.level, journalFormat: journal, lineFormat: log.format)
        }
        var logger = Logger(label: "taskshedd")
        logger.logLevel = log.level
        do {
            let server = try Server(configuration: configuration, logger: logger, environment: environment)
            try server.run()
            return 0
        } catch {
            logger.critical("taskshedd stopped: \(error)")
            return 1
        }
    }

    static func failConfiguration(_ message: String) -> Never {
        let line = Array(("taskshedd: " + message.split(separator: "\n").joined(separator: " ") + "\n").utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        Glibc.exit(2)
    }

    func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
