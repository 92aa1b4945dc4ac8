import TaskShedProtocol

/// One screen of `taskshedctl top`: pure text from the daemon's statistics and the next tasks due, cut to the
/// terminal's size, so that it can be tested without a terminal.
public enum TopScreen {
    /// What one refresh knows.
    public struct Frame: Sendable {
        /// The statistics of this refresh, or `nil` when the daemon has not answered yet.
        public var stats: Stats?
        /// The statistics of the refresh before, for the per-second rates (`nil` on the first).
        public var previous: Stats?
        /// The next tasks due (scheduled and not paused, in run-time order).
        public var next: [TaskRecord]
        /// Why this refresh got no answer (the daemon is restarting, the socket is gone), or `nil`.
        public var error: String?
        /// The socket the command talks to.
        public var socketPath: String
        /// The daemon's run counters and lateness histograms of this refresh (`GET_METRICS`), or `nil` when it
        /// serves none (before protocol version 3).
        public var runs: RunFigures?
        /// Those of the refresh before, for the rates and percentiles in between.
        public var previousRuns: RunFigures?

        /// Creates a frame.
        public init(stats: Stats?, previous: Stats?, next: [TaskRecord], error: String?, socketPath: String,
                    runs: RunFigures? = nil, previousRuns: RunFigures? = nil) {
            self.stats = stats
            self.previous = previous
            self.next = next
            self.error = error
            self.socketPath = socketPath
            self.runs = runs
            self.previousRuns = previousRuns
        }
    }

    /// How many of the next tasks due are shown.
    public static let nextTaskCount = 5

    /// The screen's lines: each at most `width` characters, at most `height` of them (the callbacks' table is cut
    /// first, with a line saying how many were left out).
    /// - Parameters:
    ///   - frame: What this refresh knows.
    ///   - width: Terminal columns (at least 20 are used).
    ///   - height: Terminal rows (at least 5 are used).
    ///   - context: The local zone and now, for times.
    ///   - interactive: Whether to end with the keys' line (`q quits`); not for `--once`.
    /// - Returns: The lines, without newlines.
    public static func render(_ frame: Frame, width: Int, height: Int, context: TimeContext,
                              interactive: Bool = true) -> [String] {
        let width = max(20, width)
        let height = max(5, height)
        var head: [String] = []
        var callbacks: [String] = []
        var tail: [String] = []
        if let stats = frame.stats {
            let uptime = TimeFormatting.coarse(seconds: UInt64(max(0, stats.serverTime - stats.startedAt) / 1_000_000))
            head.append("taskshedd \(stats.serverVersion) at \(frame.socketPath), up \(uptime), "
                + "\(stats.connections) \(stats.connections == 1 ? "connection" : "connections")")
            head.append("tasks: \(stats.pending) pending, \(stats.due) due, \(stats.paused) paused, \(stats.leased) leased, "
                + "\(stats.dead) dead; \(stats.waitingForWorker) due without a worker")
            let store = stats.storeMapBytes == 0
                ? "shared database, tasks table \(StatsFormatting.bytes(stats.storeFileBytes))"
                : "\(StatsFormatting.bytes(stats.storeUsedBytes)) used of \(StatsFormatting.bytes(stats.storeMapBytes))"
            let lag = stats.lag.count == 0
                ? "no runs yet"
                : "p50 \(TimeFormatting.measurement(micros: stats.lag.p50)), p99 \(TimeFormatting.measurement(micros: stats.lag.p99))"
            head.append("store: \(store); lag (recent runs): \(lag)")
            callbacks = callbackTable(stats, previous: frame.previous, runs: frame.runs, previousRuns: frame.previousRuns)
        } else {
            head.append("taskshedctl top: waiting for the daemon at \(frame.socketPath)")
        }
        if let error = frame.error {
            // "retrying" first: a long error is cut at the terminal's edge.
            head.append("! retrying: \(error)")
        }
        tail.append("")
        tail.append("NEXT DUE")
        if frame.next.isEmpty {
            tail.append("  none")
        } else {
            var table = TextTable(columns: [.init("RUN AT"), .init("ID"), .init("CALLBACK"), .init("SCHEDULE")])
            for task in frame.next {
                table.append([TimeFormatting.localWithHint(micros: task.runAt, context: context), task.id, task.callback,
                              TaskFormatting.schedule(of: task)])
            }
            tail += table.render().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                .filter { !$0.isEmpty }
        }
        let keys = interactive ? ["q quits"] : []
        tail += keys
        // The next tasks give way first, then the callbacks: the header and the keys' line always show.
        var room = height - head.count - tail.count - 1
        if room < callbacks.count {
            tail = keys
            room = height - head.count - tail.count - 1
        }
        var middle = [""]
        if callbacks.count <= room {
            middle += callbacks
        } else if room >= 2 {
            middle += callbacks.prefix(room - 1)
            middle.append("  … \(callbacks.count - (room - 1)) more lines")
        }
        return (head + middle + tail).prefix(height).map { cut($0, to: width) }
    }

    /// The per-callback table: counts and workers (`STATS`), and since the refresh before (`GET_METRICS`) the
    /// runs and failures per second and the dispatch lateness p50 and p99 of the runs in between; `-` where the
    /// daemon serves no metrics, it is the first refresh, or nothing ran.
    static func callbackTable(_ stats: Stats, previous: Stats?, runs: RunFigures? = nil,
                              previousRuns: RunFigures? = nil) -> [String] {
        guard !stats.callbacks.isEmpty else { return ["no callbacks yet"] }
        let seconds = previous.map { Double(stats.serverTime - $0.serverTime) / 1_000_000 } ?? 0
        var table = TextTable(columns: [
            .init("CALLBACK"), .init("SCHEDULED", alignment: .right), .init("DUE", alignment: .right),
            .init("LEASED", alignment: .right), .init("DEAD", alignment: .right), .init("RUNS/S", alignment: .right),
            .init("FAILED/S", alignment: .right), .init("LATE P50", alignment: .right),
            .init("LATE P99", alignment: .right), .init("WORKERS", alignment: .right),
        ])
        for entry in stats.callbacks {
            var rates = ["-", "-", "-", "-"]
            if let runs, let previousRuns,
               let figures = runs.rates(of: entry.callback, since: previousRuns, seconds: seconds)
            {
                rates = [formatRate(figures.runs), formatRate(figures.failures),
                         figures.p50.map { TimeFormatting.measurement(micros: Int64($0 * 1e6)) } ?? "-",
                         figures.p99.map { TimeFormatting.measurement(micros: Int64($0 * 1e6)) } ?? "-"]
            }
            table.append([entry.callback, String(entry.scheduled), String(entry.due), String(entry.leased),
                          String(entry.dead)] + rates + [String(entry.workers)])
        }
        return table.render().split(separator: "\n").map(String.init)
    }

    /// A rate with one decimal (`0.0`, `12.5`).
    static func formatRate(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// `line` cut to `width` characters, ending in `…` when cut.
    static func cut(_ line: String, to width: Int) -> String {
        guard line.count > width else { return line }
        return String(line.prefix(width - 1)) + "…"
    }
}
