#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// The `drain` scenario: M tasks already due, K event-driven raw-protocol workers in separate processes that
/// acknowledge each delivery at once. Throughput runs from the first `DELIVERY` any worker receives to the last
/// `OK` for an `ACK` any worker receives; CPU time per task is the daemon's (`/proc/PID/stat`) and the
/// workers' own (`getrusage`) over that phase, divided by M.
public enum DrainBenchmark {
    /// The callback name of the drained tasks.
    public static let callback = "bench.drain"

    /// The outcome.
    public struct Result: Sendable {
        /// Tasks added and expected.
        public var tasks: Int
        /// Deliveries received by all workers (more than `tasks` means redeliveries).
        public var delivered: Int
        /// Acks confirmed with `OK`.
        public var acked: Int
        /// First push to last ack.
        public var figure: RateFigure
        /// Daemon CPU per task, µs.
        public var daemonCPUMicrosPerTask: Double
        /// Workers' CPU per task, µs.
        public var workerCPUMicrosPerTask: Double
        /// Time to add the due tasks (not part of the figure).
        public var fill: RateFigure
    }

    /// Adds `count` due tasks in batches of the server's maximum, then drains them with `workers` processes.
    /// - Parameters:
    ///   - daemon: The daemon (no worker of `bench.drain` connected).
    ///   - count: Tasks.
    ///   - workers: Worker processes.
    ///   - concurrency: Each subscription's concurrency limit.
    ///   - idleSeconds: The workers' end-of-drain silence (raise it when the daemon runs under a profiler).
    ///   - workerDaemons: The daemons the workers connect to, in turn (several daemons on a shared datastore);
    ///     empty: `daemon`. Their CPU is counted with `daemon`'s.
    ///   - order: Whether the run times ascend with the order the tasks are added (the default) or are
    ///     shuffled: the same distinct times in random order, so that due order and add order differ.
    /// - Returns: The result.
    /// - Throws: `BenchError` when adding or a worker fails, or not every task was acknowledged.
    public static func run(daemon: BenchDaemon, count: Int, workers: Int, concurrency: Int,
                           idleSeconds: Double = 2, order: TimeOrder = .ascending,
                           workerDaemons: [BenchDaemon] = []) throws -> Result {
        let serving = workerDaemons.isEmpty ? [daemon] : workerDaemons
        var measured = [daemon]
        for other in serving where other !== daemon { measured.append(other) }
        let connection = try daemon.connect(name: "taskshed-bench drain scheduler")
        let batch = Int(connection.serverLimits?.maxBatch ?? 100_000)
        let now = BenchTime.realtimeNanos() / 1000
        let kwargs = Array(#"{"user_id": 12345, "kind": "reminder"}"#.utf8)
        // Due between 60 s and 0 s ago, spread so that every run_at is distinct and in the past.
        var slots = Array(0..<count)
        if order == .random { slots.shuffle() }
        let fillStart = BenchTime.monotonicNanos()
        try connection.addInBatches(count) { i in
            TaskSpec(callback: callback, runAt: now - 60_000_000 + Int64(slots[i]) * 60_000_000 / Int64(max(count, 1)),
                     kwargs: kwargs)
        }
        let fill = RateFigure(name: "fill (due tasks, batches of \(batch))", tasks: count,
                              nanos: BenchTime.monotonicNanos() - fillStart)

        var helpers: [HelperProcesses.Helper] = []
        var reports: [String] = []
        for index in 0..<workers {
            let report = daemon.runDirectory + "/drain-worker-\(index).txt"
            reports.append(report)
            helpers.append(try HelperProcesses.spawnControlled(
                ["_drain-worker", "--socket", serving[index % serving.count].socketPath, "--concurrency", "\(concurrency)",
                 "--idle-seconds", "\(idleSeconds)", "--output", report],
                logPath: daemon.runDirectory + "/drain-worker.log"))
        }
        let cpuStarts = measured.map { ProcFacts.cpuNanos(pid: $0.pid) }
        guard cpuStarts.allSatisfy({ $0 != nil }) else { throw BenchError("cannot read the daemon's CPU time") }
        let daemonCPUStart = cpuStarts.reduce(0) { $0 + $1! }
        for helper in helpers { helper.go() }
        for helper in helpers {
            let status = helper.process.wait()
            guard status == 0 else {
                throw BenchError("drain worker exited with \(status); log:\n"
                    + (ProcFacts.readSmallFile(daemon.runDirectory + "/drain-worker.log") ?? ""))
            }
        }
        let cpuEnds = measured.map { ProcFacts.cpuNanos(pid: $0.pid) }
        guard cpuEnds.allSatisfy({ $0 != nil }) else { throw BenchError("cannot read the daemon's CPU time") }
        let daemonCPUEnd = cpuEnds.reduce(0) { $0 + $1! }
        var first = Int64.max
        var last = Int64.min
        var delivered = 0
        var acked = 0
        var workerCPU: Int64 = 0
        for report in reports {
            guard let record = try HelperProcesses.readRecords(report).first, record.count == 5 else {
                throw BenchError("bad drain worker report \(report)")
            }
            delivered += Int(record[0])
            acked += Int(record[1])
            if record[0] > 0 {
                first = min(first, record[2])
                last = max(last, record[3])
            }
            workerCPU += record[4]
        }
        guard acked == count else {
            throw BenchError("drain: \(acked) of \(count) tasks acknowledged (\(delivered) deliveries)")
        }
        let name = "drain \(formatGrouped(Double(count))) due, \(workers) workers"
            + (serving.count > 1 ? " on \(serving.count) daemons" : "")
            + (order == .random ? ", random run_at order" : "")
        let figure = RateFigure(name: name, tasks: count,
                                nanos: last - first,
                                detail: "concurrency \(concurrency) per worker; \(delivered) deliveries")
        return Result(tasks: count, delivered: delivered, acked: acked, figure: figure,
                      daemonCPUMicrosPerTask: Double(daemonCPUEnd - daemonCPUStart) / 1000 / Double(count),
                      workerCPUMicrosPerTask: Double(workerCPU) / 1000 / Double(count), fill: fill)
    }

    /// The `_drain-worker` helper's work: connect, report ready, wait for go, subscribe, acknowledge every
    /// delivery (all acks for one read in one write), stop after `idleSeconds` without any frame (30 s before
    /// the first delivery).
    /// - Parameters:
    ///   - socketPath: The daemon's socket.
    ///   - concurrency: The subscription's limit.
    ///   - idleSeconds: Silence after which the worker considers the drain finished.
    /// - Returns: The report line `delivered acked firstDeliveryNanos lastAckNanos cpuNanos`.
    /// - Throws: `BenchError` on a connection failure or an error reply.
    public static func workerProcess(socketPath: String, concurrency: Int, idleSeconds: Double = 2) throws -> String {
        let connection = try BenchConnection(path: socketPath)
        try connection.handshake(clientName: "taskshed-bench drain worker")
        HelperProcesses.signalReadyAndWaitForGo()
        let cpuStart = BenchTime.selfCPUNanos()
        try connection.send([Frame(requestID: connection.makeRequestID(), message: .subscribe(
            Subscribe(callbacks: [callback], concurrency: UInt32(concurrency), leaseMicros: nil)))])
        var delivered = 0
        var acked = 0
        var first: Int64 = 0
        var last: Int64 = 0
        var acks: [UInt8] = []
        acks.reserveCapacity(1 << 16)
        while true {
            // Until the first delivery the daemon may be slow to start pushing (a profiler, a busy machine);
            // after it, a silence of idleSeconds means every task has been handed out and acknowledged.
            let timeout = delivered == 0 ? max(idleSeconds, 30) : idleSeconds
            let (frames, received) = try connection.receive(timeoutMillis: Int32(timeout * 1000))
            if frames.isEmpty { break }
            for frame in frames {
                switch frame.message {
                case .delivery(let task):
                    if delivered == 0 { first = received }
                    delivered += 1
                    FrameEncoder.encode(Frame(requestID: connection.makeRequestID(),
                                              message: .ack(LeaseRef(id: task.id, attempt: task.attempt))),
                                        into: &acks)
                case .ok:
                    acked += 1
                    last = received
                case .subscribed: break
                case .error(let error): throw BenchError("daemon error: \(error.code) \(error.message)")
                default: break
                }
            }
            if !acks.isEmpty {
                try connection.send(bytes: acks)
                acks.removeAll(keepingCapacity: true)
            }
        }
        return "\(delivered) \(acked) \(first) \(last) \(BenchTime.selfCPUNanos() - cpuStart)\n"
    }

    /// The drain result as a table.
    /// - Parameters:
    ///   - result: The result.
    ///   - title: Scenario name.
    /// - Returns: The table, CPU figures in the notes and JSON.
    public static func table(_ result: Result, title: String = "drain") -> BenchTable {
        var table = RateFigure.table(
            title: title, figures: [result.figure, result.fill],
            notes: ["CPU per task: daemon \(formatDecimal(result.daemonCPUMicrosPerTask, digits: 2)) µs, workers "
                + "\(formatDecimal(result.workerCPUMicrosPerTask, digits: 2)) µs, total "
                + "\(formatDecimal(result.daemonCPUMicrosPerTask + result.workerCPUMicrosPerTask, digits: 2)) µs "
                + "(target >= 100,000 tasks/s, <= 10 µs CPU per task)",
                   "machine: \(MachineFacts.summary)"],
            extra: [("delivered", .integer(Int64(result.delivered))), ("acked", .integer(Int64(result.acked))),
                    ("daemon_cpu_us_per_task", .number(result.daemonCPUMicrosPerTask)),
                    ("worker_cpu_us_per_task", .number(result.workerCPUMicrosPerTask)), ("machine", MachineFacts.json)])
        table.rows.append(["CPU µs/task: daemon", "", "", "", formatDecimal(result.daemonCPUMicrosPerTask, digits: 2), ""])
        table.rows.append(["CPU µs/task: workers", "", "", "", formatDecimal(result.workerCPUMicrosPerTask, digits: 2), ""])
        return table
    }
}
