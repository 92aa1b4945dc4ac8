import TaskShedProtocol

/// How long a heavy read holds up the daemon's other work: `PING` round trips on one connection, alone and while
/// another connection polls `STATS` beside many due tasks (each `STATS` counts every due task).
///
/// Reads that walk the store run on the thread pool (README, "How the daemon works"); before, the loop answered
/// them itself, and a `PING` (like a due task's push) waited for the whole `STATS`.
public enum ReadStallBenchmark {
    /// The figures of one run.
    public struct Result: Sendable {
        /// `PING` round trips with nothing else going on (µs).
        public var idle: LagDistribution
        /// `PING` round trips while `STATS` requests follow each other on another connection (µs).
        public var busy: LagDistribution
        /// `STATS` round trips during `busy` (µs).
        public var stats: LagDistribution

        /// Report lines.
        public var lines: [String] {
            func row(_ name: String, _ d: LagDistribution) -> String {
                let ps = [50.0, 99, 100].map { p in formatDecimal((d.percentile(p) ?? 0), digits: 0) }
                return "\(name): \(d.count) round trips, p50 \(ps[0]) µs, p99 \(ps[1]) µs, max \(ps[2]) µs"
            }
            return [row("PING alone", idle), row("PING while STATS is polled", busy), row("STATS", stats)]
        }
    }

    /// Fills a daemon with `dueTasks` tasks due in the past (no worker takes them), then times `pings` `PING`s
    /// alone and up to `pings` more (for at most `seconds`: a `PING` that waits for each `STATS` takes tens of
    /// milliseconds) while another connection sends a new `STATS` whenever the last is answered.
    /// - Throws: `BenchError` when a request fails.
    public static func run(daemon: BenchDaemon, dueTasks: Int, pings: Int, seconds: Double) throws -> Result {
        let filler = try daemon.connect(name: "taskshed-bench read-stall filler")
        let now = BenchTime.realtimeNanos() / 1000
        try filler.addInBatches(dueTasks) { index in
            TaskSpec(callback: "callback-\(index % 10)", runAt: now - 3_600_000_000 + Int64(index), kwargs: Array("{}".utf8))
        }
        let pinger = try daemon.connect(name: "taskshed-bench read-stall pinger")
        func ping() throws -> Double {
            let start = BenchTime.monotonicNanos()
            try pinger.expectSuccess(.ping)
            return Double(BenchTime.monotonicNanos() - start) / 1000
        }
        let idle = try (0..<pings).map { _ in try ping() }

        let poller = try daemon.connect(name: "taskshed-bench read-stall poller")
        var statsMicros: [Double] = []
        var statsStart = BenchTime.monotonicNanos()
        func sendStats() throws {
            statsStart = BenchTime.monotonicNanos()
            try poller.send([Frame(requestID: poller.makeRequestID(), message: .getStats)])
        }
        func statsAnswered(wait: Bool) throws -> Bool {
            let frames = try poller.receive(timeoutMillis: wait ? -1 : 0).frames
            guard let frame = frames.first else { return false }
            guard case .stats = frame.message else { throw BenchError("STATS answered with \(frame.message.type)") }
            statsMicros.append(Double(BenchTime.monotonicNanos() - statsStart) / 1000)
            return true
        }
        try sendStats()
        var busy: [Double] = []
        let end = BenchTime.monotonicNanos() + Int64(seconds * 1e9)
        while busy.count < pings && BenchTime.monotonicNanos() < end {
            busy.append(try ping())
            if try statsAnswered(wait: false) { try sendStats() }
        }
        _ = try statsAnswered(wait: true)
        return Result(idle: LagDistribution(micros: idle), busy: LagDistribution(micros: busy),
                      stats: LagDistribution(micros: statsMicros))
    }
}
