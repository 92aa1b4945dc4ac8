#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol
import TaskShedStore

/// One measured figure.
public struct BenchResult: Sendable {
    /// What was measured.
    public var name: String
    /// Tasks processed.
    public var tasks: Int
    /// Elapsed nanoseconds.
    public var nanos: UInt64
    /// CPU nanoseconds of the measuring thread over the same interval.
    public var cpuNanos: UInt64
    /// Extra facts ("p50 180 µs", "RssAnon 1.2 MiB").
    public var notes: [String]

    /// Creates a result.
    public init(name: String, tasks: Int, nanos: UInt64, cpuNanos: UInt64 = 0, notes: [String] = []) {
        self.name = name
        self.tasks = tasks
        self.nanos = nanos
        self.cpuNanos = cpuNanos
        self.notes = notes
    }

    /// Tasks per second.
    public var tasksPerSecond: Double { nanos == 0 ? 0 : Double(tasks) / (Double(nanos) / 1e9) }
    /// Nanoseconds per task.
    public var nanosPerTask: Double { tasks == 0 ? 0 : Double(nanos) / Double(tasks) }

    /// One line for the report.
    public var line: String {
        let rate = tasksPerSecond >= 1 ? "\(format(tasksPerSecond, 0)) tasks/s, \(format(nanosPerTask, 0)) ns/task" : ""
        var cpu = ""
        if cpuNanos > 0 && tasks > 0 {
            let cpuRate = Double(tasks) / (Double(cpuNanos) / 1e9)
            cpu = "(CPU: \(format(Double(cpuNanos) / 1e6, 1)) ms, \(format(cpuRate, 0)) tasks/s, \(format(Double(cpuNanos) / Double(tasks), 0)) ns/task)"
        }
        let time = "\(format(Double(nanos) / 1e6, 2)) ms"
        return ([name + ":", "\(tasks) tasks in \(time)", rate, cpu] + notes).filter { !$0.isEmpty }.joined(separator: "  ")
    }
}

/// Formats with `digits` decimals.
func format(_ v: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([v]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Wall and thread-CPU nanoseconds of `body`.
func measure<R>(_ body: () throws -> R) rethrows -> (R, wall: UInt64, cpu: UInt64) {
    let w = BenchClock.nanos()
    let c = BenchClock.threadCPUNanos()
    let r = try body()
    return (r, BenchClock.nanos() - w, BenchClock.threadCPUNanos() - c)
}

/// How the benchmark's `runAt` times relate to the order tasks are added in.
public enum TimeOrder: String, Sendable, CaseIterable {
    /// Random times over the spread: every index insert lands on a random page.
    case random
    /// Times ascend with insertion order (tasks scheduled as they come): index inserts append.
    case ascending
}

/// Benchmarks of `LMDBTaskStore` through its public API.
public enum StoreBenchmarks {
    /// Settings for a run.
    public struct Config: Sendable {
        /// Directory for the stores (each scenario uses its own subdirectory, removed afterwards).
        public var directory: String
        /// Tasks in the one-transaction batched add.
        public var batchedAddTasks = 100_000
        /// Single-task durable adds.
        public var singleAdds = 2_000
        /// Tasks claimed and acked.
        public var claimAckTasks = 100_000
        /// Claim batch size.
        public var claimBatch = 100
        /// Tasks in the large store for the open / next wake-up measurement.
        public var largeStoreTasks = 1_000_000
        /// Durable commits (fsync) in the add and claim scenarios.
        public var durable = true
        /// Open the add and claim stores with `MDB_NORDAHEAD`.
        public var noReadAhead = true

        /// Creates a configuration.
        public init(directory: String) { self.directory = directory }
    }

    static let callbacks = (0..<10).map { "callback-\($0)" }

    /// Specs: generated ids, 10 callbacks, 10 % in one of 1,000 groups, `runAt` spread over `spread` µs from
    /// `base` (randomly, or ascending with the index).
    static func specs(
        _ count: Int, base: Int64, spread: Int64, order: TimeOrder, random: inout some RandomNumberGenerator
    ) -> [TaskSpec] {
        let kwargs = Array(#"{"user_id": 12345, "kind": "reminder"}"#.utf8)
        return (0..<count).map { i in
            let offset = order == .random
                ? Int64.random(in: 0..<spread, using: &random) : spread / Int64(count) * Int64(i)
            return TaskSpec(
                callback: callbacks[i % callbacks.count], runAt: base + offset, kwargs: kwargs,
                group: i % 10 == 0 ? "group-\(i % 1000)" : nil)
        }
    }

    static func options(_ durable: Bool, noReadAhead: Bool = true) -> StoreOptions {
        StoreOptions(initialMapBytes: 256 << 20, maxMapBytes: 64 << 30, durable: durable, noReadAhead: noReadAhead)
    }

    /// Removes a store directory's files.
    /// A fresh store at `path` holding `config.claimAckTasks` tasks due over the past hour: the starting point
    /// of the claim + ack scenarios. Returns the store and the wall-clock time the tasks were added at.
    static func storeOfDueTasks(_ config: Config, path: String, order: TimeOrder, history: HistoryLimits = .none)
        throws -> (LMDBTaskStore, Int64)
    {
        removeStore(path)
        var options = options(config.durable, noReadAhead: config.noReadAhead)
        options.history = history
        let store = try LMDBTaskStore(directory: path, options: options)
        var random = SystemRandomNumberGenerator()
        let now = BenchClock.wallMicros()
        _ = try store.add(
            specs(config.claimAckTasks, base: now - 3_600_000_000, spread: 3_600_000_000, order: order, random: &random),
            now: now)
        return (store, now)
    }

    static func removeStore(_ path: String) {
        for name in ["data.mdb", "lock.mdb", "taskshed.lock"] { unlink(path + "/" + name) }
        rmdir(path)
    }

    /// 100k tasks (generated ids, all indexes) in one durable transaction.
    public static func batchedAdd(_ config: Config, order: TimeOrder) throws -> BenchResult {
        let path = config.directory + "/batched-add"
        removeStore(path)
        defer { removeStore(path) }
        let store = try LMDBTaskStore(directory: path, options: options(config.durable, noReadAhead: config.noReadAhead))
        var random = SystemRandomNumberGenerator()
        let now = BenchClock.wallMicros()
        let specs = specs(config.batchedAddTasks, base: now, spread: 3_600_000_000, order: order, random: &random)
        let (_, wall, cpu) = try measure { try store.add(specs, onConflict: .replace, now: now) }
        let stats = try store.stats(now: now)
        return BenchResult(
            name: "batched add (one transaction, \(order.rawValue) runAt, \(config.durable ? "durable" : "no-sync"))",
            tasks: config.batchedAddTasks, nanos: wall, cpuNanos: cpu,
            notes: ["file \(stats.fileBytes >> 20) MiB"])
    }

    /// Single-task adds, each its own durable transaction.
    public static func singleAdds(_ config: Config) throws -> BenchResult {
        let path = config.directory + "/single-add"
        removeStore(path)
        defer { removeStore(path) }
        let store = try LMDBTaskStore(directory: path, options: options(config.durable, noReadAhead: config.noReadAhead))
        var random = SystemRandomNumberGenerator()
        let now = BenchClock.wallMicros()
        let specs = specs(config.singleAdds, base: now, spread: 3_600_000_000, order: .random, random: &random)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(specs.count)
        let start = BenchClock.nanos()
        let cpuStart = BenchClock.threadCPUNanos()
        for s in specs {
            let t = BenchClock.nanos()
            _ = try store.add([s], onConflict: .replace, now: now)
            latencies.append(BenchClock.nanos() - t)
        }
        let elapsed = BenchClock.nanos() - start
        let cpu = BenchClock.threadCPUNanos() - cpuStart
        latencies.sort()
        let p50 = latencies[latencies.count / 2]
        let p99 = latencies[latencies.count * 99 / 100]
        return BenchResult(
            name: "single-task adds (\(config.durable ? "durable" : "no-sync") commit each)", tasks: specs.count,
            nanos: elapsed, cpuNanos: cpu, notes: ["p50 \(format(Double(p50) / 1000, 0)) µs", "p99 \(format(Double(p99) / 1000, 0)) µs"])
    }

    /// Claim + ack of due tasks in batches: one transaction claims a batch, one group commit acks it (each
    /// ack an isolated nested request, as the daemon does).
    public static func claimAck(_ config: Config, order: TimeOrder, isolatedAcks: Bool = true) throws -> BenchResult {
        let path = config.directory + "/claim-ack"
        defer { removeStore(path) }
        let (store, now) = try storeOfDueTasks(config, path: path, order: order)
        var done = 0
        var claims = 0
        let start = BenchClock.nanos()
        let cpuStart = BenchClock.threadCPUNanos()
        var claimNanos: UInt64 = 0
        while true {
            let claimStart = BenchClock.nanos()
            let claimed = try store.claim(
                callbacks: callbacks, max: config.claimBatch, holder: 1, leaseDeadline: now + 60_000_000, now: now)
            claimNanos += BenchClock.nanos() - claimStart
            if claimed.isEmpty { break }
            claims += 1
            let failures = try store.write(isolatingRequests: isolatedAcks) { batch in
                var failures = 0
                for r in claimed {
                    do {
                        _ = try batch.ack(id: r.id, attempt: r.attempt, holder: 1, now: now)
                    } catch {
                        failures += 1
                    }
                }
                return failures
            }
            precondition(failures == 0, "ack failed")
            done += claimed.count
        }
        let elapsed = BenchClock.nanos() - start
        let cpu = BenchClock.threadCPUNanos() - cpuStart
        precondition(done == config.claimAckTasks, "claimed \(done) of \(config.claimAckTasks)")
        let stats = try store.stats(now: now)
        return BenchResult(
            name: "claim + ack, batches of \(config.claimBatch) (\(order.rawValue) runAt, \(isolatedAcks ? "isolated" : "plain") acks, \(config.durable ? "durable" : "no-sync"))",
            tasks: done, nanos: elapsed, cpuNanos: cpu,
            notes: ["\(claims * 2) commits", "claims \(format(Double(claimNanos) / 1e6, 0)) ms", "file \(stats.fileBytes >> 20) MiB", "used \(stats.usedBytes >> 20) MiB"])
    }

    /// Claim + ack as the daemon's group commit does it: each transaction acks the previous batch's tasks
    /// (each ack an isolated request) and claims the next batch, so one commit serves both.
    /// - Parameter history: Whether the transaction also records the acks in the run history, as the daemon's
    ///   store job does (with the default limits).
    public static func pipelinedClaimAck(_ config: Config, order: TimeOrder, history: Bool = false) throws
        -> BenchResult
    {
        let path = config.directory + "/claim-ack-pipelined"
        defer { removeStore(path) }
        let (store, now) = try storeOfDueTasks(config, path: path, order: order, history: history ? .standard : .none)
        var done = 0
        var commits = 0
        var pending: [TaskRecord] = []
        let start = BenchClock.nanos()
        let cpuStart = BenchClock.threadCPUNanos()
        repeat {
            let toAck = pending
            let (claimed, failures) = try store.write { (batch: inout LMDBWriteBatch) throws(StoreError) -> ([TaskRecord], Int) in
                var failures = 0
                for r in toAck {
                    do {
                        _ = try batch.ack(id: r.id, attempt: r.attempt, holder: 1, now: now)
                    } catch {
                        failures += 1
                    }
                }
                if history { try batch.recordRuns(batch.endedRuns.map(\.entry), now: now) }
                let claimed = (try? batch.claim(
                    callbacks: callbacks, max: config.claimBatch, holder: 1, leaseDeadline: now + 60_000_000, now: now)) ?? []
                return (claimed, failures)
            }
            precondition(failures == 0, "ack failed")
            commits += 1
            done += toAck.count
            pending = claimed
        } while !pending.isEmpty
        let elapsed = BenchClock.nanos() - start
        let cpu = BenchClock.threadCPUNanos() - cpuStart
        precondition(done == config.claimAckTasks, "acked \(done) of \(config.claimAckTasks)")
        return BenchResult(
            name: "claim + ack pipelined, batches of \(config.claimBatch) (\(order.rawValue) runAt, \(config.durable ? "durable" : "no-sync")\(history ? ", run history recorded" : ""))",
            tasks: done, nanos: elapsed, cpuNanos: cpu, notes: ["\(commits) commits"])
    }

    /// Builds (or reuses) a large store of `largeStoreTasks` tasks at `path`, in no-sync batches of 100k.
    public static func buildLargeStore(_ config: Config, path: String, log: (String) -> Void) throws -> BenchResult {
        removeStore(path)
        let store = try LMDBTaskStore(directory: path, options: options(false))
        var random = SystemRandomNumberGenerator()
        let now = BenchClock.wallMicros()
        let start = BenchClock.nanos()
        var added = 0
        while added < config.largeStoreTasks {
            let n = min(100_000, config.largeStoreTasks - added)
            _ = try store.add(specs(n, base: now, spread: 30 * 86_400_000_000, order: .random, random: &random), now: now)
            added += n
            if added % 1_000_000 == 0 { log("  built \(added) tasks") }
        }
        try store.sync()
        let elapsed = BenchClock.nanos() - start
        let stats = try store.stats(now: now)
        store.close()
        return BenchResult(
            name: "large store build (no-sync batches of 100k, spec generation included)", tasks: added, nanos: elapsed,
            notes: ["file \(stats.fileBytes >> 20) MiB"])
    }

    /// Opens an existing store and asks for the next wake-up; meant to run in a fresh process.
    public static func openAndNextWakeup(path: String, noReadAhead: Bool) throws -> BenchResult {
        let rssBefore = BenchClock.procStatusKiB("RssAnon") ?? -1
        let start = BenchClock.nanos()
        let store = try LMDBTaskStore(directory: path, options: options(true, noReadAhead: noReadAhead))
        let opened = BenchClock.nanos()
        let next = try store.earliestRunAt()
        let found = BenchClock.nanos()
        // A few random-ish lookups through the callback index, cold.
        var perCallback: [UInt64] = []
        for c in callbacks.prefix(3) {
            let t = BenchClock.nanos()
            _ = try store.earliestRunAt(callback: c)
            perCallback.append(BenchClock.nanos() - t)
        }
        let rssAfter = BenchClock.procStatusKiB("RssAnon") ?? -1
        let vmRSS = BenchClock.procStatusKiB("VmRSS") ?? -1
        store.close()
        return BenchResult(
            name: "open + next wake-up (\(noReadAhead ? "MDB_NORDAHEAD" : "read-ahead"))", tasks: 0, nanos: found - start,
            notes: [
                "open \(format(Double(opened - start) / 1e6, 3)) ms",
                "earliestRunAt \(format(Double(found - opened) / 1e6, 3)) ms",
                "next per-callback lookups \(perCallback.map { format(Double($0) / 1e6, 3) }.joined(separator: "/")) ms",
                "found \(next != nil)",
                "RssAnon \(rssBefore) -> \(rssAfter) KiB", "VmRSS \(vmRSS) KiB",
            ])
    }
}
