/// The database schema of the PostgreSQL store, as versioned migrations (SCHEMA.md documents the tables).
///
/// Every daemon runs `migrate` when it opens the store: under a transaction-level advisory lock, so several
/// daemons starting at once on an empty database apply each migration exactly once, and a daemon that finds
/// a newer schema than it knows refuses to start rather than write rows it does not understand.
enum PostgresSchema {
    /// One schema change, applied in one transaction.
    struct Migration {
        let version: Int
        let summary: String
        /// SQL with `%SCHEMA%` for the quoted schema name.
        let sql: String
    }

    /// Every migration, in order. Never edit an applied one: add the next.
    static let migrations: [Migration] = [
        Migration(version: 1, summary: "tasks and daemons", sql: """
            CREATE TABLE %SCHEMA%.tasks (
                id text COLLATE "C" PRIMARY KEY,
                callback text COLLATE "C" NOT NULL,
                group_name text COLLATE "C",
                run_at bigint NOT NULL,
                interval_us bigint,
                kwargs text NOT NULL,
                paused boolean NOT NULL,
                paused_at bigint,
                coalesce boolean NOT NULL,
                state smallint NOT NULL,
                attempt bigint NOT NULL,
                max_attempts bigint NOT NULL,
                lease_deadline bigint,
                last_error text,
                created_at bigint NOT NULL,
                last_run_at bigint,
                last_failure_at bigint,
                base_last_run_at bigint,
                lease_daemon bigint,
                lease_holder bigint,
                CHECK (state IN (0, 1, 2)),
                CHECK ((state = 1) = (lease_daemon IS NOT NULL))
            );
            CREATE INDEX tasks_due_by_callback ON %SCHEMA%.tasks (callback, run_at, id) WHERE state = 0 AND NOT paused;
            CREATE INDEX tasks_by_time ON %SCHEMA%.tasks (run_at, id);
            CREATE INDEX tasks_by_group ON %SCHEMA%.tasks (group_name, run_at, id) WHERE group_name IS NOT NULL;
            CREATE INDEX tasks_leases ON %SCHEMA%.tasks (lease_daemon, lease_deadline, id) WHERE state = 1;
            -- A queue table: rows are inserted and deleted all the time, so vacuum it early and often (dead
            -- entries at the head of the due index slow every claim until vacuum removes them).
            ALTER TABLE %SCHEMA%.tasks SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                                            autovacuum_analyze_scale_factor = 0.02);
            CREATE TABLE %SCHEMA%.daemons (
                id bigserial PRIMARY KEY,
                name text NOT NULL,
                host text NOT NULL,
                pid integer NOT NULL,
                started_at bigint NOT NULL,
                heartbeat_at bigint NOT NULL
            );
            CREATE INDEX daemons_by_name ON %SCHEMA%.daemons (name);
            """),
        Migration(version: 2, summary: "calendar schedules", sql: """
            ALTER TABLE %SCHEMA%.tasks
                ADD COLUMN calendar text,
                ADD COLUMN skipped_runs bigint NOT NULL DEFAULT 0,
                ADD COLUMN last_skip text,
                ADD CHECK (interval_us IS NULL OR calendar IS NULL);
            """),
        Migration(version: 3, summary: "run history", sql: """
            CREATE TABLE %SCHEMA%.runs (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                task_id text COLLATE "C" NOT NULL,
                callback text COLLATE "C" NOT NULL,
                attempt bigint NOT NULL,
                scheduled_at bigint NOT NULL,
                delivered_at bigint,
                finished_at bigint NOT NULL,
                outcome smallint NOT NULL,
                follow_up smallint NOT NULL,
                error text,
                worker_name text NOT NULL,
                worker_pid bigint NOT NULL,
                worker_uid bigint NOT NULL,
                daemon text NOT NULL,
                CHECK (outcome BETWEEN 0 AND 5),
                CHECK (follow_up BETWEEN 0 AND 3)
            );
            CREATE INDEX runs_by_task ON %SCHEMA%.runs (task_id, seq);
            -- Appended at the tail and trimmed at the head by every commit that ends runs.
            ALTER TABLE %SCHEMA%.runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
            """),
    ]

    /// The newest schema version this build knows.
    static var currentVersion: Int { migrations.last!.version }

    /// `name` as a quoted SQL identifier.
    static func quoted(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// Creates the schema or brings it up to `currentVersion`.
    /// - Throws: `PGError` from the server; `SchemaError.tooNew` when the database was migrated by a newer
    ///   build.
    static func migrate(_ connection: PGConnection, schema: String) throws(SchemaError) {
        let q = quoted(schema)
        do {
            try connection.query("BEGIN")
            // One lock per schema, held to the end of the transaction: a second daemon waits here until the
            // first has committed, then finds the migrations applied.
            try connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", ["taskshed-migrate:" + schema])
            try connection.query("CREATE SCHEMA IF NOT EXISTS \(q)")
            try connection.query("""
                CREATE TABLE IF NOT EXISTS \(q).schema_migrations (
                    version integer PRIMARY KEY,
                    summary text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """)
            let found = try connection.query("SELECT coalesce(max(version), 0) FROM \(q).schema_migrations")
            let applied = Int(found.int64(0, 0) ?? 0)
            if applied > currentVersion {
                _ = try? connection.query("ROLLBACK")
                throw SchemaError.tooNew(found: applied, known: currentVersion)
            }
            for migration in migrations where migration.version > applied {
                try connection.run(migration.sql.replacingAll("%SCHEMA%", with: q))
                try connection.query("INSERT INTO \(q).schema_migrations (version, summary) VALUES ($1, $2)",
                                     [String(migration.version), migration.summary])
            }
            try connection.query("COMMIT")
        } catch let error as PGError {
            _ = try? connection.query("ROLLBACK")
            throw SchemaError.server(error)
        } catch let error as SchemaError {
            throw error
        } catch {
            throw SchemaError.server(PGError(message: "\(error)"))
        }
    }

    /// Why the schema could not be brought up to date.
    enum SchemaError: Error {
        case server(PGError)
        case tooNew(found: Int, known: Int)
    }
}

extension String {
    /// Every occurrence of `target` replaced (Foundation's `replacingOccurrences` without Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
