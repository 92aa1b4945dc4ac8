#if canImport(Glibc)
import Glibc
#endif
import TaskShedPostgres
import TaskShedProtocol

/// `taskshed-bench shared`: the PostgreSQL datastore with several daemons, beside the same scenario on LMDB and
/// beside the floors measured in the same run (issue 18's benchmark):
/// - lag of tasks added ≥ 1 s ahead through daemon A, worker on daemon B, against the timer + socket floor;
/// - add on A → delivery on B of a task due at once, against a `NOTIFY` round trip and one durable commit;
/// - drain of due tasks, two daemons with two workers each;
/// - a batched add through a daemon; durable single adds from 1 and from 16 clients.
public enum SharedDatastoreBenchmark {
    /// Sizes.
    public struct Config: Sendable {
        /// Tasks of the lag runs, spread over `lagSeconds`.
        public var lagCount = 500
        public var lagSeconds = 5.0
        /// Tasks added due at once, one at a time, for add → delivery.
        public var immediateCount = 300
        /// Due tasks drained.
        public var drainCount = 100_000
        /// Tasks of the batched add.
        public var batchCount = 100_000
        /// Sequential single adds, and per client of the concurrent ones.
        public var singleCount = 1_000
        public var clients = 16
        public var perClient = 200
        /// Samples of each database floor.
        public var floorCount = 1_000
        /// An existing server's libpq connection string; `nil` starts a throw-away one.
        public var connectionString: String?
        /// More daemon arguments.
        public var daemonArguments: [String] = []

        /// Default sizes.
        public init() {}
    }

    /// A throw-away PostgreSQL cluster (`scripts/pg-test-server.sh`), or the user's server.
    final class Server {
        let connectionString: String
        private let directory: String?

        init(existing: String?) throws {
            if let existing {
                connectionString = existing
                directory = nil
                return
            }
            var template = Array("/tmp/taskshed-bench-pg-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw BenchError.errno("mkdtemp")
            }
            let dir = String(cString: made)
            directory = dir
            InterruptCleanup.register(command: ["/bin/bash", Self.script, "stop", dir])
            let out = dir + ".start.log"
            defer { unlink(out) }
            let child = try BenchProcess(executable: "/bin/bash", arguments: [Self.script, "start", dir], outputPath: out)
            guard child.wait() == 0, let text = ProcFacts.readSmallFile(out),
                  let line = text.split(separator: "\n").last(where: { $0.hasPrefix("host=") })
            else {
                throw BenchError("cannot start a PostgreSQL server with \(Self.script): "
                    + (ProcFacts.readSmallFile(out) ?? ""))
            }
            connectionString = String(line)
        }

        deinit { stop() }

        func stop() {
            guard let directory else { return }
            let child = try? BenchProcess(executable: "/bin/bash", arguments: [Self.script, "stop", directory])
            _ = child?.wait()
            InterruptCleanup.unregister(command: ["/bin/bash", Self.script, "stop", directory])
        }

        /// `scripts/pg-test-server.sh` of the checkout this bench was built from.
        static var script: String {
            var path = #filePath
            for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
            return path + "/scripts/pg-test-server.sh"
        }
    }

    /// Runs every part and returns one table per part.
    /// - Throws: `BenchError` when a server, daemon or worker fails.
    public static func run(_ config: Config) throws -> [BenchTable] {
        let server = try Server(existing: config.connectionString)
        let schema = "bench_\(getpid())"
        func daemon(_ name: String) throws -> BenchDaemon {
            try BenchDaemon(arguments: config.daemonArguments + [
                "--datastore", "postgresql:" + server.connectionString, "--schema", schema, "--daemon-name", name])
        }
        var tables: [BenchTable] = []
        let floors = try databaseFloors(server.connectionString, count: config.floorCount)

        // 1. Lag of tasks known ahead: the floor, LMDB, PostgreSQL across daemons, in one run.
        let floor = try FloorBenchmark.run(count: config.lagCount, seconds: config.lagSeconds)
        let lmdb = try BenchDaemon(arguments: config.daemonArguments)
        let lmdbRun = try LagBenchmark.run(daemon: lmdb, count: config.lagCount, seconds: config.lagSeconds,
                                           worker: .rawEventDriven)
        lmdb.close()
        var a = try daemon("a")
        var b = try daemon("b")
        var sharedRun = try LagBenchmark.run(daemon: b, count: config.lagCount, seconds: config.lagSeconds,
                                             worker: .rawEventDriven, scheduler: a)
        sharedRun.name = "PostgreSQL: added on daemon A, raw subscriber on daemon B"
        var lmdbNamed = lmdbRun
        lmdbNamed.name = "LMDB: one daemon, raw subscriber"
        tables.append(LagTable.make(
            title: "shared lag (tasks added ≥ 1 s ahead)", runs: [floor, lmdbNamed, sharedRun], floor: floor,
            notes: ["target: PostgreSQL p50 ≤ 1.5x the floor, as on LMDB"],
            parameters: [("count", .integer(Int64(config.lagCount))), ("seconds", .number(config.lagSeconds))]))

        // 2. Add on A → delivery on B, due at once.
        let immediate = try addToDelivery(scheduler: a, worker: b, count: config.immediateCount)
        tables.append(LagTable.make(
            title: "shared add → delivery (due at once)",
            runs: [floors.notify, floors.commit, immediate], floor: nil,
            notes: ["target: p50 ≤ 2 ms, p99 ≤ 5 ms; floors measured in this run on the same server"],
            parameters: [("count", .integer(Int64(config.immediateCount)))]))

        // 3. Drain across two daemons, two workers each; 4. batched add; 5. single adds.
        a.close()
        b.close()
        try? dropSchema(schema, on: server.connectionString)
        a = try daemon("a")
        b = try daemon("b")
        let drain = try DrainBenchmark.run(daemon: a, count: config.drainCount, workers: 4, concurrency: 1_000,
                                           workerDaemons: [a, b])
        let batch = try AddBenchmark.batch(daemon: a, count: config.batchCount)
        let single = try AddBenchmark.sequential(daemon: a, count: config.singleCount)
        let concurrent = try AddBenchmark.concurrent(daemon: a, clients: config.clients, perClient: config.perClient)
        let ratio = concurrent.tasksPerSecond / max(single.figure.tasksPerSecond, 1)
        tables.append(RateFigure.table(
            title: "shared throughput (PostgreSQL, durable)",
            figures: [drain.fill, drain.figure, batch, single.figure, concurrent],
            notes: [
                "targets: drain ≥ 30,000 tasks/s; batched add ≥ 100,000 tasks/s; 16 clients ≥ 5x one client",
                "16 clients / 1 client: \(formatDecimal(ratio, digits: 2))x",
                "daemon CPU per drained task (both daemons): \(formatDecimal(drain.daemonCPUMicrosPerTask, digits: 1)) µs",
            ]))
        a.close()
        b.close()
        try? dropSchema(schema, on: server.connectionString)
        server.stop()
        return tables
    }

    /// `count` tasks added one at a time through `scheduler`, each due at the instant it is sent, received by a
    /// raw subscriber on `worker`: receive time − send time.
    static func addToDelivery(scheduler: BenchDaemon, worker: BenchDaemon, count: Int) throws -> LagRun {
        let report = worker.runDirectory + "/immediate.txt"
        let deadline = BenchTime.realtimeNanos() + Int64(Double(count) * 0.02e9 + 20e9)
        let child = try HelperProcesses.spawnReady(
            ["_lag-worker", "--socket", worker.socketPath, "--mode", "raw", "--count", "\(count)",
             "--deadline-nanos", "\(deadline)", "--output", report],
            logPath: worker.runDirectory + "/immediate-worker.log")
        let connection = try scheduler.connect(name: "taskshed-bench immediate scheduler")
        for index in 0..<count {
            let now = BenchTime.realtimeNanos() / 1000
            try connection.expectSuccess(.addTasks(AddTasks(tasks: [
                TaskSpec(id: "now-\(index)", callback: LagBenchmark.callback, runAt: now)])))
            // One at a time: each crosses on its own notification.
            usleep(20_000)
        }
        guard child.wait() == 0 else {
            throw BenchError("immediate worker failed; log:\n"
                + (ProcFacts.readSmallFile(worker.runDirectory + "/immediate-worker.log") ?? ""))
        }
        let records = try HelperProcesses.readRecords(report)
        return LagRun.from(
            name: "PostgreSQL: add on daemon A → DELIVERY on daemon B", expected: count,
            records: records.filter { $0.count == 4 }.map { (Int($0[0]), Double($0[3] - $0[1] * 1000) / 1000) })
    }

    /// Drops the bench's schema (between parts, so that each starts from an empty table).
    static func dropSchema(_ schema: String, on connectionString: String) throws {
        do {
            let connection = try PGConnection(connectionString)
            defer { connection.close() }
            try connection.query("DROP SCHEMA IF EXISTS \(schema) CASCADE")
        } catch {
            throw BenchError("cannot drop schema \(schema): \(error)")
        }
    }

    /// The database's own floors: a `NOTIFY` (autocommit) until a listening connection has it, and one
    /// durable single-row `INSERT` (autocommit).
    static func databaseFloors(_ connectionString: String, count: Int) throws -> (notify: LagRun, commit: LagRun) {
        do {
            let listener = try PGConnection(connectionString)
            let sender = try PGConnection(connectionString)
            defer {
                listener.close()
                sender.close()
            }
            try listener.query("LISTEN taskshed_bench_floor")
            var notify: [(index: Int, micros: Double)] = []
            for index in 0..<count {
                let start = BenchTime.monotonicNanos()
                try sender.query("NOTIFY taskshed_bench_floor, 'x'")
                var got = false
                while !got {
                    var fd = pollfd(fd: listener.socket, events: Int16(POLLIN), revents: 0)
                    guard poll(&fd, 1, 5_000) > 0, listener.consumeInput() else {
                        throw BenchError("no notification within 5 s")
                    }
                    while listener.nextNotification() != nil { got = true }
                }
                notify.append((index, Double(BenchTime.monotonicNanos() - start) / 1000))
            }
            // A real table: changes to a temporary one are not written to the WAL, so their commit flushes nothing.
            try sender.query("CREATE TABLE IF NOT EXISTS taskshed_bench_floor_\(getpid()) (x int)")
            defer { _ = try? sender.query("DROP TABLE IF EXISTS taskshed_bench_floor_\(getpid())") }
            var commit: [(index: Int, micros: Double)] = []
            for index in 0..<count {
                let start = BenchTime.monotonicNanos()
                try sender.query("INSERT INTO taskshed_bench_floor_\(getpid()) VALUES ($1)", [String(index)])
                commit.append((index, Double(BenchTime.monotonicNanos() - start) / 1000))
            }
            return (LagRun.from(name: "floor: NOTIFY → a listening connection has it", expected: count, records: notify),
                    LagRun.from(name: "floor: one durable single-row INSERT", expected: count, records: commit))
        } catch let error as PGError {
            throw BenchError("PostgreSQL floor: \(error)")
        }
    }
}
