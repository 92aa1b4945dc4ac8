#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// `taskshed-bench lag`: execution lag against the floor.
struct LagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lag",
        abstract: "Execution lag: N one-off tasks at random instants over S seconds, added in one batch before they "
            + "are due; a worker process records receive time - run_at. The floor is measured in the same run.")

    @Option(name: [.customShort("n"), .long], help: "Number of tasks (and floor deadlines).")
    var count: Int = 2_000

    @Option(name: [.customShort("s"), .long], help: "Seconds the run times are spread over.")
    var seconds: Double = 20

    @Option(help: ArgumentHelp("Measure polling workers claiming every INTERVAL seconds instead of event-driven "
        + "ones.", valueName: "interval"))
    var polling: Double?

    @Option(help: ArgumentHelp("Workers to measure, comma-separated: raw (raw-protocol worker), client (the "
        + "TaskShed library's worker).", valueName: "list"))
    var workers: String = "raw,client"

    @Flag(help: "Skip the floor measurement.")
    var noFloor = false

    @Option(help: "Seed of the random run times.")
    var seed: UInt64 = 7

    @OptionGroup var daemon: DaemonOptions

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if let polling, polling <= 0 { throw ValidationError("--polling must be positive") }
        for name in workerNames where name != "raw" && name != "client" {
            throw ValidationError("unknown worker '\(name)' in --workers (raw, client)")
        }
    }

    var workerNames: [String] { workers.split(separator: ",").map { String($0) } }

    func run() throws {
        InterruptCleanup.install()
        report.emit(try Self.measure(count: count, seconds: seconds, polling: polling, workers: workerNames,
                                     floor: !noFloor, seed: seed, daemonArguments: daemon.arguments))
    }

    /// Runs the floor and the chosen workers; shared with `all`.
    static func measure(count: Int, seconds: Double, polling: Double?, workers: [String], floor: Bool,
                        seed: UInt64, daemonArguments: [String]) throws -> BenchTable {
        var runs: [LagRun] = []
        var floorRun: LagRun?
        if floor {
            let run = try FloorBenchmark.run(count: count, seconds: seconds, seed: seed)
            runs.append(run)
            floorRun = run
        }
        for name in workers {
            // A fresh daemon per worker, so that its STATS lag covers exactly this run.
            let daemon = try BenchDaemon(arguments: daemonArguments)
            defer { daemon.close() }
            let kind: LagBenchmark.WorkerKind
            switch (name, polling) {
            case ("raw", nil): kind = .rawEventDriven
            case ("raw", let interval?): kind = .rawPolling(intervalMicros: Int64(interval * 1e6))
            case (_, nil): kind = .clientEventDriven
            case (_, let interval?): kind = .clientPolling(intervalMicros: Int64(interval * 1e6))
            }
            runs.append(try LagBenchmark.run(daemon: daemon, count: count, seconds: seconds, seed: seed &+ 1,
                                             worker: kind))
        }
        return LagTable.make(
            title: polling == nil ? "lag" : "lag --polling \(formatDecimal(polling ?? 0, digits: 3)) s",
            runs: runs, floor: floorRun,
            notes: ["\(count) tasks over \(formatDecimal(seconds, digits: 1)) s; lag = worker receive time - run_at "
                + "(CLOCK_REALTIME); target: p50 <= 100 us and <= 1.5x floor, p99 <= 300 us",
                   "machine: \(MachineFacts.summary)"],
            parameters: [("count", .integer(Int64(count))), ("seconds", .number(seconds)),
                         ("polling_s", polling.map { .number($0) } ?? .null), ("machine", MachineFacts.json)])
    }
}

/// `taskshed-bench _lag-worker`: the lag scenario's worker process.
struct LagWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_lag-worker", abstract: "Internal: the lag worker; signals readiness on fd 4.",
        shouldDisplay: false)

    @Option var socket: String
    @Option var mode: String
    @Option var count: Int
    @Option var deadlineNanos: Int64
    @Option var output: String

    func run() throws {
        guard let kind = LagBenchmark.WorkerKind(modeArgument: mode) else {
            throw ValidationError("unknown --mode \(mode)")
        }
        let receipts: [RawLagWorker.Receipt]
        switch kind {
        case .rawEventDriven:
            receipts = try RawLagWorker.run(socketPath: socket, callback: LagBenchmark.callback, expected: count,
                                            deadlineNanos: deadlineNanos, pollingIntervalMicros: nil,
                                            onReady: HelperProcesses.signalReady)
        case .rawPolling(let interval):
            receipts = try RawLagWorker.run(socketPath: socket, callback: LagBenchmark.callback, expected: count,
                                            deadlineNanos: deadlineNanos, pollingIntervalMicros: interval,
                                            onReady: HelperProcesses.signalReady)
        case .clientEventDriven, .clientPolling:
            receipts = try ClientLagWorker.run(kind: kind, socketPath: socket, expected: count,
                                               deadlineNanos: deadlineNanos)
        }
        try HelperProcesses.writeFile(RawLagWorker.reportText(receipts), to: output)
    }
}
