#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// The `lag` scenario against the daemon: N one-off tasks at random instants over S seconds, added in one batch
/// before they are due; a worker in another process records receive time − `run_at` for each.
public enum LagBenchmark {
    /// Which worker receives the tasks.
    public enum WorkerKind: Sendable, Hashable {
        /// Raw protocol, SUBSCRIBE: time the DELIVERY frame arrived.
        case rawEventDriven
        /// Raw protocol, CLAIM every interval (µs): time the TASKS reply arrived.
        case rawPolling(intervalMicros: Int64)
        /// `import TaskShed`'s `EventDrivenWorker`: frame arrival is not visible, the callback start is.
        case clientEventDriven
        /// `import TaskShed`'s `PollingWorker` with this interval (µs).
        case clientPolling(intervalMicros: Int64)

        /// The `--mode` value of `_lag-worker`.
        public var modeArgument: String {
            switch self {
            case .rawEventDriven: return "raw"
            case .rawPolling(let interval): return "raw-polling:\(interval)"
            case .clientEventDriven: return "client"
            case .clientPolling(let interval): return "client-polling:\(interval)"
            }
        }

        /// Parses a `--mode` value.
        /// - Parameter text: `raw`, `client`, `raw-polling:<µs>` or `client-polling:<µs>`.
        /// - Returns: The kind, or `nil` when the text is none of these.
        public init?(modeArgument text: String) {
            let parts = text.split(separator: ":")
            switch (parts.first.map(String.init), parts.count) {
            case ("raw", 1): self = .rawEventDriven
            case ("client", 1): self = .clientEventDriven
            case ("raw-polling", 2):
                guard let value = Int64(parts[1]), value > 0 else { return nil }
                self = .rawPolling(intervalMicros: value)
            case ("client-polling", 2):
                guard let value = Int64(parts[1]), value > 0 else { return nil }
                self = .clientPolling(intervalMicros: value)
            default: return nil
            }
        }

        /// Row name in the lag table.
        public var label: String {
            switch self {
            case .rawEventDriven: return "taskshedd, raw-protocol subscriber (frame arrival)"
            case .rawPolling(let interval): return "taskshedd, raw CLAIM every \(formatDecimal(Double(interval) / 1000, digits: 0)) ms"
            case .clientEventDriven: return "taskshedd, EventDrivenWorker (callback start)"
            case .clientPolling(let interval):
                return "taskshedd, PollingWorker every \(formatDecimal(Double(interval) / 1000, digits: 0)) ms (callback start)"
            }
        }
    }

    /// The callback name of the lag tasks.
    public static let callback = "bench.lag"

    /// Runs one lag measurement against a running daemon.
    /// - Parameters:
    ///   - daemon: A daemon that has delivered nothing yet (its `STATS.lag` is reported as the daemon's view).
    ///   - count: Number of tasks.
    ///   - seconds: Window the run times are spread over.
    ///   - seed: Seed of the run times.
    ///   - worker: The worker kind.
    ///   - leadSeconds: Time between now and the window's start (the add must finish before the first is due).
    ///   - scheduler: The daemon the tasks are added through, when not `daemon` (another daemon on a shared
    ///     datastore).
    /// - Returns: The lag distribution; for client workers with a component "frame → callback" when measurable.
    /// - Throws: `BenchError` when the worker or the add fails.
    public static func run(daemon: BenchDaemon, count: Int, seconds: Double, seed: UInt64 = 11,
                           worker: WorkerKind, leadSeconds: Double = 1.0, scheduler: BenchDaemon? = nil) throws
        -> LagRun
    {
        let report = daemon.runDirectory + "/lag-\(worker.modeArgument.replacingColons).txt"
        let deadline = BenchTime.realtimeNanos() + Int64((leadSeconds + seconds + 15) * 1e9)
        let child = try HelperProcesses.spawnReady(
            ["_lag-worker", "--socket", daemon.socketPath, "--mode", worker.modeArgument, "--count", "\(count)",
             "--deadline-nanos", "\(deadline)", "--output", report],
            logPath: daemon.runDirectory + "/lag-worker.log")
        let start = BenchTime.realtimeNanos() / 1000 + Int64(leadSeconds * 1e6)
        let instants = RandomInstants.micros(count: count, startMicros: start, spanMicros: Int64(seconds * 1e6),
                                             seed: seed)
        let specs = instants.enumerated().map { index, runAt in
            TaskSpec(id: "lag-\(index)", callback: callback, runAt: runAt)
        }
        let connection = try (scheduler ?? daemon).connect(name: "taskshed-bench lag scheduler")
        for chunk in stride(from: 0, to: specs.count, by: 100_000) {
            try connection.expectSuccess(.addTasks(AddTasks(
                onConflict: .replace, tasks: Array(specs[chunk..<min(chunk + 100_000, specs.count)]))))
        }
        if BenchTime.realtimeNanos() / 1000 >= start {
            throw BenchError("adding \(count) tasks took longer than the \(leadSeconds) s lead; raise the lead")
        }
        let status = child.wait()
        guard status == 0 else {
            throw BenchError("lag worker exited with \(status); log:\n"
                + (ProcFacts.readSmallFile(daemon.runDirectory + "/lag-worker.log") ?? ""))
        }
        let records = try HelperProcesses.readRecords(report)
        var lags: [(index: Int, micros: Double)] = []
        var callbackDelays: [Double] = []
        for record in records where record.count == 4 {
            lags.append((Int(record[0]), Double(record[3] - record[1] * 1000) / 1000))
            if record[3] != record[2] { callbackDelays.append(Double(record[3] - record[2]) / 1000) }
        }
        var components: [NamedDistribution] = []
        if !callbackDelays.isEmpty {
            components.append(NamedDistribution(name: "frame read or due-time wake → callback start",
                                                distribution: LagDistribution(micros: callbackDelays)))
        }
        var run = LagRun.from(name: worker.label, expected: count, records: lags, components: components)
        if case .stats(let stats) = try daemon.connect(name: "taskshed-bench lag stats").request(.getStats) {
            run.daemonReported = ["count": Double(stats.lag.count), "p50": Double(stats.lag.p50),
                                  "p90": Double(stats.lag.p90), "p99": Double(stats.lag.p99),
                                  "max": Double(stats.lag.max)]
        }
        return run
    }
}

extension String {
    var replacingColons: String { String(map { $0 == ":" ? "-" : $0 }) }
}
