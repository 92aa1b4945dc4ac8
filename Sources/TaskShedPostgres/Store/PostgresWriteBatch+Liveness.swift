import Glibc
import TaskShedProtocol
import TaskShedStore

// MARK: Daemon liveness

/// What a heartbeat found (`PostgresTaskStore.heartbeat`).
public struct HeartbeatOutcome: Sendable {
    /// This daemon's row was gone: another daemon declared it lost (no heartbeat for the timeout) and gave its
    /// leases to others; its workers' acks for them get `LEASE_LOST`. The row is back now.
    public var wasDeclaredLost = false
    /// Daemons this heartbeat declared lost, by name.
    public var lostDaemons: [String] = []
    /// The tasks whose leases those daemons held, after the lease ended (a failed attempt: due again, dead,
    /// or at their next occurrence).
    public var rescued: [TaskRecord] = []
    /// The run-history entries of those leases' ends (already recorded, with the lost daemon's name).
    public var endedRuns: [RunEntry] = []
}

extension PostgresWriteBatch {
    /// Records this daemon as alive (by the database server's clock, so machines' clocks may differ), and, when
    /// `judgesOthers`, ends the leases of daemons whose last heartbeat is older than `timeoutMicros`, deleting
    /// their rows.
    mutating func heartbeat(timeoutMicros: Int64, judgesOthers: Bool, now: Int64) throws(StoreError)
        -> HeartbeatOutcome
    {
        var outcome = HeartbeatOutcome()
        let nowSQL = PostgresTaskStore.nowSQL
        let beat = try sql("""
            INSERT INTO \(daemonsTable) AS d (id, name, host, pid, started_at, heartbeat_at)
            VALUES ($1, $2, $3, $4, \(nowSQL), \(nowSQL))
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
            RETURNING (d.xmax = 0)
            """, [String(daemonNumber), daemonName, HostName.current(), String(getpid())])
        outcome.wasDeclaredLost = beat.bool(0, 0) == true
        guard judgesOthers else { return outcome }
        let lost = try sql("""
            DELETE FROM \(daemonsTable) WHERE id <> $1 AND heartbeat_at < \(nowSQL) - $2 RETURNING id, name
            """, [String(daemonNumber), String(timeoutMicros)])
        guard lost.rowCount > 0 else { return outcome }
        var ids: [Int64] = []
        var names: [Int64: String] = [:]
        for r in 0..<lost.rowCount {
            let name = lost.string(r, 1) ?? "?"
            if let id = lost.int64(r, 0) {
                ids.append(id)
                names[id] = name
            }
            outcome.lostDaemons.append(name)
        }
        let reason = "daemon lost: its taskshedd sent no heartbeat for \(timeoutMicros / 1000) ms"
        let result = try sql("""
            SELECT \(TaskRow.columns) FROM \(tasks) WHERE state = 1 AND lease_daemon = ANY($1::int8[])
            ORDER BY lease_deadline, id FOR UPDATE
            """, [PGArrayLiteral.int64(ids.map { Optional($0) })])
        let first = endedRuns.count
        outcome.rescued = try endLeases(try TaskRow.all(result), reason: reason, now: now, rescuedFrom: names)
        // Recorded here, in the rescue's transaction: no daemon's store job sees these ends.
        outcome.endedRuns = endedRuns[first...].map(\.entry)
        try recordRuns(outcome.endedRuns, now: now)
        return outcome
    }
}

extension PostgresTaskStore {
    /// One heartbeat in its own transaction on `connection` (see `PostgresWriteBatch.heartbeat`), with the
    /// notifications for the tasks it made due. `PostgresBackgroundSession` sends one every eighth of
    /// `timeoutMicros` on its own connection, so that a daemon that stops (SIGKILL, power loss, network cut)
    /// has its leases ended by the others within about the timeout.
    /// - Parameter connection: A connection this store does not use otherwise (the caller's thread owns it).
    func heartbeat(on connection: PGConnection, timeoutMicros: Int64, judgesOthers: Bool, now: Int64)
        throws(StoreError) -> HeartbeatOutcome
    {
        do throws(PGError) {
            try connection.query("BEGIN")
        } catch {
            throw Self.storeError(error)
        }
        var batch = PostgresWriteBatch(store: self, connection: connection, isolating: false)
        let outcome: HeartbeatOutcome
        do {
            outcome = try batch.heartbeat(timeoutMicros: timeoutMicros, judgesOthers: judgesOthers, now: now)
        } catch {
            _ = try? connection.query("ROLLBACK")
            throw error
        }
        do throws(PGError) {
            let channel = Self.channel(schema: options.schema)
            for payload in batch.notificationPayloads() {
                try connection.query("SELECT pg_notify($1, $2)", [channel, payload])
            }
            try connection.query("COMMIT")
        } catch {
            _ = try? connection.query("ROLLBACK")
            throw Self.storeError(error)
        }
        return outcome
    }
}

extension PostgresTaskStore {
    /// One heartbeat on the store's own connection, in its own transaction (tools and tests; the daemon beats
    /// from its `PostgresBackgroundSession`).
    /// - Parameter judgesOthers: Whether it also declares lost the daemons silent for `timeoutMicros`: only a
    ///   daemon that has itself beaten for that long should (see `PostgresBackgroundSession`).
    public func heartbeat(timeoutMicros: Int64, judgesOthers: Bool = true, now: Int64) throws(StoreError)
        -> HeartbeatOutcome
    {
        try write(isolatingRequests: false) { (batch: inout PostgresWriteBatch) throws(StoreError) in
            try batch.heartbeat(timeoutMicros: timeoutMicros, judgesOthers: judgesOthers, now: now)
        }
    }
}

extension PostgresTaskStore {
    /// The daemons registered in the datastore (running, or silent for less than the heartbeat timeout: the
    /// others delete a lost daemon's row), by name, with the tasks each holds leased. Times are the database
    /// server's clock, so machines whose clocks differ agree.
    public func daemons() throws(StoreError) -> [DaemonInfo] {
        let nowSQL = Self.nowSQL
        let sql = """
            SELECT d.name, d.host, d.pid, d.started_at, greatest(\(nowSQL) - d.heartbeat_at, 0), d.id = $1,
                   (SELECT count(*) FROM \(tasksTable) t WHERE t.state = 1 AND t.lease_daemon = d.id)
            FROM \(daemonsTable) d ORDER BY d.name, d.id
            """
        let result = try read { (conn) throws(PGError) in try conn.query(sql, [String(daemonID)]) }
        return (0..<result.rowCount).map { r in
            DaemonInfo(name: result.string(r, 0) ?? "", host: result.string(r, 1) ?? "",
                       pid: UInt32(clamping: result.int64(r, 2) ?? 0), startedAt: result.int64(r, 3) ?? 0,
                       heartbeatAgeMicros: result.int64(r, 4) ?? 0, leased: UInt64(max(0, result.int64(r, 6) ?? 0)),
                       isThisDaemon: result.bool(r, 5) == true)
        }
    }
}

extension PostgresTaskStore {
    /// Sends one notification with `payload` on the schema's channel from the store's own connection, outside
    /// any job's transaction (the delivery probe of `PostgresBackgroundSession`).
    func notify(_ payload: String) throws(StoreError) {
        let channel = Self.channel(schema: options.schema)
        try read { (conn) throws(PGError) in _ = try conn.query("SELECT pg_notify($1, $2)", [channel, payload]) }
    }
}
