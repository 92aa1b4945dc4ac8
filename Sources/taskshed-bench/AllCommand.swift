#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// `taskshed-bench all`: every scenario of issue 7 in one run, with the default sizes unless overridden.
struct AllCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Every scenario: lag (with the floor), lag --polling, add, drain, scale. Each starts its own "
            + "daemon on a temporary socket and data directory.")

    @Option(help: "lag: tasks.") var lagCount: Int = 2_000
    @Option(help: "lag: seconds.") var lagSeconds: Double = 20
    @Option(help: "lag --polling: interval in seconds (0 skips the polling run).") var polling: Double = 0.5
    @Option(help: "lag: workers (raw, client).") var workers: String = "raw,client"
    @Option(help: "add: sequential single adds.") var sequential: Int = 2_000
    @Option(help: "add: concurrent clients.") var clients: Int = 16
    @Option(help: "add: adds per concurrent client.") var perClient: Int = 1_000
    @Option(help: "add: tasks in the batched request.") var batch: Int = 100_000
    @Option(help: "drain: due tasks.") var drainTasks: Int = 100_000
    @Option(help: "drain: worker processes.") var drainWorkers: Int = 4
    @Option(help: "scale: pending tasks.") var pending: Int = 1_000_000
    @Flag(help: "scale: 10,000,000 pending tasks.") var tenMillion = false
    @Option(help: "scale: due tasks drained at size.") var scaleDrainTasks: Int = 100_000

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func run() throws {
        InterruptCleanup.install()
        let workerNames = workers.split(separator: ",").map(String.init)
        report.emit(try LagCommand.measure(count: lagCount, seconds: lagSeconds, polling: nil, workers: workerNames,
                                           floor: true, seed: 7, daemonArguments: daemon.arguments))
        if polling > 0 {
            report.emit(try LagCommand.measure(count: lagCount, seconds: lagSeconds, polling: polling,
                                               workers: workerNames, floor: false, seed: 7,
                                               daemonArguments: daemon.arguments))
        }
        report.emit(try AddCommand.measure(sequential: sequential, clients: clients, perClient: perClient,
                                           batch: batch, daemonArguments: daemon.arguments))
        do {
            let bench = try BenchDaemon(arguments: daemon.arguments)
            defer { bench.close() }
            report.emit(DrainBenchmark.table(try DrainBenchmark.run(daemon: bench, count: drainTasks,
                                                                    workers: drainWorkers, concurrency: 1_000)))
        }
        var config = ScaleBenchmark.Config(pending: tenMillion ? 10_000_000 : pending)
        config.drainTasks = scaleDrainTasks
        config.drainWorkers = drainWorkers
        config.daemonArguments = daemon.arguments
        report.emit(try ScaleBenchmark.run(config) { line in
            var bytes = Array((line + "\n").utf8)
            _ = write(2, &bytes, bytes.count)
        })
    }
}
