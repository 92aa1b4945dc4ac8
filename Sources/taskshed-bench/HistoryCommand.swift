import ArgumentParser
import TaskShedBenchKit

/// `taskshed-bench history`: what recording the run history costs. The lag and drain scenarios with the history
/// off (`--history-per-task 0`) and on (the defaults), in alternating rounds of one run, so that the machine's
/// drift hits both alike; the medians over the rounds and their ratios (issue 20's bound: within 10 %).
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Lag and drain with the run history off and on, in alternating rounds: medians and ratios.")

    @Option(help: "Rounds; each runs both scenarios off then on (odd rounds) or on then off (even rounds).")
    var rounds: Int = 3

    @Option(help: "lag: tasks per run.")
    var lagCount: Int = 2_000

    @Option(help: "lag: seconds the deadlines are spread over.")
    var lagSeconds: Double = 10

    @Option(help: "drain: due tasks per run.")
    var drainTasks: Int = 100_000

    @Option(help: "drain: worker processes.")
    var drainWorkers: Int = 4

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard rounds > 0, lagCount > 0, lagSeconds > 0, drainTasks > 0, drainWorkers > 0 else {
            throw ValidationError("counts and durations must be positive")
        }
    }

    /// One configuration's figures over the rounds.
    struct Series {
        var lagP50: [Double] = []
        var lagP99: [Double] = []
        var drainRate: [Double] = []
        var drainDaemonCPU: [Double] = []
    }

    func run() throws {
        InterruptCleanup.install()
        var off = Series()
        var on = Series()
        for round in 0..<rounds {
            let order = round % 2 == 0 ? [false, true] : [true, false]
            for recording in order {
                let arguments = daemon.arguments + (recording ? [] : ["--history-per-task", "0"])
                let lag = try measureLag(arguments: arguments, seed: UInt64(round) &+ 11)
                let drain = try measureDrain(arguments: arguments)
                if recording {
                    on.lagP50.append(lag.p50)
                    on.lagP99.append(lag.p99)
                    on.drainRate.append(drain.figure.tasksPerSecond)
                    on.drainDaemonCPU.append(drain.daemonCPUMicrosPerTask)
                } else {
                    off.lagP50.append(lag.p50)
                    off.lagP99.append(lag.p99)
                    off.drainRate.append(drain.figure.tasksPerSecond)
                    off.drainDaemonCPU.append(drain.daemonCPUMicrosPerTask)
                }
            }
        }
        report.emit(table(off: off, on: on))
    }

    private func measureLag(arguments: [String], seed: UInt64) throws -> (p50: Double, p99: Double) {
        let daemon = try BenchDaemon(arguments: arguments)
        defer { daemon.close() }
        let run = try LagBenchmark.run(daemon: daemon, count: lagCount, seconds: lagSeconds, seed: seed,
                                       worker: .rawEventDriven)
        guard run.missing == 0, let p50 = run.lag.percentile(50), let p99 = run.lag.percentile(99) else {
            throw ValidationError("the lag run lost \(run.missing) of \(lagCount) tasks")
        }
        return (p50, p99)
    }

    private func measureDrain(arguments: [String]) throws -> DrainBenchmark.Result {
        let daemon = try BenchDaemon(arguments: arguments)
        defer { daemon.close() }
        return try DrainBenchmark.run(daemon: daemon, count: drainTasks, workers: drainWorkers, concurrency: 1_000)
    }

    private func table(off: Series, on: Series) -> BenchTable {
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return .nan }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2]
                : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let figures: [(String, [Double], [Double], Int)] = [
            ("lag p50 (µs)", off.lagP50, on.lagP50, 1),
            ("lag p99 (µs)", off.lagP99, on.lagP99, 1),
            ("drain (tasks/s)", off.drainRate, on.drainRate, 0),
            ("drain: daemon CPU µs/task", off.drainDaemonCPU, on.drainDaemonCPU, 2),
        ]
        var rows: [[String]] = []
        var json: [(String, BenchJSON)] = [("rounds", .integer(Int64(rounds))),
                                           ("lag_count", .integer(Int64(lagCount))),
                                           ("drain_tasks", .integer(Int64(drainTasks))),
                                           ("machine", MachineFacts.json)]
        for (name, a, b, digits) in figures {
            let (m0, m1) = (median(a), median(b))
            rows.append([name, formatDecimal(m0, digits: digits), formatDecimal(m1, digits: digits),
                         formatDecimal(m1 / m0, digits: 3),
                         a.map { formatDecimal($0, digits: digits) }.joined(separator: " "),
                         b.map { formatDecimal($0, digits: digits) }.joined(separator: " ")])
            json.append((name, .object([("off", .array(a.map { .number($0) })), ("on", .array(b.map { .number($0) })),
                                        ("median_off", .number(m0)), ("median_on", .number(m1)),
                                        ("ratio", .number(m1 / m0))])))
        }
        return BenchTable(
            title: "history",
            columns: ["figure", "off (median)", "on (median)", "on/off", "off runs", "on runs"],
            rows: rows,
            notes: ["off: --history-per-task 0; on: the defaults (20 per task, 100,000, 7 d); \(rounds) alternating "
                + "rounds of lag (\(lagCount) tasks over \(formatDecimal(lagSeconds, digits: 1)) s, raw event-driven "
                + "worker) and drain (\(drainTasks) due tasks, \(drainWorkers) workers); target: on/off within 10 %",
                    "machine: \(MachineFacts.summary)"],
            json: .object(json))
    }
}
