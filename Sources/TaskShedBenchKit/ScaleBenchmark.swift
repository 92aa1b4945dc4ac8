#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// The `scale` scenario: a store holding P pending tasks — its size on disk, the daemon's anonymous memory,
/// restart-to-ready time, and the add and drain rates at that size.
public enum ScaleBenchmark {
    /// Settings.
    public struct Config: Sendable {
        /// Pending tasks to fill the store with.
        public var pending: Int
        /// Tasks in the batched add measured at size.
        public var batchAdd: Int = 100_000
        /// Sequential single adds measured at size.
        public var singleAdds: Int = 1_000
        /// Due tasks drained at size.
        public var drainTasks: Int = 100_000
        /// Drain workers.
        public var drainWorkers: Int = 4
        /// Drain subscription concurrency.
        public var drainConcurrency: Int = 1_000
        /// Restarts timed (the median is reported).
        public var restarts: Int = 3
        /// Extra daemon arguments.
        public var daemonArguments: [String] = []

        /// Creates settings.
        /// - Parameter pending: Pending tasks.
        public init(pending: Int) { self.pending = pending }
    }

    /// Runs the scenario on a fresh daemon.
    /// - Parameters:
    ///   - config: Settings.
    ///   - progress: Called with a line now and then during the (long) fill.
    /// - Returns: The table.
    /// - Throws: `BenchError` when any step fails.
    public static func run(_ config: Config, progress: (String) -> Void = { _ in }) throws -> BenchTable {
        let daemon = try BenchDaemon(arguments: config.daemonArguments)
        defer { daemon.close() }
        let connection = try daemon.connect(name: "taskshed-bench scale")
        let batch = Int(connection.serverLimits?.maxBatch ?? 100_000)
        var random = SplitMix64(seed: 3)
        let fillStart = BenchTime.monotonicNanos()
        var lastReport = fillStart
        for chunk in stride(from: 0, to: config.pending, by: batch) {
            let specs = (chunk..<min(chunk + batch, config.pending)).map { _ in
                AddBenchmark.pendingSpec(callback: "bench.scale", random: &random)
            }
            try connection.expectSuccess(.addTasks(AddTasks(tasks: specs)))
            if BenchTime.monotonicNanos() - lastReport > 5_000_000_000 {
                lastReport = BenchTime.monotonicNanos()
                progress("scale: \(formatGrouped(Double(chunk + specs.count))) of "
                    + "\(formatGrouped(Double(config.pending))) pending tasks added")
            }
        }
        let fill = RateFigure(name: "fill \(formatGrouped(Double(config.pending))) pending (batches of \(batch))",
                              tasks: config.pending, nanos: BenchTime.monotonicNanos() - fillStart)
        let rssAfterFill = ProcFacts.statusKiB("RssAnon", pid: daemon.pid) ?? -1
        let hwmAfterFill = ProcFacts.statusKiB("VmHWM", pid: daemon.pid) ?? -1

        var restartNanos: [Int64] = []
        var rssAfterRestart = -1
        for _ in 0..<max(config.restarts, 1) {
            daemon.stop()
            restartNanos.append(try daemon.start(waitForNextWakeup: true))
            rssAfterRestart = ProcFacts.statusKiB("RssAnon", pid: daemon.pid) ?? -1
        }
        let disk = daemon.storeBytes()
        let restartSorted = restartNanos.sorted()
        let restartMedian = restartSorted[restartSorted.count / 2]

        let batchFigure = try AddBenchmark.batch(
            daemon: daemon, count: config.batchAdd,
            name: "batch add of \(formatGrouped(Double(config.batchAdd))) at size", seed: 5)
        var single = try AddBenchmark.sequential(daemon: daemon, count: config.singleAdds).figure
        single.name = "single adds at size, 1 client"
        let drain = try DrainBenchmark.run(daemon: daemon, count: config.drainTasks, workers: config.drainWorkers,
                                           concurrency: config.drainConcurrency)
        var drainFigure = drain.figure
        drainFigure.name += " at size"
        let rssAfterAll = ProcFacts.statusKiB("RssAnon", pid: daemon.pid) ?? -1

        func mib(_ bytes: Int64) -> String { formatDecimal(Double(bytes) / 1_048_576, digits: 1) + " MiB" }
        func kibText(_ kib: Int) -> String { kib < 0 ? "-" : formatDecimal(Double(kib) / 1024, digits: 1) + " MiB" }
        var table = RateFigure.table(
            title: "scale", figures: [fill, batchFigure, single, drainFigure],
            notes: [
                "pending tasks: \(formatGrouped(Double(config.pending)))",
                "store on disk: \(mib(disk.apparent)) apparent, \(mib(disk.allocated)) allocated",
                "daemon RssAnon: \(kibText(rssAfterFill)) after the fill (VmHWM \(kibText(hwmAfterFill))), "
                    + "\(kibText(rssAfterRestart)) after restart, \(kibText(rssAfterAll)) after the add and drain",
                "restart-to-ready (spawn until PONG has next_wakeup): "
                    + restartSorted.map { formatDecimal(Double($0) / 1e6, digits: 1) + " ms" }.joined(separator: ", ")
                    + " (median \(formatDecimal(Double(restartMedian) / 1e6, digits: 1)) ms)",
                "drain CPU per task at size: daemon \(formatDecimal(drain.daemonCPUMicrosPerTask, digits: 2)) µs, "
                    + "workers \(formatDecimal(drain.workerCPUMicrosPerTask, digits: 2)) µs",
                "targets at 10M: restart-to-ready <= 1 s, RssAnon <= 64 MiB",
                "machine: \(MachineFacts.summary)",
            ],
            extra: [
                ("pending", .integer(Int64(config.pending))),
                ("store_bytes", .integer(disk.apparent)), ("store_allocated_bytes", .integer(disk.allocated)),
                ("rss_anon_kib_after_fill", .integer(Int64(rssAfterFill))),
                ("vm_hwm_kib_after_fill", .integer(Int64(hwmAfterFill))),
                ("rss_anon_kib_after_restart", .integer(Int64(rssAfterRestart))),
                ("rss_anon_kib_after_add_drain", .integer(Int64(rssAfterAll))),
                ("restart_to_ready_ms", .array(restartNanos.map { .number(Double($0) / 1e6) })),
                ("restart_to_ready_ms_median", .number(Double(restartMedian) / 1e6)),
                ("drain_daemon_cpu_us_per_task", .number(drain.daemonCPUMicrosPerTask)),
                ("drain_worker_cpu_us_per_task", .number(drain.workerCPUMicrosPerTask)),
                ("machine", MachineFacts.json),
            ])
        table.rows.append(["restart-to-ready (median)", "", formatDecimal(Double(restartMedian) / 1e9, digits: 3), "", "",
                           "spawn → PONG with next_wakeup"])
        table.rows.append(["store on disk", "", "", "", "", mib(disk.apparent)])
        table.rows.append(["daemon RssAnon after restart", "", "", "", "", kibText(rssAfterRestart)])
        return table
    }
}
