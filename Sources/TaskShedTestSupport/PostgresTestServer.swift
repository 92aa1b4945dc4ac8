import Glibc
import Synchronization

/// Throw-away PostgreSQL servers for the tests of the PostgreSQL-backed store: one server shared by the whole test
/// process, helpers to isolate tests on it, and `psql` for tests that inspect or sabotage the database.
///
/// Servers are started and stopped by `scripts/pg-test-server.sh` (found by walking up from this file's
/// `#filePath`): a fresh cluster in a directory under `/tmp`, reached through a Unix socket in that directory, trust
/// authentication, superuser `taskshed`, fsync on. `scripts/test.sh` starts one server for the whole run and passes
/// its connection string in `TASKSHED_TEST_POSTGRES`; a test run by hand (`swift test --filter X`) starts one for
/// its process on first use instead. Tests share that server and isolate themselves by schema
/// (`uniqueSchemaName(_:)`): a schema costs a statement, a cluster a second. A test that restarts or stops its
/// server uses a `PostgresTestInstance` of its own; one that fails over, a `PostgresReplicaPair`.
public enum PostgresTestServer {
    /// The environment variable holding the connection string of a running server for the tests to share.
    public static let environmentVariable = "TASKSHED_TEST_POSTGRES"

    /// The shared server's start-up outcome (`nil` before the first call) and, once started here, the server.
    private struct Shared {
        var outcome: Result<String, TestSupportError>?
        var server: PostgresServerProcess?
    }

    private static let shared = Mutex(Shared())

    /// psql from `pg_config --bindir`, else `psql` from `PATH`: Debian's `/usr/bin/psql` is a Perl wrapper that
    /// picks a version and costs about 25 ms a call on top of psql's own 12.
    private static let psqlPath: String = {
        if let result = try? CommandRunner.run("pg_config", ["--bindir"], searchPath: true), result.exitCode == 0 {
            let candidate = result.standardOutput.split(separator: "\n").first.map { $0 + "/psql" } ?? ""
            if !candidate.isEmpty && access(candidate, X_OK) == 0 { return candidate }
        }
        return "psql"
    }()
    private static let schemaCounter = Atomic<Int>(0)

    /// The connection string of the server that this test process shares.
    ///
    /// `TASKSHED_TEST_POSTGRES` when it is set and not empty (scripts/test.sh sets it). Otherwise the first call
    /// starts a server with `scripts/pg-test-server.sh start` and registers an `atexit` handler that stops it; if the
    /// process dies without running it (a crash, SIGKILL), a watcher process stops the server instead. A failed
    /// start is remembered: later calls throw the same error at once instead of starting again.
    /// - Returns: A libpq keyword/value connection string, `host=DIR port=PORT user=taskshed dbname=postgres`.
    /// - Throws: `TestSupportError` when the script is not found or the server does not start (the message holds
    ///   the script's stderr, with the tail of the server log).
    /// - Important: Thread-safe; concurrent first calls start one server, the others wait for it.
    public static func sharedConnectionString() throws -> String {
        if let configured = getenv(environmentVariable).map({ String(cString: $0) }), !configured.isEmpty {
            return configured
        }
        let outcome = shared.withLock { state -> Result<String, TestSupportError> in
            if let outcome = state.outcome { return outcome }
            let outcome: Result<String, TestSupportError>
            do {
                let server = try PostgresServerProcess.start(tcp: false)
                state.server = server
                atexit { PostgresTestServer.stopSharedServer() }
                outcome = .success(server.connectionString)
            } catch let error as TestSupportError {
                outcome = .failure(error)
            } catch {
                outcome = .failure(TestSupportError("starting the shared PostgreSQL server: \(error)"))
            }
            state.outcome = outcome
            return outcome
        }
        return try outcome.get()
    }

    /// Stops the shared server at process exit. Skips it when another thread holds the lock (exiting while a first
    /// call is starting the server): the watcher stops the server then.
    private static func stopSharedServer() {
        let server = shared.withLockIfAvailable { state -> PostgresServerProcess? in
            defer { state.server = nil }
            return state.server
        }
        if let server = server.flatMap({ $0 }) { server.stop() }
    }

    /// A schema name that no other call returns, in this process or another, for a test to create and work in.
    ///
    /// Tests of one run share a server (and other runs may share it too, through `TASKSHED_TEST_POSTGRES`), so each
    /// test works in a schema of its own instead of a database: cheaper to create, and one connection string serves
    /// all tests. The name is the prefix (lower-cased; characters other than ASCII letters, digits and `_` become
    /// `_`; an `s` put in front if it would not start with a letter or `_`), then the process id, a per-process
    /// counter and a random number, joined by `_`: an identifier that needs no quoting, at most 63 bytes (longer
    /// prefixes are cut), the longest PostgreSQL keeps.
    /// - Parameter prefix: A readable part, such as the test's name.
    /// - Returns: The name, such as `claim_due_tasks_4711_3_k2f9x1`.
    /// - Important: Thread-safe.
    public static func uniqueSchemaName(_ prefix: String) -> String {
        var clean = String(prefix.lowercased().unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "a"..."z", "0"..."9", "_": return Character(scalar)
            default: return "_"
            }
        })
        if clean.first.map({ !($0.isLetter || $0 == "_") }) ?? true { clean = "s" + clean }
        let count = schemaCounter.wrappingAdd(1, ordering: .relaxed).newValue
        let suffix = "_\(getpid())_\(count)_\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        return String(clean.prefix(63 - suffix.utf8.count)) + suffix
    }

    /// Runs one SQL command string with `psql -X -A -t -v ON_ERROR_STOP=1 -d CONNECTION -c SQL` and returns what
    /// it printed, for tests that inspect the database behind the code under test or sabotage it (for example
    /// `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ...`).
    ///
    /// `-A -t` print bare rows: one line per row, columns separated by `|`, no header or row count. `-X` skips any
    /// `~/.psqlrc`. Several statements separated by `;` run in one transaction unless they contain `BEGIN`/`COMMIT`.
    /// - Parameters:
    ///   - connectionString: A libpq connection string (or URI).
    ///   - sql: The command string.
    /// - Returns: psql's stdout without its final newline: `"1"` for `SELECT 1`, `""` for a query without rows,
    ///   the command tag for other commands (`"CREATE TABLE"`, `"INSERT 0 1"`).
    /// - Throws: `TestSupportError` when psql cannot be run or exits non-zero (connection failure, SQL error); the
    ///   message holds psql's stderr.
    /// - Important: Thread-safe; blocks the calling thread until psql exits (a statement waiting for a lock waits).
    public static func psql(_ connectionString: String, _ sql: String) throws -> String {
        let result = try CommandRunner.run(
            psqlPath, ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", connectionString, "-c", sql],
            searchPath: !psqlPath.hasPrefix("/"))
        guard result.exitCode == 0 else {
            throw TestSupportError("psql -c \(sql) failed (exit \(result.exitCode)): \(result.standardError)")
        }
        var output = result.standardOutput
        if output.hasSuffix("\n") { output.removeLast() }
        return output
    }
}

/// A private throw-away PostgreSQL server, for tests that restart it, stop it under a client or otherwise upset it
/// (which a shared server must not see, since other tests use it at the same time).
///
/// `init` starts it with `scripts/pg-test-server.sh start` in a fresh directory under `/tmp` (about a second:
/// initdb, then start-up); `stop()` or `deinit` stops it and removes the directory. If the test process dies first,
/// a watcher process stops the server.
///
/// - Important: Thread-safe. `restart()` and `stop()` block until the server is up or gone.
public final class PostgresTestInstance: Sendable {
    /// How clients reach the server: `host=DIR port=PORT user=taskshed dbname=postgres` (the Unix socket).
    public let connectionString: String
    /// The same server over TCP, `host=127.0.0.1 port=PORT user=taskshed dbname=postgres`, when started with
    /// `tcp: true`; else `nil`.
    public let tcpConnectionString: String?
    /// The server's port (also the number in its socket's name, `.s.PGSQL.PORT`).
    public let port: Int
    /// The server's directory: its Unix socket, its log (`log`) and its cluster (`data`).
    public let directory: String
    /// The cluster's data directory (`PGDATA`).
    public let dataDirectory: String
    /// The server log (its stderr, appended across restarts).
    public let logPath: String

    /// The running server; `nil` once stopped.
    private let server: Mutex<PostgresServerProcess?>

    /// Starts a server of this instance's own.
    /// - Parameter tcp: Whether it also listens on 127.0.0.1 (`tcpConnectionString`), for tests that need a second
    ///   way to the same server; without it there is only the Unix socket.
    /// - Throws: `TestSupportError` when the script is not found or the server does not start (with the script's
    ///   stderr, which holds the tail of the server log).
    public init(tcp: Bool = false) throws {
        let process = try PostgresServerProcess.start(tcp: tcp)
        connectionString = process.connectionString
        port = process.port
        tcpConnectionString = tcp ? "host=127.0.0.1 port=\(process.port) user=taskshed dbname=postgres" : nil
        directory = process.directory
        dataDirectory = process.directory + "/data"
        logPath = process.directory + "/log"
        server = Mutex(process)
    }

    deinit { stop() }

    /// Restarts the server as `pg_ctl restart -m fast` does (clients are disconnected, open transactions roll back,
    /// committed data stays) on the same socket, port and settings, and waits until it accepts connections again.
    /// Also starts a server whose postmaster a test killed (SIGKILL).
    /// - Throws: `TestSupportError` when the instance was stopped or the restart fails (with the script's stderr).
    public func restart() throws {
        try server.withLock { process in
            guard let process else { throw TestSupportError("PostgresTestInstance \(directory) was stopped") }
            try process.restart()
        }
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`; nothing in it is kept) and removes its directory.
    /// Harmless when repeated.
    public func stop() {
        let process = server.withLock { process -> PostgresServerProcess? in
            defer { process = nil }
            return process
        }
        process?.stop()
    }

    /// The server log so far (`""` once stopped: the directory is gone).
    public func log() -> String {
        TextFile.read(logPath) ?? ""
    }
}

/// One server started by `scripts/pg-test-server.sh`, with the watcher that stops it if this process dies first.
///
/// The watcher is `/bin/sh` in a session of its own, reading a pipe whose write end only this process holds
/// (close-on-exec): when the process ends, however it ends, the kernel closes the write end, the read returns, and
/// the watcher runs `pg-test-server.sh stop DIR`. A stop from this process kills the watcher first, so a late
/// watcher can never remove a directory that a later server reuses.
struct PostgresServerProcess: Sendable {
    let directory: String
    let connectionString: String
    let port: Int
    private let script: String
    private let watcherPID: pid_t
    private let watcherPipe: Int32

    /// Starts a server in a fresh directory. Corresponds to `pg-test-server.sh start [--tcp] DIR`.
    static func start(tcp: Bool) throws -> PostgresServerProcess {
        try start(["start"] + (tcp ? ["--tcp"] : []))
    }

    /// Starts a streaming hot standby of `primary` in a fresh directory, and makes the primary's commits wait for
    /// it (synchronous replication). Corresponds to `pg-test-server.sh start-standby PRIMARY_DIR DIR`.
    static func startStandby(of primary: PostgresServerProcess) throws -> PostgresServerProcess {
        try start(["start-standby", primary.directory])
    }

    /// Runs the script's `command` with a fresh directory as its last argument, then starts the watcher.
    private static func start(_ command: [String]) throws -> PostgresServerProcess {
        let script = try scriptPath()
        let directory = try TemporaryDirectory.create(prefix: "tspg")
        let result: CommandRunner.Result
        do {
            result = try CommandRunner.run("/bin/bash", [script] + command + [directory])
        } catch {
            TemporaryDirectory.remove(directory)
            throw error
        }
        let connectionString = result.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        let port = connectionString.split(separator: " ").first { $0.hasPrefix("port=") }
            .flatMap { Int($0.dropFirst("port=".count)) }
        guard result.exitCode == 0, let port else {
            _ = try? CommandRunner.run("/bin/bash", [script, "stop", directory])
            // The script removes only a directory it got as far as marking; a directory without a cluster is ours.
            if access(directory + "/data", F_OK) != 0 { TemporaryDirectory.remove(directory) }
            let invocation = ([script] + command + [directory]).joined(separator: " ")
            throw TestSupportError("""
                \(invocation) failed (exit \(result.exitCode), stdout "\(result.standardOutput)"):
                \(result.standardError)
                """)
        }
        do {
            let (pid, pipe) = try startWatcher(script: script, directory: directory)
            return PostgresServerProcess(directory: directory, connectionString: connectionString, port: port,
                                         script: script, watcherPID: pid, watcherPipe: pipe)
        } catch {
            _ = try? CommandRunner.run("/bin/bash", [script, "stop", directory])
            throw error
        }
    }

    /// Restarts the server (also a killed one). Corresponds to `pg-test-server.sh restart DIR`.
    func restart() throws {
        let result = try CommandRunner.run("/bin/bash", [script, "restart", directory])
        guard result.exitCode == 0 else {
            throw TestSupportError("\(script) restart \(directory) failed (exit \(result.exitCode)):\n"
                                   + result.standardError)
        }
    }

    /// Promotes a standby to a primary that takes writes. Corresponds to `pg-test-server.sh promote DIR`.
    func promote() throws {
        let result = try CommandRunner.run("/bin/bash", [script, "promote", directory])
        guard result.exitCode == 0 else {
            throw TestSupportError("\(script) promote \(directory) failed (exit \(result.exitCode)):\n"
                                   + result.standardError)
        }
    }

    /// Stops the server and removes its directory, after ending the watcher. Corresponds to
    /// `pg-test-server.sh stop DIR`. Call it once.
    func stop() {
        // The watcher leads its own process group (its own session): this ends it and anything it started. (A pid
        // of 0 or 1 here would signal this process group or every process: never, posix_spawn gave the pid.)
        precondition(watcherPID > 1, "watcher pid \(watcherPID)")
        kill(-watcherPID, SIGKILL)
        var status: Int32 = 0
        while waitpid(watcherPID, &status, 0) < 0 && errno == EINTR {}
        close(watcherPipe)
        if let result = try? CommandRunner.run("/bin/bash", [script, "stop", directory]), result.exitCode != 0 {
            // No test can act on this: say it where a person reading the test output will see it.
            let message = "PostgresTestServer: \(script) stop \(directory) failed: \(result.standardError)\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// `scripts/NAME` (default `pg-test-server.sh`) of the repository holding this source file.
    static func scriptPath(_ name: String = "pg-test-server.sh", filePath: String = #filePath) throws -> String {
        var components = filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while !components.isEmpty {
            components.removeLast()
            let candidate = components.joined(separator: "/") + "/scripts/" + name
            if access(candidate, R_OK) == 0 { return candidate }
        }
        throw TestSupportError("""
            scripts/\(name) not found above \(filePath); set \(PostgresTestServer.environmentVariable) to \
            the connection string of a running server instead
            """)
    }

    /// Starts a process that runs `bash SCRIPT stop DIRECTORY` when this process ends, however it ends (see the
    /// type's comment); returns its pid and the pipe end to close (after killing it) for a stop from here.
    static func startWatcher(script: String, directory: String) throws -> (pid_t, Int32) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw TestSupportError("pipe: \(String(cString: strerror(errno)))") }
        // pipe2(O_CLOEXEC) is not visible from Swift; until these lines run, a child spawned by another thread may
        // inherit the ends (it then only delays the watcher until that child exits too).
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        defer { close(ends[0]) }
        do {
            let pid = try CommandRunner.spawn(
                "/bin/sh", ["-c", "read -r ignored; exec /bin/bash \"$0\" stop \"$1\"", script, directory],
                standardInput: ends[0], standardOutput: nil, standardError: nil, newSession: true)
            return (pid, ends[1])
        } catch {
            close(ends[1])
            throw error
        }
    }
}

/// Runs helper programs (`pg-test-server.sh`, `psql`) with `posix_spawn`, capturing stdout and stderr apart.
///
/// The child gets only descriptors 0–2: every other descriptor open in the test process is closed in it, so that a
/// server started here, which outlives the call, holds no socket or file of another test (a socket it held open
/// would never show its peer a close).
enum CommandRunner {
    /// What a finished program left.
    struct Result {
        /// The exit code, or 128 + signal number when a signal ended it.
        var exitCode: Int32
        var standardOutput: String
        var standardError: String
    }

    /// `POSIX_SPAWN_SETSID` from `<spawn.h>` (glibc 2.26), which Swift's Glibc module leaves out (it is behind
    /// `_GNU_SOURCE`).
    private static let spawnSetSID: Int32 = 0x80

    /// Runs a program to its end. Corresponds to `posix_spawn` (`posix_spawnp` with `searchPath`) + `waitpid`.
    /// - Throws: `TestSupportError` when the temporary output files cannot be made or the spawn fails.
    static func run(_ executable: String, _ arguments: [String], searchPath: Bool = false) throws -> Result {
        let output = try unlinkedTemporaryFile()
        defer { close(output) }
        let errors = try unlinkedTemporaryFile()
        defer { close(errors) }
        let pid = try spawn(executable, arguments, standardInput: nil, standardOutput: output, standardError: errors,
                            newSession: false, searchPath: searchPath)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else {
                throw TestSupportError("waitpid \(executable): \(String(cString: strerror(errno)))")
            }
        }
        return Result(exitCode: ChildProcess.exitCode(fromWaitStatus: status),
                      standardOutput: readAll(output), standardError: readAll(errors))
    }

    /// Spawns a program with the given descriptors as 0, 1 and 2 (`nil`: `/dev/null`), signals unblocked and at
    /// their defaults, and no other descriptors. Corresponds to `posix_spawn`.
    /// - Returns: The child's pid; the caller reaps it.
    /// - Throws: `TestSupportError` when the spawn fails.
    static func spawn(_ executable: String, _ arguments: [String], standardInput: Int32?, standardOutput: Int32?,
                      standardError: Int32?, newSession: Bool, searchPath: Bool = false) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        // glibc ignores a close action on a descriptor that is no longer open by then.
        for descriptor in openDescriptors() where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // As in ChildProcess: the test runner may block or ignore signals, and a server must start with neither.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGQUIT, SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newSession ? spawnSetSID : 0)))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = searchPath
            ? posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            : posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw TestSupportError("posix_spawn \(executable): \(String(cString: strerror(status)))")
        }
        return pid
    }

    /// The descriptors open in this process, from `/proc/self/fd`.
    private static func openDescriptors() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if let descriptor = Int32(name) { descriptors.append(descriptor) }
        }
        return descriptors
    }

    /// A read-write file under `/tmp` that is already unlinked: it vanishes with its last descriptor.
    private static func unlinkedTemporaryFile() throws -> Int32 {
        var template = Array("/tmp/tspg-output-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw TestSupportError("mkstemp: \(String(cString: strerror(errno)))") }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return descriptor
    }

    /// Everything written to a file so far, as UTF-8 (invalid bytes replaced).
    private static func readAll(_ descriptor: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += chunk[0..<count]
            offset += off_t(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
