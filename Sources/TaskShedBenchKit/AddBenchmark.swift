#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// The `add` scenario: durable single-task adds (one client, then C clients in separate processes, each its own
/// connection) and one batched add.
///
/// Every add is an `ADD_TASKS` whose `ADDED` reply the daemon sends only after the commit (durable unless the
/// daemon runs with `--no-sync`). The tasks are due a day from now, so nothing is dispatched meanwhile.
public enum AddBenchmark {
    /// The callback name of the added tasks.
    public static let callback = "bench.add"
    static let kwargs = Array(#"{"user_id": 12345, "kind": "reminder"}"#.utf8)

    /// A pending task for the add scenarios: server-generated id, due in a day plus a random offset.
    /// - Parameter random: The generator.
    /// - Returns: The specification.
    public static func pendingSpec(callback: String = callback, random: inout SplitMix64) -> TaskSpec {
        let day: Int64 = 86_400_000_000
        return TaskSpec(callback: callback, runAt: BenchTime.realtimeNanos() / 1000 + day
                            + Int64.random(in: 0..<day, using: &random), kwargs: kwargs)
    }

    /// Single-task adds one after another on one connection, each waiting for its reply.
    /// - Parameters:
    ///   - daemon: The daemon.
    ///   - count: Adds.
    /// - Returns: The figure, with the p50 and p99 of one add's round trip in its detail, and those round trips.
    /// - Throws: `BenchError` on any error reply.
    public static func sequential(daemon: BenchDaemon, count: Int) throws
        -> (figure: RateFigure, roundTrips: LagDistribution)
    {
        let connection = try daemon.connect(name: "taskshed-bench add")
        var random = SplitMix64(seed: 1)
        let specs = (0..<count).map { _ in pendingSpec(random: &random) }
        var micros: [Double] = []
        micros.reserveCapacity(count)
        let start = BenchTime.monotonicNanos()
        for spec in specs {
            let sent = BenchTime.monotonicNanos()
            try connection.expectSuccess(.addTasks(AddTasks(tasks: [spec])))
            micros.append(Double(BenchTime.monotonicNanos() - sent) / 1000)
        }
        let roundTrips = LagDistribution(micros: micros)
        let figure = RateFigure(name: "single, 1 client, sequential", tasks: count,
                                nanos: BenchTime.monotonicNanos() - start,
                                detail: "one request in flight; " + percentileText(roundTrips))
        return (figure, roundTrips)
    }

    /// PING round trips one after another on one connection: the socket and loop part of every request, with no
    /// store work, for comparison with `sequential`.
    /// - Parameters:
    ///   - daemon: The daemon.
    ///   - count: Round trips.
    /// - Returns: The round trips in microseconds.
    /// - Throws: `BenchError` on an error reply.
    public static func pingRoundTrips(daemon: BenchDaemon, count: Int) throws -> LagDistribution {
        let connection = try daemon.connect(name: "taskshed-bench add ping")
        var micros: [Double] = []
        micros.reserveCapacity(count)
        for _ in 0..<count {
            let sent = BenchTime.monotonicNanos()
            try connection.expectSuccess(.ping)
            micros.append(Double(BenchTime.monotonicNanos() - sent) / 1000)
        }
        return LagDistribution(micros: micros)
    }

    /// "p50 N µs, p99 N µs" of a distribution in microseconds.
    /// - Parameter distribution: The samples.
    /// - Returns: The text.
    public static func percentileText(_ distribution: LagDistribution) -> String {
        "p50 \(formatDecimal(distribution.percentile(50) ?? 0, digits: 0)) µs, "
            + "p99 \(formatDecimal(distribution.percentile(99) ?? 0, digits: 0)) µs"
    }

    /// Single-task adds from `clients` processes at once, each with its own connection and one request in flight.
    /// - Parameters:
    ///   - daemon: The daemon.
    ///   - clients: Client processes.
    ///   - perClient: Adds per client.
    ///   - library: Clients use `import TaskShed`'s `Scheduler.addTask` instead of raw frames.
    /// - Returns: The figure (from the common start to the last reply of any client).
    /// - Throws: `BenchError` when a client fails.
    public static func concurrent(daemon: BenchDaemon, clients: Int, perClient: Int, library: Bool = false) throws
        -> RateFigure
    {
        var helpers: [HelperProcesses.Helper] = []
        var reports: [String] = []
        for index in 0..<clients {
            let report = daemon.runDirectory + "/add-client-\(index).txt"
            reports.append(report)
            helpers.append(try HelperProcesses.spawnControlled(
                ["_add-client", "--socket", daemon.socketPath, "--count", "\(perClient)", "--seed", "\(index + 100)",
                 "--output", report] + (library ? ["--library"] : []),
                logPath: daemon.runDirectory + "/add-client.log"))
        }
        for helper in helpers { helper.go() }
        for helper in helpers {
            let status = helper.process.wait()
            guard status == 0 else {
                throw BenchError("add client exited with \(status); log:\n"
                    + (ProcFacts.readSmallFile(daemon.runDirectory + "/add-client.log") ?? ""))
            }
        }
        var first = Int64.max
        var last = Int64.min
        var total = 0
        for report in reports {
            guard let record = try HelperProcesses.readRecords(report).first, record.count == 3 else {
                throw BenchError("bad add client report \(report)")
            }
            total += Int(record[0])
            first = min(first, record[1])
            last = max(last, record[2])
        }
        return RateFigure(name: "single, \(clients) clients, concurrent" + (library ? ", TaskShed Scheduler" : ""),
                          tasks: total, nanos: last - first,
                          detail: "\(clients) processes x \(perClient), one request in flight each")
    }

    /// The `_add-client` helper's work: connect, report ready, wait for go, add `count` tasks one by one.
    /// - Parameters:
    ///   - socketPath: The daemon's socket.
    ///   - count: Adds.
    ///   - seed: Seed of the run times.
    /// - Returns: The report line `count startNanos endNanos` (`CLOCK_REALTIME`).
    /// - Throws: `BenchError` on any error reply.
    public static func clientProcess(socketPath: String, count: Int, seed: UInt64) throws -> String {
        let connection = try BenchConnection(path: socketPath)
        try connection.handshake(clientName: "taskshed-bench add client")
        var random = SplitMix64(seed: seed)
        let specs = (0..<count).map { _ in pendingSpec(random: &random) }
        HelperProcesses.signalReadyAndWaitForGo()
        let start = BenchTime.realtimeNanos()
        for spec in specs { try connection.expectSuccess(.addTasks(AddTasks(tasks: [spec]))) }
        return "\(count) \(start) \(BenchTime.realtimeNanos())\n"
    }

    /// One `ADD_TASKS` carrying `count` tasks, timed from the first byte written to the `ADDED` reply.
    /// - Parameters:
    ///   - daemon: The daemon.
    ///   - count: Tasks in the request (at most the server's `max_batch`).
    ///   - name: Row name.
    ///   - seed: Seed of the run times.
    /// - Returns: The figure; the client's encode time is in the detail and not in the rate.
    /// - Throws: `BenchError` on an error reply.
    public static func batch(daemon: BenchDaemon, count: Int, name: String? = nil, seed: UInt64 = 2) throws
        -> RateFigure
    {
        let connection = try daemon.connect(name: "taskshed-bench batch add")
        var random = SplitMix64(seed: seed)
        let specs = (0..<count).map { _ in pendingSpec(random: &random) }
        let encodeStart = BenchTime.monotonicNanos()
        let id = connection.makeRequestID()
        let bytes = FrameEncoder.encode(Frame(requestID: id, message: .addTasks(AddTasks(tasks: specs))))
        let encodeNanos = BenchTime.monotonicNanos() - encodeStart
        let start = BenchTime.monotonicNanos()
        try connection.send(bytes: bytes)
        var reply: Message?
        while reply == nil {
            for frame in try connection.receive().frames where frame.requestID == id { reply = frame.message }
        }
        let nanos = BenchTime.monotonicNanos() - start
        guard case .added(let results) = reply, results.count == count else {
            throw BenchError("batch add answered with \(String(describing: reply?.type))")
        }
        return RateFigure(name: name ?? "batch of \(formatGrouped(Double(count))) in one request", tasks: count,
                          nanos: nanos,
                          detail: "\(formatDecimal(Double(bytes.count) / 1_048_576, digits: 1)) MiB request; client "
                              + "encode \(formatDecimal(Double(encodeNanos) / 1e6, digits: 1)) ms not counted")
    }
}
