import TaskShedProtocol
import TaskShedStore

/// The operations of one PostgreSQL transaction (`PostgresTaskStore.write`).
///
/// Each operation checks everything that could make it a request error (unknown task, lost lease, existing id)
/// before it writes, and uses only statements that cannot fail for a request's reasons, so a failed request
/// leaves the transaction as it was without a savepoint; the one exception, an add with `ConflictPolicy.fail`
/// racing another daemon's insert of the same id, runs under a savepoint. A server error marks the batch
/// poisoned (`poison`): the transaction is aborted and `write` rolls it back.
public struct PostgresWriteBatch: TaskStoreWriteBatch {
    private let store: PostgresTaskStore
    private let connection: PGConnection
    private let isolating: Bool
    /// The first server error of the batch: every later statement would fail too.
    private(set) var poison: PGError?
    /// Callbacks with tasks the batch made due within the notification horizon (`notifyDue`).
    private var notifyCallbacks = Set<NameKey>()
    /// The batch made tasks due whose callbacks it did not read: notify for every callback.
    private var notifyEverything = false
    /// See `TaskStoreWriteBatch.endedRuns`.
    public internal(set) var endedRuns: [EndedRun] = []

    init(store: PostgresTaskStore, connection: PGConnection, isolating: Bool, prelude: [String] = []) {
        self.store = store
        self.connection = connection
        self.isolating = isolating
        self.prelude = PendingPrelude(prelude)
    }

    /// Statements the transaction's first statement carries in its round trip (`BEGIN`): not yet sent.
    final class PendingPrelude {
        var statements: [String]
        init(_ statements: [String]) { self.statements = statements }

        /// The statements, once: the caller sends them.
        func take() -> [String] {
            defer { statements = [] }
            return statements
        }
    }
    let prelude: PendingPrelude

    var tasks: String { store.tasksTable }
    private var daemon: String { String(store.daemonID) }
    var daemonsTable: String { store.daemonsTable }
    var daemonNumber: Int64 { store.daemonID }
    var daemonName: String { store.options.daemonName }
    var runsTable: String { store.runsTable }
    var historyLimits: HistoryLimits { store.options.history }

    /// A request error, which without `isolating` poisons the batch as the protocol says (`TaskStore.write`):
    /// `write` then rolls back even if the body caught it.
    private(set) var requestFailure: StoreError?

    /// Records `error` as the batch's request failure when requests are not isolated, and returns it.
    private mutating func fault(_ error: StoreError) -> StoreError {
        if !isolating && requestFailure == nil { requestFailure = error }
        return error
    }

    /// Runs one statement; a server error poisons the batch and comes back as a `StoreError`.
    @discardableResult
    mutating func sql(_ text: String, _ params: [String?] = [], prepare: Bool = true) throws(StoreError) -> PGResult {
        if let poison { throw PostgresTaskStore.storeError(poison) }
        do {
            return try connection.query(text, params, prepare: prepare, after: prelude.take())
        } catch {
            poison = error
            throw PostgresTaskStore.storeError(error)
        }
    }

    /// Notes that `record` is due soon, for the other daemons (`notificationPayloads`).
    mutating func notifyDue(_ record: TaskRecord, now: Int64) {
        let horizon = store.options.notifyHorizonMicros
        guard horizon > 0, record.state == .scheduled, !record.paused,
              record.runAt <= now.addingReportingOverflow(horizon).partialValue else { return }
        notifyCallbacks.insert(NameKey(record.callback))
    }

    /// Notes that tasks of any callback may be due now (resume, retry, reschedule by selector).
    mutating func notifyAnyDue() {
        if store.options.notifyHorizonMicros > 0 { notifyEverything = true }
    }

    /// The notifications to send at commit: `<daemon>:<callback>` each, or `<daemon>:*` for many or all
    /// (listeners skip their own daemon's).
    func notificationPayloads() -> [String] {
        if notifyEverything || notifyCallbacks.count > 16 { return ["\(store.daemonID):*"] }
        return notifyCallbacks.map { "\(store.daemonID):\($0.name)" }
    }

    /// The condition selecting `selector`'s tasks, with its parameter appended to `params`.
    private static func condition(_ selector: TaskSelector, _ params: inout [String?]) -> String {
        switch selector {
        case .ids(let ids):
            params.append(PGArrayLiteral.text(ids))
            return "id = ANY($\(params.count)::text[])"
        case .group(let group):
            params.append(group)
            return "group_name = $\(params.count)"
        case .all:
            return "TRUE"
        }
    }

    /// The assignments that give a lease back uncounted (RELEASE, and the previous run's leases at open).
    static let releasedAssignments = """
        state = 0, attempt = attempt - 1, last_run_at = base_last_run_at, lease_deadline = NULL, \
        base_last_run_at = NULL, lease_daemon = NULL, lease_holder = NULL
        """

    // MARK: Add

    public mutating func add(_ specs: [TaskSpec], onConflict: ConflictPolicy, now: Int64) throws(StoreError)
        -> [AddResult]
    {
        let prepared: [PreparedTask]
        do {
            prepared = try TaskValidation.prepare(
                specs, maxKwargsBytes: store.options.maxKwargsBytes, checksKwargsJSON: store.options.checksKwargsJSON)
        } catch {
            throw fault(error)
        }
        // PostgreSQL's text cannot hold a NUL character (valid UTF-8 otherwise): refuse it here, naming the
        // field, rather than fail the whole commit with a server error.
        for (i, spec) in specs.enumerated() {
            for (name, value) in [("id", spec.id), ("callback", spec.callback), ("group", spec.group)] {
                if let value, value.utf8.contains(0) {
                    throw fault(StoreError(code: .invalidArgument, field: "tasks[\(i)].\(name)",
                                           message: "\(name) contains a NUL character, which the PostgreSQL datastore cannot store"))
                }
            }
        }
        var results = [AddResult](repeating: AddResult(id: "", outcome: .kept), count: specs.count)
        let named = specs.indices.filter { specs[$0].id != nil }
        let unnamed = specs.indices.filter { specs[$0].id == nil }

        if !named.isEmpty {
            if onConflict == .fail {
                // Found before anything is written, so the request fails cleanly in the common case.
                let existing = try existingIDs(named.map { specs[$0].id! })
                if let i = named.first(where: { existing.contains(NameKey(specs[$0].id!)) }) {
                    throw fault(StoreError(code: .taskExists, field: "tasks[\(i)].id",
                                     message: "task \"\(specs[i].id!)\" already exists"))
                }
            }
            let ids = named.map { specs[$0].id! }
            switch onConflict {
            case .replace:
                let result = try sql(insertSQL(conflict: .replace), insertParams(specs, prepared, named, ids, now))
                var fresh = Set<NameKey>()
                for r in 0..<result.rowCount where result.bool(r, 1) == true {
                    fresh.insert(NameKey(result.string(r, 0) ?? ""))
                }
                for (k, i) in named.enumerated() {
                    results[i] = AddResult(id: ids[k], outcome: fresh.contains(NameKey(ids[k])) ? .inserted : .replaced)
                }
            case .keep:
                let inserted = try insertNew(specs, prepared, named, ids, now)
                for (k, i) in named.enumerated() {
                    results[i] = AddResult(id: ids[k], outcome: inserted.contains(NameKey(ids[k])) ? .inserted : .kept)
                }
            case .fail:
                // Another daemon may insert one of the ids between the check above and this insert: the
                // savepoint lets the request fail without leaving its other tasks behind.
                if isolating { try sql("SAVEPOINT taskshed_add") }
                let inserted = try insertNew(specs, prepared, named, ids, now)
                if let k = ids.indices.first(where: { !inserted.contains(NameKey(ids[$0])) }) {
                    if isolating { try sql("ROLLBACK TO SAVEPOINT taskshed_add") }
                    throw fault(StoreError(code: .taskExists, field: "tasks[\(named[k])].id",
                                     message: "task \"\(ids[k])\" already exists"))
                }
                if isolating { try sql("RELEASE SAVEPOINT taskshed_add") }
                for (k, i) in named.enumerated() { results[i] = AddResult(id: ids[k], outcome: .inserted) }
            }
        }

        // Generated ids never replace a task: insert them as new, and draw again for any that existed (a
        // collision, practically impossible). First without ON CONFLICT and RETURNING, which cost PostgreSQL a
        // speculative insertion per row and the daemon 100k ids to read back (0.65 s instead of 0.88 s for
        // 100k rows here); a collision there falls back to the statement that tells which ids existed.
        var pending = unnamed
        if !pending.isEmpty {
            let ids = pending.map { store.random.taskID(runAt: specs[$0].runAt ?? now) }
            if try insertAllNew(specs, prepared, pending, ids, now) {
                for (k, i) in pending.enumerated() { results[i] = AddResult(id: ids[k], outcome: .inserted) }
                pending = []
            }
        }
        while !pending.isEmpty {
            let ids = pending.map { store.random.taskID(runAt: specs[$0].runAt ?? now) }
            let inserted = try insertNew(specs, prepared, pending, ids, now)
            var again: [Int] = []
            for (k, i) in pending.enumerated() {
                if inserted.contains(NameKey(ids[k])) {
                    results[i] = AddResult(id: ids[k], outcome: .inserted)
                } else {
                    again.append(i)
                }
            }
            pending = again
        }
        let horizon = store.options.notifyHorizonMicros
        let notifyBy = now.addingReportingOverflow(horizon).partialValue
        for spec in specs where horizon > 0 && !spec.paused && (spec.runAt ?? now) <= notifyBy {
            notifyCallbacks.insert(NameKey(spec.callback))
        }
        return results
    }

    /// Which of `ids` exist.
    private mutating func existingIDs(_ ids: [String]) throws(StoreError) -> Set<NameKey> {
        let result = try sql("SELECT id FROM \(tasks) WHERE id = ANY($1::text[])", [PGArrayLiteral.text(ids)])
        var out = Set<NameKey>()
        for r in 0..<result.rowCount { out.insert(NameKey(result.string(r, 0) ?? "")) }
        return out
    }

    /// Inserts the tasks at `indices` with `ids`, skipping ids that exist; returns the ids inserted.
    private mutating func insertNew(_ specs: [TaskSpec], _ prepared: [PreparedTask], _ indices: [Int], _ ids: [String],
                                    _ now: Int64) throws(StoreError) -> Set<NameKey>
    {
        let result = try sql(insertSQL(conflict: .keep), insertParams(specs, prepared, indices, ids, now))
        var out = Set<NameKey>()
        for r in 0..<result.rowCount { out.insert(NameKey(result.string(r, 0) ?? "")) }
        return out
    }

    /// Inserts the rows with a plain INSERT under a savepoint (sent in the INSERT's round trip): `true` when
    /// every row went in; `false` after a unique violation, the savepoint rolled back and nothing inserted.
    private mutating func insertAllNew(_ specs: [TaskSpec], _ prepared: [PreparedTask], _ indices: [Int],
                                       _ ids: [String], _ now: Int64) throws(StoreError) -> Bool
    {
        if let poison { throw PostgresTaskStore.storeError(poison) }
        let insert = insertSQL(conflict: .fail)
        do throws(PGError) {
            try connection.query(insert, insertParams(specs, prepared, indices, ids, now),
                                 after: prelude.take() + ["SAVEPOINT taskshed_generated"])
            return true
        } catch where error.sqlState == "23505" {
            // The transaction is fine up to the savepoint.
            _ = try sql("ROLLBACK TO SAVEPOINT taskshed_generated")
            return false
        } catch {
            poison = error
            throw PostgresTaskStore.storeError(error)
        }
    }

    /// One INSERT for a whole batch (`unnest` of one array per column). `.replace` overwrites an existing
    /// task except `created_at` (and `paused_at` when it stays paused), dropping its lease and failure history;
    /// `.keep` skips existing ids; both return `id` and whether the row is new (`xmax = 0`). `.fail` is the
    /// plain INSERT, which fails on an existing id and returns nothing.
    private func insertSQL(conflict: ConflictPolicy) -> String {
        let insert = """
            INSERT INTO \(tasks) AS t (id, callback, group_name, run_at, interval_us, kwargs, paused, paused_at,
                                       coalesce, max_attempts, state, attempt, created_at, calendar)
            SELECT u.id, u.callback, u.group_name, u.run_at, u.interval_us, u.kwargs, u.paused, u.paused_at,
                   u.coalesce, u.max_attempts, 0, 0, $11, u.calendar
            FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::bool[],
                        $8::int8[], $9::bool[], $10::int8[], $12::text[])
                 AS u(id, callback, group_name, run_at, interval_us, kwargs, paused, paused_at, coalesce, max_attempts,
                      calendar)
            """
        switch conflict {
        case .fail: return insert
        case .keep: return insert + " ON CONFLICT (id) DO NOTHING RETURNING t.id, true"
        case .replace: break
        }
        return insert + """
             ON CONFLICT (id) DO UPDATE SET
                callback = EXCLUDED.callback, group_name = EXCLUDED.group_name, run_at = EXCLUDED.run_at,
                interval_us = EXCLUDED.interval_us, kwargs = EXCLUDED.kwargs, paused = EXCLUDED.paused,
                paused_at = CASE WHEN EXCLUDED.paused AND t.paused THEN coalesce(t.paused_at, EXCLUDED.paused_at)
                                 ELSE EXCLUDED.paused_at END,
                coalesce = EXCLUDED.coalesce, max_attempts = EXCLUDED.max_attempts, state = 0, attempt = 0,
                lease_deadline = NULL, last_error = NULL, last_run_at = NULL, last_failure_at = NULL,
                base_last_run_at = NULL, lease_daemon = NULL, lease_holder = NULL, calendar = EXCLUDED.calendar,
                skipped_runs = 0, last_skip = NULL
            RETURNING t.id, (t.xmax = 0)
            """
    }

    /// The arrays of `insertSQL`, the rows in run-time order: two of the table's indexes lead with the run time
    /// (and generated ids with it too), and PostgreSQL inserts a batch's index entries faster in key order
    /// than scattered (100k rows: 0.9 s instead of 1.3 s here). Results are matched by id, so order is free.
    private func insertParams(_ specs: [TaskSpec], _ prepared: [PreparedTask], _ unsorted: [Int], _ unsortedIDs: [String],
                              _ now: Int64) -> [String?]
    {
        let order = unsorted.indices.sorted {
            (specs[unsorted[$0]].runAt ?? now, $0) < (specs[unsorted[$1]].runAt ?? now, $1)
        }
        let indices = order.map { unsorted[$0] }
        let ids = order.map { unsortedIDs[$0] }
        return [
            PGArrayLiteral.text(ids),
            PGArrayLiteral.text(indices.map { specs[$0].callback }),
            PGArrayLiteral.text(indices.map { specs[$0].group }),
            PGArrayLiteral.int64(zip(indices, ids).map { Optional(TaskValidation.firstRun(specs[$0], id: $1, now: now)) }),
            PGArrayLiteral.int64(indices.map { specs[$0].schedule.intervalMicros }),
            PGArrayLiteral.text(indices.map { String(decoding: prepared[$0].kwargs, as: UTF8.self) }),
            PGArrayLiteral.bool(indices.map { specs[$0].paused }),
            PGArrayLiteral.int64(indices.map { specs[$0].paused ? now : nil }),
            PGArrayLiteral.bool(indices.map { specs[$0].coalesce }),
            PGArrayLiteral.int64(indices.map { Optional(Int64(prepared[$0].maxAttempts)) }),
            String(now),
            PGArrayLiteral.text(indices.map { specs[$0].schedule.calendar.map { Hex.encode($0.wireBody) } }),
        ]
    }

    // MARK: Pause, resume, remove, reschedule

    public mutating func pause(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        var params: [String?] = [String(now)]
        let condition = Self.condition(selector, &params)
        return try sql("""
            UPDATE \(tasks) SET paused = true, paused_at = CASE WHEN paused THEN paused_at ELSE $1 END
            WHERE \(condition) AND state <> 2
            """, params).affectedRows
    }

    public mutating func resume(_ selector: TaskSelector) throws(StoreError) -> Int {
        var params: [String?] = []
        let condition = Self.condition(selector, &params)
        let count = try sql("UPDATE \(tasks) SET paused = false, paused_at = NULL WHERE \(condition) AND state <> 2",
                            params).affectedRows
        if count > 0 { notifyAnyDue() }
        return count
    }

    public mutating func remove(_ selector: TaskSelector) throws(StoreError) -> Int {
        var params: [String?] = []
        let condition = Self.condition(selector, &params)
        return try sql("DELETE FROM \(tasks) WHERE \(condition)", params).affectedRows
    }

    public mutating func updateRunTimes(_ updates: [RunTimeUpdate]) throws(StoreError) {
        guard !updates.isEmpty else { return }
        // All or nothing: every id must exist (locked, so that none is removed before the update).
        let found = try sql("SELECT id FROM \(tasks) WHERE id = ANY($1::text[]) FOR UPDATE",
                            [PGArrayLiteral.text(updates.map(\.id))])
        var existing = Set<NameKey>()
        for r in 0..<found.rowCount { existing.insert(NameKey(found.string(r, 0) ?? "")) }
        if let i = updates.indices.first(where: { !existing.contains(NameKey(updates[$0].id)) }) {
            throw fault(StoreError(code: .taskNotFound, field: "updates[\(i)].id", message: "no task with id \"\(updates[i].id)\""))
        }
        // The last update of an id wins.
        var last: [NameKey: Int64] = [:]
        var order: [String] = []
        for u in updates {
            if last.updateValue(u.runAt, forKey: NameKey(u.id)) == nil { order.append(u.id) }
        }
        // A reschedule drops a lease and revives a dead task (PROTOCOL.md, section 8).
        try sql("""
            UPDATE \(tasks) t SET run_at = u.run_at, attempt = 0, state = 0, lease_deadline = NULL,
                base_last_run_at = NULL, lease_daemon = NULL, lease_holder = NULL
            FROM unnest($1::text[], $2::int8[]) AS u(id, run_at) WHERE t.id = u.id
            """, [PGArrayLiteral.text(order), PGArrayLiteral.int64(order.map { last[NameKey($0)] })])
        notifyAnyDue()
    }

    // MARK: Claim and leases

    public mutating func claim(callbacks: [String], max: Int, holder: UInt64, leaseDeadline: Int64, dueBy: Int64,
                               now: Int64) throws(StoreError) -> [TaskRecord]
    {
        guard max > 0, !callbacks.isEmpty else { return [] }
        // SKIP LOCKED: tasks another daemon is claiming or settling right now are left to it, so two claims
        // never return the same task and never wait for each other.
        //
        // Per callback, through the due index in its own order (callback, run_at, id): with `callback = ANY`
        // and ORDER BY run_at the planner walked the time index instead, from its start through every task
        // leased meanwhile (a drain leases them by the thousand before acks delete them): 27 ms per claim
        // with 50k leased ahead of the due ones, 3.5 ms this way. Rows a callback's branch locked but the
        // outer LIMIT leaves stay locked (skipped by other daemons) only until this transaction ends. Each
        // callback once: a second branch of the same one would see this transaction's own locks, not skip them.
        let result = try sql("""
            WITH picked AS (
                SELECT x.id FROM unnest($1::text[]) AS c(name) CROSS JOIN LATERAL (
                    SELECT id, run_at FROM \(tasks)
                    WHERE state = 0 AND NOT paused AND callback = c.name AND run_at <= $2
                    ORDER BY callback, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS x
                ORDER BY x.run_at, x.id LIMIT $3)
            UPDATE \(tasks) t SET state = 1, attempt = t.attempt + 1, base_last_run_at = t.last_run_at,
                last_run_at = greatest(t.run_at, $4), lease_deadline = $5, lease_daemon = $6, lease_holder = $7
            FROM picked WHERE t.id = picked.id
            RETURNING \(TaskRow.columns(of: "t"))
            """, [PGArrayLiteral.text(Set(callbacks).sorted()), String(dueBy), String(max), String(now), String(leaseDeadline),
                  daemon, String(Int64(bitPattern: holder))])
        var rows = try TaskRow.all(result)
        if rows.contains(where: { $0.record.schedule.calendar != nil }) { rows = try catchUp(rows, now: now) }
        return rows.map(\.record).sorted(by: precedesByPosition)
    }

    /// The claimed rows after catch-up (as the LMDB store decides it, `TaskValidation.calendarClaim`): a calendar
    /// task that missed occurrences runs the one its policy picks, or goes back unclaimed to its next occurrence
    /// (removed if it has none; dead-lettered if its rule no longer parses). Still in the claim's transaction.
    private mutating func catchUp(_ rows: [TaskRow], now: Int64) throws(StoreError) -> [TaskRow] {
        var kept: [TaskRow] = []
        var changed: [TaskRow] = []
        var finished: [String] = []
        for row in rows {
            guard let calendar = row.record.schedule.calendar else {
                kept.append(row)
                continue
            }
            var new = row
            switch TaskValidation.calendarClaim(row.record, calendar, now: now) {
            case .decided(.run):
                kept.append(row)
            case .decided(.runInstead(let occurrence, let skipped, let reason)):
                new.record.applySkips(runAt: occurrence, skipped: skipped, reason: reason)
                noteSkips(row.record, new.record, now: now)
                kept.append(new)
                changed.append(new)
            case .decided(.skip(let nextRunAt, let skipped, let reason)):
                guard let nextRunAt else {
                    finished.append(row.record.id)
                    continue
                }
                new = row.released()
                new.record.applySkips(runAt: nextRunAt, skipped: skipped, reason: reason)
                noteSkips(row.record, new.record, now: now)
                changed.append(new)
                notifyDue(new.record, now: now)
            case .runSeparately(let run, let nextRunAt, let skipped, let reason):
                new = row.released()
                if let nextRunAt {
                    new.record.applySkips(runAt: nextRunAt, skipped: skipped, reason: reason)
                    noteSkips(row.record, new.record, now: now)
                    changed.append(new)
                    notifyDue(new.record, now: now)
                } else {
                    finished.append(row.record.id)
                }
                if let leased = try insertLeasedRun(run, lease: row, now: now) { kept.append(leased) }
            case .broken(let message):
                new = row.released().unleased(state: .dead)
                new.record.lastError = message
                new.record.lastFailureAt = now
                changed.append(new)
            }
        }
        try saveDeliveryFields(changed)
        if !finished.isEmpty {
            try sql("DELETE FROM \(tasks) WHERE id = ANY($1::text[])", [PGArrayLiteral.text(finished)])
        }
        return kept
    }

    /// Records the calendar occurrences a claim's catch-up skipped between `old` and `new`.
    private mutating func noteSkips(_ old: TaskRecord, _ new: TaskRecord, now: Int64) {
        if let skips = EndedRun.skips(from: old, to: new, now: now) { endedRuns.append(skips) }
    }

    /// Inserts the one-off run of an overlap-`allow` task, already leased as the claim leased the task (`lease`),
    /// and returns it; `nil` if a task of that id exists (the same occurrence run again by a reschedule while
    /// the first still runs), which is left alone.
    private mutating func insertLeasedRun(_ run: TaskRecord, lease: TaskRow, now: Int64) throws(StoreError)
        -> TaskRow?
    {
        var leased = lease
        leased.record = run
        leased.baseLastRunAt = nil
        leased.record.state = .leased
        leased.record.attempt = 1
        leased.record.lastRunAt = Swift.max(run.runAt, now)
        leased.record.leaseDeadline = lease.record.leaseDeadline
        let inserted = try sql("""
            INSERT INTO \(tasks) (id, callback, group_name, run_at, kwargs, paused, coalesce, max_attempts, state,
                                  attempt, created_at, last_run_at, lease_deadline, lease_daemon, lease_holder)
            VALUES ($1, $2, $3, $4, $5, false, true, $6, 1, 1, $7, $8, $9, $10, $11)
            ON CONFLICT (id) DO NOTHING RETURNING id
            """, Self.runParams(leased, now: now))
        return inserted.rowCount == 1 ? leased : nil
    }

    /// The parameters of `insertLeasedRun`'s INSERT.
    private static func runParams(_ leased: TaskRow, now: Int64) -> [String?] {
        let r = leased.record
        let kwargs = String(decoding: r.kwargs, as: UTF8.self)
        let lastRunAt: String? = r.lastRunAt.map { String($0) }
        let deadline: String? = r.leaseDeadline.map { String($0) }
        let daemon: String? = leased.leaseDaemon.map { String($0) }
        let holder: String? = leased.leaseHolder.map { String($0) }
        return [r.id, r.callback, r.group, String(r.runAt), kwargs, String(r.maxAttempts), String(now), lastRunAt,
                deadline, daemon, holder]
    }

    /// The task `id`, locked for this transaction, if its lease is `(this daemon, holder)` with `attempt`.
    /// - Throws: `taskNotFound` (field `id`); `leaseLost`.
    private mutating func leased(_ id: String, attempt: UInt32, holder: UInt64) throws(StoreError) -> TaskRow {
        let result = try sql("SELECT \(TaskRow.columns) FROM \(tasks) WHERE id = $1 FOR UPDATE", [id])
        guard result.rowCount == 1 else {
            throw fault(StoreError(code: .taskNotFound, field: "id", message: "no task with id \"\(id)\""))
        }
        let row = try TaskRow(result, row: 0)
        guard row.isLeased(to: store.daemonID, holder: holder, attempt: attempt) else {
            throw fault(StoreError(code: .leaseLost, field: "id",
                             message: "task \"\(id)\" attempt \(attempt) is not leased to this holder any more"))
        }
        return row
    }

    /// Writes the fields a delivery's end changes, for every row at once.
    mutating func saveDeliveryFields(_ rows: [TaskRow]) throws(StoreError) {
        guard !rows.isEmpty else { return }
        try sql("""
            UPDATE \(tasks) t SET run_at = u.run_at, state = u.state, attempt = u.attempt,
                lease_deadline = u.lease_deadline, last_error = u.last_error, last_failure_at = u.last_failure_at,
                last_run_at = u.last_run_at, base_last_run_at = u.base_last_run_at, lease_daemon = u.lease_daemon,
                lease_holder = u.lease_holder, skipped_runs = u.skipped_runs, last_skip = u.last_skip
            FROM unnest($1::text[], $2::int8[], $3::int2[], $4::int8[], $5::int8[], $6::text[], $7::int8[],
                        $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::text[])
                 AS u(id, run_at, state, attempt, lease_deadline, last_error, last_failure_at, last_run_at,
                      base_last_run_at, lease_daemon, lease_holder, skipped_runs, last_skip)
            WHERE t.id = u.id
            """, [
                PGArrayLiteral.text(rows.map(\.record.id)),
                PGArrayLiteral.int64(rows.map { Optional($0.record.runAt) }),
                PGArrayLiteral.int64(rows.map { Optional(Int64($0.record.state.rawValue)) }),
                PGArrayLiteral.int64(rows.map { Optional(Int64($0.record.attempt)) }),
                PGArrayLiteral.int64(rows.map(\.record.leaseDeadline)),
                PGArrayLiteral.text(rows.map(\.record.lastError)),
                PGArrayLiteral.int64(rows.map(\.record.lastFailureAt)),
                PGArrayLiteral.int64(rows.map(\.record.lastRunAt)),
                PGArrayLiteral.int64(rows.map(\.baseLastRunAt)),
                PGArrayLiteral.int64(rows.map(\.leaseDaemon)),
                PGArrayLiteral.int64(rows.map(\.leaseHolder)),
                PGArrayLiteral.int64(rows.map { Optional(Int64(clamping: $0.record.skippedRuns)) }),
                PGArrayLiteral.text(rows.map(\.record.lastSkip)),
            ])
    }

    public mutating func ack(id: String, attempt: UInt32, holder: UInt64, now: Int64) throws(StoreError) -> TaskRecord? {
        // The usual case, a one-off task whose lease is current: one statement.
        let deleted = try sql("""
            DELETE FROM \(tasks) WHERE id = $1 AND state = 1 AND lease_daemon = $2 AND lease_holder = $3
                AND attempt = $4 AND interval_us IS NULL AND calendar IS NULL
            RETURNING callback, run_at, last_run_at
            """, [id, daemon, String(Int64(bitPattern: holder)), String(attempt)])
        if deleted.rowCount == 1 {
            noteAcked(deleted, row: 0, id: id, attempt: attempt, holder: holder, now: now)
            return nil
        }
        let old = try leased(id, attempt: attempt, holder: holder)
        guard old.record.schedule.isRecurring else {
            throw StoreError(code: .internalError, message: "task \"\(id)\" is a leased one-off task the ack did not remove")
        }
        let advanced = old.advanced(now: now)
        endedRuns += EndedRun.endings(old.record, holder: holder, outcome: .succeeded, error: nil,
                                      after: advanced?.record, now: now)
        guard let new = advanced else {
            // A calendar rule with no occurrence left: finished, like a one-off task.
            try sql("DELETE FROM \(tasks) WHERE id = $1", [id])
            return nil
        }
        try saveDeliveryFields([new])
        notifyDue(new.record, now: now)
        return new.record
    }

    /// Records the ack of a one-off task that a `DELETE … RETURNING callback, run_at, last_run_at` removed.
    private mutating func noteAcked(_ result: PGResult, row: Int, id: String, attempt: UInt32, holder: UInt64,
                                    now: Int64)
    {
        endedRuns.append(.ending(id: id, callback: result.string(row, 0) ?? "", attempt: attempt,
                                 runAt: result.int64(row, 1) ?? now, lastRunAt: result.int64(row, 2),
                                 holder: holder, outcome: .succeeded, error: nil, then: .finished, now: now))
    }

    /// Several acks in one statement (a group commit's acks): the one-off tasks whose leases are current are
    /// deleted together; the rest (recurring tasks, lost leases, unknown ids, a lease named twice) go through
    /// `ack(id:attempt:holder:now:)` one by one, so each result is what that gives.
    public mutating func ack(_ leases: [LeaseAck], now: Int64) -> [Result<TaskRecord?, StoreError>] {
        var gone: [NameKey: Int] = [:]
        if leases.count > 1 {
            do {
                // No join: planned with the statistics of a table whose tasks were all scheduled at the last
                // ANALYZE (a drain leases them within seconds), a join with the id list was a nested loop over
                // every lease of this daemon times every id: 200 ms for 1,000 acks. So the pkey lookup of the ids
                // drives; `state + 0` keeps the planner off the leases index, whose row estimate is the stale one;
                // and (id, holder, attempt) is matched as one key against a constant array, which PostgreSQL
                // hashes, in a plan made for these values (`prepare: false`). 1,000 acks: 7 ms.
                let deleted = try sql("""
                    DELETE FROM \(tasks) t
                    WHERE t.id = ANY($1::text[]) AND t.state + 0 = 1 AND t.lease_daemon = $2
                        AND t.interval_us IS NULL AND t.calendar IS NULL
                        AND (t.id || ' ' || t.lease_holder || ' ' || t.attempt) = ANY($3::text[])
                    RETURNING t.callback, t.run_at, t.last_run_at, t.id, t.lease_holder, t.attempt
                    """, [PGArrayLiteral.text(leases.map(\.id)), daemon,
                          PGArrayLiteral.text(leases.map { "\($0.id) \(Int64(bitPattern: $0.holder)) \($0.attempt)" })],
                    prepare: false)
                for r in 0..<deleted.rowCount {
                    let id = deleted.string(r, 3) ?? ""
                    gone[NameKey(id), default: 0] += 1
                    noteAcked(deleted, row: r, id: id, attempt: UInt32(clamping: deleted.int64(r, 5) ?? 0),
                              holder: UInt64(bitPattern: deleted.int64(r, 4) ?? 0), now: now)
                }
            } catch {
                return leases.map { _ in .failure(error) }
            }
        }
        return leases.map { lease in
            let key = NameKey(lease.id)
            if let count = gone[key], count > 0 {
                gone[key] = count - 1
                return .success(nil)
            }
            return Result { () throws(StoreError) in
                try ack(id: lease.id, attempt: lease.attempt, holder: lease.holder, now: now)
            }
        }
    }

    /// Several adds (a group commit's): valid requests that replace or keep, with no id named twice among
    /// them, are merged into one statement per policy; otherwise they are applied one by one. Each result is
    /// what `add` gives the request alone.
    public mutating func add(requests: [AddRequest], now: Int64) -> [Result<[AddResult], StoreError>] {
        var outcomes = [Result<[AddResult], StoreError>?](repeating: nil, count: requests.count)
        var groups: [(policy: ConflictPolicy, members: [Int])] = [(.replace, []), (.keep, [])]
        var mergeable = true
        var seen = Set<NameKey>()
        for (i, request) in requests.enumerated() {
            do {
                _ = try TaskValidation.prepare(request.specs, maxKwargsBytes: store.options.maxKwargsBytes,
                                               checksKwargsJSON: store.options.checksKwargsJSON)
            } catch {
                outcomes[i] = .failure(error)
                continue
            }
            for spec in request.specs {
                if let id = spec.id, !seen.insert(NameKey(id)).inserted { mergeable = false }
            }
            switch request.onConflict {
            case .replace: groups[0].members.append(i)
            case .keep: groups[1].members.append(i)
            case .fail: mergeable = false
            }
        }
        guard mergeable else {
            return requests.indices.map { i in
                outcomes[i] ?? Result { () throws(StoreError) in
                    try add(requests[i].specs, onConflict: requests[i].onConflict, now: now)
                }
            }
        }
        for group in groups where !group.members.isEmpty {
            let combined = group.members.flatMap { requests[$0].specs }
            do {
                let results = try add(combined, onConflict: group.policy, now: now)
                var offset = 0
                for i in group.members {
                    let count = requests[i].specs.count
                    outcomes[i] = .success(Array(results[offset..<offset + count]))
                    offset += count
                }
            } catch {
                for i in group.members { outcomes[i] = .failure(error) }
            }
        }
        return outcomes.map { $0! }
    }

    public mutating func fail(id: String, attempt: UInt32, holder: UInt64, error: String, retry: Bool, now: Int64)
        throws(StoreError) -> TaskRecord
    {
        let old = try leased(id, attempt: attempt, holder: holder)
        var new: TaskRow
        if old.record.schedule.isRecurring {
            guard let advanced = old.advanced(now: now) else {
                try sql("DELETE FROM \(tasks) WHERE id = $1", [id])
                endedRuns += EndedRun.endings(old.record, holder: holder, outcome: .failed, error: error, after: nil,
                                              now: now)
                return old.record.failed(error, at: now)
            }
            new = advanced
        } else if retry && old.record.attempt < old.record.maxAttempts {
            new = old.unleased(state: .scheduled)
            let delay = store.options.retry.delay(afterAttempt: old.record.attempt, unit: store.random.unit())
            let (at, overflow) = now.addingReportingOverflow(delay)
            new.record.runAt = overflow ? .max : at
        } else {
            new = old.unleased(state: .dead)
        }
        new.record.lastError = truncateUTF8(error, limit: ProtocolLimits.maxErrorBytes)
        new.record.lastFailureAt = now
        endedRuns += EndedRun.endings(old.record, holder: holder, outcome: .failed, error: error, after: new.record,
                                      now: now)
        try saveDeliveryFields([new])
        notifyDue(new.record, now: now)
        return new.record
    }

    public mutating func touch(id: String, attempt: UInt32, holder: UInt64, leaseDeadline: Int64) throws(StoreError)
        -> Int64
    {
        let updated = try sql("""
            UPDATE \(tasks) SET lease_deadline = $5
            WHERE id = $1 AND state = 1 AND lease_daemon = $2 AND lease_holder = $3 AND attempt = $4
            """, [id, daemon, String(Int64(bitPattern: holder)), String(attempt), String(leaseDeadline)])
        if updated.affectedRows == 1 { return leaseDeadline }
        _ = try leased(id, attempt: attempt, holder: holder)  // throws the reason
        throw StoreError(code: .internalError, message: "task \"\(id)\": the touch changed no row")
    }

    public mutating func release(id: String, attempt: UInt32, holder: UInt64, now: Int64?) throws(StoreError)
        -> TaskRecord
    {
        let old = try leased(id, attempt: attempt, holder: holder)
        let new = old.released()
        if let now {
            endedRuns.append(.ending(old.record, holder: holder, outcome: .released, error: nil, after: new.record,
                                     now: now))
        }
        try saveDeliveryFields([new])
        // Due again at once (its run time has come): another daemon's worker may take it.
        notifyDue(new.record, now: new.record.runAt)
        return new.record
    }

    /// Ends the leases that `condition` selects among this daemon's, in (deadline, id) order, each as a
    /// failed attempt with `reason`, except those `spare` keeps.
    private mutating func abandon(where condition: String, _ params: [String?], reason: String, now: Int64,
                                  sparing spare: (String, UInt64) -> Bool) throws(StoreError) -> [TaskRecord]
    {
        let result = try sql("""
            SELECT \(TaskRow.columns) FROM \(tasks) WHERE state = 1 AND lease_daemon = $1 AND \(condition)
            ORDER BY lease_deadline, id FOR UPDATE
            """, [daemon] + params)
        var rows = try TaskRow.all(result)
        rows.sort { a, b in
            a.record.leaseDeadline != b.record.leaseDeadline
                ? (a.record.leaseDeadline ?? 0) < (b.record.leaseDeadline ?? 0)
                : a.record.id.utf8.lexicographicallyPrecedes(b.record.id.utf8)
        }
        return try endLeases(rows.filter { !spare($0.record.id, UInt64(bitPattern: $0.leaseHolder ?? 0)) },
                             reason: reason, now: now)
    }

    /// Ends the leases of `rows` (locked by the caller) as failed attempts with `reason` and saves them; a
    /// calendar task with no occurrence left is removed. Returns the records as they are now.
    ///
    /// Each end goes to `endedRuns` with the holder's number; `rescuedFrom` names the lost daemon whose leases
    /// these were (its holders are not this daemon's connections): their entries carry that daemon's name and
    /// no holder.
    mutating func endLeases(_ rows: [TaskRow], reason: String, now: Int64, rescuedFrom: [Int64: String]? = nil)
        throws(StoreError) -> [TaskRecord]
    {
        var ended: [TaskRow] = []
        var finished: [TaskRecord] = []
        let outcome = EndedRun.outcome(ofLeaseEnd: reason)
        for row in rows {
            let next = row.abandoned(reason: reason, now: now)
            var runs = EndedRun.endings(row.record, holder: UInt64(bitPattern: row.leaseHolder ?? 0), outcome: outcome,
                                        error: reason, after: next?.record, now: now)
            if let rescuedFrom {
                for i in runs.indices {
                    runs[i].holder = 0
                    runs[i].entry.daemon = row.leaseDaemon.flatMap { rescuedFrom[$0] } ?? ""
                }
            }
            endedRuns += runs
            if let next {
                ended.append(next)
            } else {
                finished.append(row.record.failed(reason, at: now))
            }
        }
        try saveDeliveryFields(ended)
        if !finished.isEmpty {
            // Calendar tasks with no occurrence left: finished, removed like acknowledged one-off tasks.
            try sql("DELETE FROM \(tasks) WHERE id = ANY($1::text[])", [PGArrayLiteral.text(finished.map(\.id))])
        }
        for row in ended { notifyDue(row.record, now: now) }
        return ended.map(\.record) + finished
    }

    public mutating func releaseHolder(_ holder: UInt64, reason: String, now: Int64) throws(StoreError) -> [TaskRecord] {
        try abandon(where: "lease_holder = $2", [String(Int64(bitPattern: holder))], reason: reason, now: now,
                    sparing: { _, _ in false })
    }

    public mutating func expireLeases(now: Int64, sparing spare: (_ id: String, _ holder: UInt64) -> Bool)
        throws(StoreError) -> [TaskRecord]
    {
        try abandon(where: "lease_deadline <= $2", [String(now)], reason: "lease expired", now: now, sparing: spare)
    }

    public mutating func releaseAllLeases() throws(StoreError) -> Int {
        let count = try sql("UPDATE \(tasks) SET \(Self.releasedAssignments) WHERE state = 1 AND lease_daemon = $1",
                            [daemon]).affectedRows
        if count > 0 { notifyAnyDue() }
        return count
    }

    // MARK: Dead letters

    public mutating func retryDead(_ selector: TaskSelector, now: Int64) throws(StoreError) -> Int {
        var params: [String?] = [String(now)]
        let condition = Self.condition(selector, &params)
        let count = try sql("UPDATE \(tasks) SET state = 0, run_at = $1, attempt = 0 WHERE \(condition) AND state = 2",
                            params).affectedRows
        if count > 0 { notifyAnyDue() }
        return count
    }

    public mutating func purgeDead(_ selector: TaskSelector) throws(StoreError) -> Int {
        var params: [String?] = []
        let condition = Self.condition(selector, &params)
        return try sql("DELETE FROM \(tasks) WHERE \(condition) AND state = 2", params).affectedRows
    }

    // MARK: Reads

    public func fetch(_ selector: TaskSelector) throws(StoreError) -> [TaskRecord] {
        let query = try Self.fetchQuery(selector, table: tasks, maxGroupTasks: .max)
        if let poison { throw PostgresTaskStore.storeError(poison) }
        let result: PGResult
        do {
            result = try connection.query(query.sql, query.params, after: prelude.take())
        } catch {
            // A read cannot poison a non-mutating view; the transaction is aborted all the same, so the
            // batch's next write fails and `write` rolls back.
            throw PostgresTaskStore.storeError(error)
        }
        return try Self.fetchResult(result, selector, maxGroupTasks: .max)
    }

    /// The statement of a fetch (a group: one row more than `maxGroupTasks`, to tell a too-large group).
    static func fetchQuery(_ selector: TaskSelector, table: String, maxGroupTasks: Int) throws(StoreError)
        -> (sql: String, params: [String?])
    {
        switch selector {
        case .all:
            throw StoreError(code: .invalidArgument, field: "selector.kind",
                             message: "fetch needs ids or a group; page through every task with list")
        case .ids(let ids):
            return ("SELECT \(TaskRow.columns) FROM \(table) WHERE id = ANY($1::text[])", [PGArrayLiteral.text(ids)])
        case .group(let group):
            let limit = maxGroupTasks == .max ? "" : " LIMIT \(maxGroupTasks + 1)"
            return ("SELECT \(TaskRow.columns) FROM \(table) WHERE group_name = $1 ORDER BY run_at, id\(limit)", [group])
        }
    }

    /// A fetch's records in the selector's order: ids as given (each once), a group by (`runAt`, id).
    static func fetchResult(_ result: PGResult, _ selector: TaskSelector, maxGroupTasks: Int) throws(StoreError)
        -> [TaskRecord]
    {
        let records = try TaskRow.all(result).map(\.record)
        switch selector {
        case .ids(let ids):
            var byID: [NameKey: TaskRecord] = [:]
            for r in records { byID[NameKey(r.id)] = r }
            var out: [TaskRecord] = []
            for id in ids {
                if let r = byID.removeValue(forKey: NameKey(id)) { out.append(r) }
            }
            return out
        case .group(let group):
            if records.count > maxGroupTasks {
                throw StoreError(code: .invalidArgument, field: "selector.group", message:
                    "group \"\(group)\" has more than \(maxGroupTasks) tasks, the most one fetch returns; page through it with list and a group filter")
            }
            return records.sorted(by: precedesByPosition)
        case .all:
            return records
        }
    }
}
