import Glibc
import Synchronization

/// A throw-away PostgreSQL primary with a streaming hot standby of its own, for tests of a failover: stop the
/// primary, promote the standby, and see whether a client given both hosts follows.
///
/// `init` starts the primary (`scripts/pg-test-server.sh start`, about a second), copies it into a standby
/// (`pg-test-server.sh start-standby`: `pg_basebackup -R`, about a second) and makes replication synchronous: the
/// primary acknowledges a commit only once the standby has applied it, so a commit a client saw succeed is still
/// there after the standby is promoted. Each server lives in a directory of its own under `/tmp`, reached through
/// a Unix socket there; `stop()` or `deinit` stops both by directory and removes them, and if the test process dies
/// first, each server's watcher process does.
///
/// - Important: Thread-safe. `stopPrimary()`, `promoteStandby()`, `makePrimaryReadOnly()` and `stop()` block until
///   the change is done.
public final class PostgresReplicaPair: Sendable {
    /// Both servers, writable one wanted: `host=PRIMARY_DIR,STANDBY_DIR port=P1,P2 user=taskshed dbname=postgres
    /// target_session_attrs=read-write`. libpq tries the hosts in order and keeps the first that takes writes: the
    /// primary, and once it is gone and the standby promoted, the standby. While neither takes writes (primary
    /// stopped, standby not yet promoted) a connection fails.
    public let connectionString: String
    /// The primary alone, as `PostgresTestInstance.connectionString`.
    public let primaryConnectionString: String
    /// The standby alone (read-only until promoted).
    public let standbyConnectionString: String
    /// The primary's directory: its socket, its log (`log`) and its cluster (`data`).
    public let primaryDirectory: String
    /// The standby's directory, laid out as the primary's.
    public let standbyDirectory: String

    /// The running servers; `nil` once stopped.
    private let primary: Mutex<PostgresServerProcess?>
    private let standby: Mutex<PostgresServerProcess?>

    /// Starts the primary and its synchronous standby.
    /// - Throws: `TestSupportError` when the script is not found or either server does not start (with the
    ///   script's stderr, which holds the tail of the server log); nothing is left running then.
    public init() throws {
        let primaryProcess = try PostgresServerProcess.start(tcp: false)
        let standbyProcess: PostgresServerProcess
        do {
            standbyProcess = try PostgresServerProcess.startStandby(of: primaryProcess)
        } catch {
            primaryProcess.stop()
            throw error
        }
        primaryConnectionString = primaryProcess.connectionString
        standbyConnectionString = standbyProcess.connectionString
        primaryDirectory = primaryProcess.directory
        standbyDirectory = standbyProcess.directory
        connectionString = "host=\(primaryProcess.directory),\(standbyProcess.directory) "
            + "port=\(primaryProcess.port),\(standbyProcess.port) user=taskshed dbname=postgres "
            + "target_session_attrs=read-write"
        primary = Mutex(primaryProcess)
        standby = Mutex(standbyProcess)
    }

    deinit { stop() }

    /// Stops the primary at once (`pg_ctl stop -m immediate`: its clients see their connections end, nothing
    /// unflushed is kept) and removes its directory, as a crash of its machine would leave it for the clients.
    /// Harmless when repeated.
    public func stopPrimary() {
        Self.take(primary)?.stop()
    }

    /// Promotes the standby (`pg_ctl promote`) and waits until new sessions on it may write.
    /// - Throws: `TestSupportError` when the standby was stopped or the promotion fails (with the script's stderr).
    public func promoteStandby() throws {
        try standby.withLock { process in
            guard let process else { throw TestSupportError("the standby \(standbyDirectory) was stopped") }
            try process.promote()
        }
    }

    /// Turns the running primary read-only, as failover tools fence an old primary before promoting its standby:
    /// `ALTER SYSTEM SET default_transaction_read_only = on` and a reload. Its open sessions keep their
    /// connections, and their next write fails with SQLSTATE 25006; libpq's `target_session_attrs=read-write`
    /// passes it by from then on.
    ///
    /// Returns once a new session sees the setting: the postmaster has reloaded then, and it signals the reload to
    /// every open session before it starts new ones, so each open session's next statement sees it too.
    /// - Throws: `TestSupportError` when psql fails or a new session does not see the setting within 10 s.
    public func makePrimaryReadOnly() throws {
        _ = try PostgresTestServer.psql(primaryConnectionString, "ALTER SYSTEM SET default_transaction_read_only = on")
        _ = try PostgresTestServer.psql(primaryConnectionString, "SELECT pg_reload_conf()")
        for _ in 0..<500 {
            if try PostgresTestServer.psql(primaryConnectionString, "SHOW default_transaction_read_only") == "on" {
                return
            }
            usleep(20_000)
        }
        throw TestSupportError("the primary \(primaryDirectory) did not turn read-only within 10 s")
    }

    /// Stops both servers (`-m immediate`) and removes their directories. Harmless when repeated.
    public func stop() {
        Self.take(primary)?.stop()
        Self.take(standby)?.stop()
    }

    /// The primary's server log so far (`""` once stopped: the directory is gone).
    public func primaryLog() -> String {
        TextFile.read(primaryDirectory + "/log") ?? ""
    }

    /// The standby's server log so far (`""` once stopped).
    public func standbyLog() -> String {
        TextFile.read(standbyDirectory + "/log") ?? ""
    }

    /// The process in `slot`, leaving `nil` there: each server is stopped once.
    private static func take(_ slot: borrowing Mutex<PostgresServerProcess?>) -> PostgresServerProcess? {
        slot.withLock { process in
            defer { process = nil }
            return process
        }
    }
}
