import Glibc
import Synchronization

/// A throw-away PgBouncer in transaction pooling mode in front of a test PostgreSQL server, started and stopped by
/// `scripts/pgbouncer-test.sh` (Debian's `pgbouncer`, installed by `scripts/ensure-deps.sh`): for the tests of a
/// daemon behind a connection pooler (`taskshedd --datastore-pooler transaction`). It listens only on a Unix
/// socket in its own directory; a watcher process stops it if the test process dies first, as for
/// `PostgresTestInstance`.
public final class PgBouncerTestInstance: Sendable {
    /// How clients reach the pooler: `host=DIR port=6432 user=taskshed dbname=postgres`.
    public let connectionString: String
    /// The pooler's directory: its socket, configuration and log (`log`).
    public let directory: String
    private let script: String
    /// The watcher's pid and pipe end while running; `nil` once stopped.
    private let watcher: Mutex<(pid: pid_t, pipe: Int32)?>

    /// Starts a pooler in front of the server that `serverConnectionString` (`host=DIR port=PORT …`, a Unix
    /// socket directory) names.
    /// - Throws: `TestSupportError` when the string names no socket directory and port, or the pooler does not
    ///   start (with the script's stderr).
    public init(inFrontOf serverConnectionString: String) throws {
        let words = serverConnectionString.split(separator: " ")
        func value(_ key: String) -> String? {
            words.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        guard let host = value("host"), host.hasPrefix("/"), let port = value("port") else {
            throw TestSupportError("'\(serverConnectionString)' names no Unix socket directory and port")
        }
        script = try PostgresServerProcess.scriptPath("pgbouncer-test.sh")
        directory = try TemporaryDirectory.create(prefix: "tspgb")
        let result = try CommandRunner.run("/bin/bash", [script, "start", directory, host, port])
        guard result.exitCode == 0, let line = result.standardOutput.split(separator: "\n").last else {
            _ = try? CommandRunner.run("/bin/bash", [script, "stop", directory])
            TemporaryDirectory.remove(directory)
            throw TestSupportError("\(script) start \(directory) failed (exit \(result.exitCode)):\n\(result.standardError)")
        }
        connectionString = String(line)
        do {
            watcher = Mutex(try PostgresServerProcess.startWatcher(script: script, directory: directory))
        } catch {
            _ = try? CommandRunner.run("/bin/bash", [script, "stop", directory])
            throw error
        }
    }

    deinit { stop() }

    /// Stops the pooler (by the pid in its directory) and removes the directory. Harmless when repeated.
    public func stop() {
        guard let (pid, pipe) = watcher.withLock({ state -> (pid: pid_t, pipe: Int32)? in
            defer { state = nil }
            return state
        }) else { return }
        precondition(pid > 1, "watcher pid \(pid)")
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(pipe)
        _ = try? CommandRunner.run("/bin/bash", [script, "stop", directory])
    }

    /// The pooler's log so far.
    public func log() -> String { TextFile.read(directory + "/log") ?? "" }
}
