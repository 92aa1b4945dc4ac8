import TaskShedProtocol
import TaskShedStore

// MARK: Run history (SCHEMA.md, "runs")

extension PostgresWriteBatch {
    /// Entries dropped by age or count per `recordRuns`, past the ones the new entries push out: ageing catches
    /// up over a few commits instead of one commit deleting a week of history (as the LMDB store does).
    private static let ageOutPerRecord = 256

    /// See `TaskStoreWriteBatch.recordRuns`: one statement inserts the entries and drops what the limits no
    /// longer keep.
    public mutating func recordRuns(_ runs: [RunEntry], now: Int64) throws(StoreError) {
        let limits = historyLimits
        guard limits.records, !runs.isEmpty else { return }
        let kept = Self.newestWithinLimits(runs, limits)
        // Counts per task of what this statement inserts: the trim, which sees the table as it was before the
        // statement (one snapshot), keeps that many fewer of the old entries.
        var order: [String] = []
        var added: [NameKey: Int64] = [:]
        for run in kept {
            let key = NameKey(run.taskID)
            if added[key] == nil { order.append(run.taskID) }
            added[key, default: 0] += 1
        }
        // The head of the table, oldest first, is trimmed by count (seq below the newest minus `maxRuns`:
        // identities have gaps, so this keeps at most `maxRuns`) and by age.
        try sql("""
            WITH ins AS (
                INSERT INTO \(runsTable) (task_id, callback, attempt, scheduled_at, delivered_at, finished_at, outcome,
                                          follow_up, error, worker_name, worker_pid, worker_uid, daemon)
                SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                                     $7::int2[], $8::int2[], $9::text[], $10::text[], $11::int8[], $12::int8[],
                                     $13::text[])
                RETURNING seq),
            per_task AS (
                SELECT x.seq FROM unnest($14::text[], $15::int8[]) AS t(id, added) CROSS JOIN LATERAL (
                    SELECT seq FROM \(runsTable) r WHERE r.task_id = t.id
                    ORDER BY seq DESC OFFSET greatest($16 - t.added, 0)) AS x),
            head AS (
                SELECT h.seq FROM (SELECT seq, finished_at FROM \(runsTable) ORDER BY seq LIMIT $17) AS h
                WHERE h.seq <= (SELECT max(seq) FROM ins) - $18 OR h.finished_at < $19)
            DELETE FROM \(runsTable) WHERE seq IN (SELECT seq FROM per_task UNION SELECT seq FROM head)
            """, Self.recordParams(kept) + [
                PGArrayLiteral.text(order),
                PGArrayLiteral.int64(order.map { added[NameKey($0)] }),
                String(limits.perTask),
                String(kept.count + Self.ageOutPerRecord),
                String(limits.maxRuns),
                String(now &- limits.maxAgeMicros),
            ])
    }

    /// Of `runs` (oldest first), those the limits keep: at most `perTask` of each task and `maxRuns` in all,
    /// the newest.
    static func newestWithinLimits(_ runs: [RunEntry], _ limits: HistoryLimits) -> [RunEntry] {
        var perTask: [NameKey: Int] = [:]
        var kept: [RunEntry] = []
        for run in runs.reversed() where kept.count < limits.maxRuns {
            let key = NameKey(run.taskID)
            guard perTask[key, default: 0] < limits.perTask else { continue }
            perTask[key, default: 0] += 1
            kept.append(run)
        }
        return kept.reversed()
    }

    /// The thirteen column arrays of `recordRuns`' insert.
    private static func recordParams(_ runs: [RunEntry]) -> [String?] {
        [
            PGArrayLiteral.text(runs.map(\.taskID)),
            PGArrayLiteral.text(runs.map(\.callback)),
            PGArrayLiteral.int64(runs.map { Optional(Int64($0.attempt)) }),
            PGArrayLiteral.int64(runs.map { Optional($0.scheduledAt) }),
            PGArrayLiteral.int64(runs.map(\.deliveredAt)),
            PGArrayLiteral.int64(runs.map { Optional($0.finishedAt) }),
            PGArrayLiteral.int64(runs.map { Optional(Int64($0.outcome.rawValue)) }),
            PGArrayLiteral.int64(runs.map { Optional(Int64($0.then.rawValue)) }),
            PGArrayLiteral.text(runs.map(\.error)),
            PGArrayLiteral.text(runs.map(\.workerName)),
            PGArrayLiteral.int64(runs.map { Optional(Int64($0.workerPID)) }),
            PGArrayLiteral.int64(runs.map { Optional(Int64($0.workerUID)) }),
            PGArrayLiteral.text(runs.map(\.daemon)),
        ]
    }
}

extension PostgresTaskStore {
    /// Run history, newest first. See `TaskStore.history`.
    public func history(_ query: HistoryQuery, now: Int64) throws(StoreError) -> HistoryPage {
        guard query.limit > 0 else {
            throw StoreError(code: .invalidArgument, field: "limit", message: "limit must be at least 1")
        }
        var params: [String?] = []
        func param(_ value: String) -> String {
            params.append(value)
            return "$\(params.count)"
        }
        var conditions = ["finished_at >= \(param(String(now &- options.history.maxAgeMicros)))"]
        if let taskID = query.taskID { conditions.append("task_id = \(param(taskID))") }
        if let callback = query.callback { conditions.append("callback = \(param(callback))") }
        if query.failedOnly {
            let failures = RunOutcome.allCases.filter(\.isFailure).map { Optional(Int64($0.rawValue)) }
            conditions.append("outcome = ANY(\(param(PGArrayLiteral.int64(failures)))::int2[])")
        }
        if let since = query.since { conditions.append("finished_at >= \(param(String(since)))") }
        if let before = query.before {
            // Beyond int8: every entry is older.
            if before <= UInt64(Int64.max) { conditions.append("seq < \(param(String(before)))") }
        }
        // One more than the page holds tells whether an older page exists.
        let sql = """
            SELECT seq, task_id, callback, attempt, scheduled_at, delivered_at, finished_at, outcome, follow_up, error,
                   worker_name, worker_pid, worker_uid, daemon
            FROM \(runsTable) WHERE \(conditions.joined(separator: " AND "))
            ORDER BY seq DESC LIMIT \(param(String(Int64(query.limit) + 1)))
            """
        let result = try read { (conn) throws(PGError) in try conn.query(sql, params) }
        var runs: [RunEntry] = []
        for r in 0..<min(result.rowCount, Int(query.limit)) { runs.append(try Self.runEntry(result, row: r)) }
        return HistoryPage(runs: runs, nextBefore: result.rowCount > Int(query.limit) ? runs.last?.seq : nil)
    }

    /// The entry in row `row` of a `history` result.
    private static func runEntry(_ result: PGResult, row r: Int) throws(StoreError) -> RunEntry {
        guard let seq = result.int64(r, 0), let taskID = result.string(r, 1), let callback = result.string(r, 2),
              let attempt = result.int64(r, 3), let scheduledAt = result.int64(r, 4),
              let finishedAt = result.int64(r, 6),
              let outcome = result.int64(r, 7).flatMap({ RunOutcome(rawValue: UInt8(clamping: $0)) }),
              let then = result.int64(r, 8).flatMap({ RunFollowUp(rawValue: UInt8(clamping: $0)) })
        else { throw .corrupt("run history: row \(result.int64(r, 0) ?? -1) of the runs table") }
        return RunEntry(seq: UInt64(seq), taskID: taskID, callback: callback, attempt: UInt32(clamping: attempt),
                        scheduledAt: scheduledAt, deliveredAt: result.int64(r, 5), finishedAt: finishedAt,
                        outcome: outcome, then: then, error: result.string(r, 9),
                        workerName: result.string(r, 10) ?? "", workerPID: UInt32(clamping: result.int64(r, 11) ?? 0),
                        workerUID: UInt32(clamping: result.int64(r, 12) ?? 0), daemon: result.string(r, 13) ?? "")
    }
}
