#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// Daemon options shared by the scenarios that start their own `taskshedd`.
struct DaemonOptions: ParsableArguments {
    @Flag(help: "Run the daemon with --no-sync (commits not fsynced): shows what durability costs.")
    var noSync = false

    @Option(name: .customLong("daemon-arg"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("One more taskshedd argument (repeatable, e.g. --daemon-arg --dispatch-lead "
                + "--daemon-arg 0).", valueName: "argument"))
    var extra: [String] = []

    var arguments: [String] { (noSync ? ["--no-sync"] : []) + extra }
}

/// `taskshed-bench add`.
struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Durable adds: single-task requests from one client and from C concurrent client processes, "
            + "and one batched request.")

    @Option(help: "Single-task adds of the one sequential client.")
    var sequential: Int = 2_000

    @Option(name: [.customShort("c"), .long], help: "Concurrent client processes, each with its own connection.")
    var clients: Int = 16

    @Option(help: "Single-task adds per concurrent client.")
    var perClient: Int = 1_000

    @Option(help: "Tasks in the one batched request.")
    var batch: Int = 100_000

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard sequential > 0, clients > 0, perClient > 0, batch > 0 else {
            throw ValidationError("counts must be positive")
        }
    }

    func run() throws {
        InterruptCleanup.install()
        report.emit(try Self.measure(sequential: sequential, clients: clients, perClient: perClient, batch: batch,
                                     daemonArguments: daemon.arguments))
    }

    static func measure(sequential: Int, clients: Int, perClient: Int, batch: Int, daemonArguments: [String]) throws
        -> BenchTable
    {
        let daemon = try BenchDaemon(arguments: daemonArguments)
        defer { daemon.close() }
        let fsyncBefore = try MachineFacts.fdatasyncMicros(directory: daemon.runDirectory)
        let ping = try AddBenchmark.pingRoundTrips(daemon: daemon, count: sequential)
        let single = try AddBenchmark.sequential(daemon: daemon, count: sequential)
        let figures = [
            single.figure,
            try AddBenchmark.concurrent(daemon: daemon, clients: clients, perClient: perClient),
            try AddBenchmark.concurrent(daemon: daemon, clients: clients, perClient: perClient, library: true),
            try AddBenchmark.batch(daemon: daemon, count: batch),
        ]
        let fsyncAfter = try MachineFacts.fdatasyncMicros(directory: daemon.runDirectory)
        let durability = daemonArguments.contains("--no-sync") ? "not durable (--no-sync)" : "durable (fsync)"
        let fsyncText = AddBenchmark.percentileText
        return RateFigure.table(
            title: "add", figures: figures,
            notes: ["daemon commits \(durability); ADDED is sent after the commit",
                    "fdatasync floor (4 KiB overwrite, same disk): before \(fsyncText(fsyncBefore)), after "
                        + fsyncText(fsyncAfter),
                    "PING round trip on one connection (socket and loop, no store): \(fsyncText(ping))",
                    "machine: \(MachineFacts.summary)",
                    "targets: single from 16 clients >= 50,000 tasks/s; batch of 100k >= 500,000 tasks/s"],
            extra: [("durable", .bool(!daemonArguments.contains("--no-sync"))),
                    ("fdatasync_us_before", LagTable.distributionJSON(fsyncBefore)),
                    ("fdatasync_us_after", LagTable.distributionJSON(fsyncAfter)),
                    ("single_add_us", LagTable.distributionJSON(single.roundTrips)),
                    ("ping_us", LagTable.distributionJSON(ping)),
                    ("machine", MachineFacts.json)])
    }
}

/// `taskshed-bench _add-client`: one concurrent add client.
struct AddClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_add-client", abstract: "Internal: one add client; ready/go on fd 4.", shouldDisplay: false)

    @Option var socket: String
    @Option var count: Int
    @Option var seed: UInt64
    @Option var output: String
    @Flag var library = false

    func run() throws {
        let line = library
            ? try ClientAddProcess.run(socketPath: socket, count: count, seed: seed)
            : try AddBenchmark.clientProcess(socketPath: socket, count: count, seed: seed)
        try HelperProcesses.writeFile(line, to: output)
    }
}

/// `taskshed-bench drain`.
struct DrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "M tasks already due, K event-driven worker processes: tasks/s from first push to last ack, "
            + "CPU per task of the daemon and the workers.")

    @Option(name: [.customShort("m"), .long], help: "Due tasks.")
    var tasks: Int = 100_000

    @Option(name: [.customShort("k"), .long], help: "Worker processes.")
    var workers: Int = 4

    @Option(help: "Concurrency limit of each worker's subscription.")
    var concurrency: Int = 1_000

    @Option(help: "Seconds of silence after which a worker considers the drain done (raise under a profiler).")
    var idleSeconds: Double = 2

    @Option(help: "Run times in the order the tasks are added (ascending) or shuffled (random).")
    var order: TimeOrder = .ascending

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard tasks > 0, workers > 0, concurrency > 0 else { throw ValidationError("counts must be positive") }
    }

    func run() throws {
        InterruptCleanup.install()
        let daemon = try BenchDaemon(arguments: self.daemon.arguments)
        defer { daemon.close() }
        report.emit(DrainBenchmark.table(try DrainBenchmark.run(daemon: daemon, count: tasks, workers: workers,
                                                                concurrency: concurrency, idleSeconds: idleSeconds,
                                                                order: order)))
    }
}

/// `taskshed-bench _drain-worker`: one drain worker.
struct DrainWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_drain-worker", abstract: "Internal: one drain worker; ready/go on fd 4.", shouldDisplay: false)

    @Option var socket: String
    @Option var concurrency: Int
    @Option var idleSeconds: Double
    @Option var output: String

    func run() throws {
        try HelperProcesses.writeFile(
            try DrainBenchmark.workerProcess(socketPath: socket, concurrency: concurrency, idleSeconds: idleSeconds),
            to: output)
    }
}

/// `taskshed-bench scale`.
struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "P pending tasks: store size on disk, daemon RssAnon, restart-to-ready, add and drain rates at "
            + "that size.")

    @Option(name: [.customShort("p"), .long], help: "Pending tasks.")
    var pending: Int = 1_000_000

    @Flag(help: "Use 10,000,000 pending tasks (several GiB of disk).")
    var tenMillion = false

    @Option(help: "Due tasks drained at size.")
    var drainTasks: Int = 100_000

    @Option(help: "Tasks in the batched add at size.")
    var batchAdd: Int = 100_000

    @Option(help: "Sequential single adds at size.")
    var singleAdds: Int = 1_000

    @Option(help: "Restarts timed (the median is reported).")
    var restarts: Int = 3

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard pending > 0, drainTasks > 0, batchAdd > 0, singleAdds > 0, restarts > 0 else {
            throw ValidationError("counts must be positive")
        }
    }

    func run() throws {
        InterruptCleanup.install()
        var config = ScaleBenchmark.Config(pending: tenMillion ? 10_000_000 : pending)
        config.drainTasks = drainTasks
        config.batchAdd = batchAdd
        config.singleAdds = singleAdds
        config.restarts = restarts
        config.daemonArguments = daemon.arguments
        report.emit(try ScaleBenchmark.run(config) { line in
            // Progress goes to stderr so that --json output on stdout stays one object per scenario.
            var bytes = Array((line + "\n").utf8)
            _ = write(2, &bytes, bytes.count)
        })
    }
}
