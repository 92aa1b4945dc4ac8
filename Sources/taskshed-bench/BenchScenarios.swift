#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// The scenario subcommands of issue 7 and their hidden helper processes, registered by the root command.
enum BenchScenarios {
    /// Every subcommand this file set adds to `taskshed-bench`.
    static let subcommands: [ParsableCommand.Type] = [
        FloorCommand.self, FloorSenderCommand.self, LagCommand.self, LagWorkerCommand.self,
        AddCommand.self, AddClientCommand.self, DrainCommand.self, DrainWorkerCommand.self, ScaleCommand.self,
        AllCommand.self, ReadStallCommand.self, AttackCommand.self, SharedCommand.self, HistoryCommand.self,
    ]
}

/// Options every scenario shares.
struct ReportOptions: ParsableArguments {
    @Flag(help: "Print the figures as one JSON object per scenario instead of tables.")
    var json = false

    @Option(help: ArgumentHelp("Also append each scenario's JSON object (one per line) to this file, so one run "
        + "gives both the tables and the machine-readable figures.", valueName: "path"))
    var jsonFile: String?

    /// Prints a table, or its JSON, and appends the JSON to `--json-file` if given.
    func emit(_ table: BenchTable) {
        print(json ? table.json.text : table.text)
        fflush(nil)
        if let jsonFile {
            let fd = open(jsonFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 {
                var bytes = Array((table.json.text + "\n").utf8)
                _ = write(fd, &bytes, bytes.count)
                close(fd)
            }
        }
    }
}

/// `taskshed-bench floor`: only the floor (timerfd + Unix socket hop), the reference of `lag`.
struct FloorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floor",
        abstract: "The floor alone: a bare timerfd (CLOCK_REALTIME, absolute) firing in one process, a 32-byte frame "
            + "over a Unix socket to another; lag = receive time - deadline.")

    @Option(name: [.customShort("n"), .long], help: "Number of deadlines.")
    var count: Int = 2_000

    @Option(name: [.customShort("s"), .long], help: "Seconds the deadlines are spread over.")
    var seconds: Double = 20

    @Option(help: "Seed of the random deadlines.")
    var seed: UInt64 = 7

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        InterruptCleanup.install()
        let floor = try FloorBenchmark.run(count: count, seconds: seconds, seed: seed)
        report.emit(LagTable.make(title: "floor", runs: [floor], floor: nil,
                                  notes: ["\(count) deadlines over \(formatDecimal(seconds, digits: 1)) s"],
                                  parameters: [("count", .integer(Int64(count))), ("seconds", .number(seconds))]))
    }
}

/// `taskshed-bench _floor-sender`: the timer process of the floor (started by `floor` and `lag`).
struct FloorSenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_floor-sender", abstract: "Internal: the floor's timer process; writes frames to fd 3.",
        shouldDisplay: false)

    @Option var count: Int
    @Option var seconds: Double
    @Option var seed: UInt64
    @Option var startMicros: Int64

    func run() throws {
        try FloorBenchmark.runSender(
            config: .init(count: count, seconds: seconds, seed: seed, startMicros: startMicros), socketFD: 3)
    }
}

/// `taskshed-bench read-stall`: `PING` round trips alone and while another connection polls `STATS` beside
/// many due tasks (`ReadStallBenchmark`).
struct ReadStallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-stall",
        abstract: "PING round trips on one connection, alone and while another polls STATS beside many due tasks: "
            + "how long a heavy read holds the daemon up.")

    @Option(help: "Due tasks in the daemon's store.")
    var dueTasks: Int = 200_000

    @Option(help: "PING round trips timed in each phase.")
    var pings: Int = 20_000

    @Option(help: "Longest time spent pinging while STATS is polled.")
    var seconds: Double = 3

    func validate() throws {
        guard dueTasks >= 0 else { throw ValidationError("--due-tasks must not be negative") }
        guard pings > 0 else { throw ValidationError("--pings must be positive") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        InterruptCleanup.install()
        let daemon = try BenchDaemon()
        defer { daemon.close() }
        let result = try ReadStallBenchmark.run(daemon: daemon, dueTasks: dueTasks, pings: pings, seconds: seconds)
        print("read-stall (\(dueTasks) due tasks)")
        for line in result.lines { print("  " + line) }
    }
}

/// `taskshed-bench attack`: a healthy worker's lateness and a healthy client's `PING` round trips alone and beside
/// each heavy or hostile client (`AttackBenchmark`).
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attack",
        abstract: "Healthy delivery lateness and PING round trips alone, then beside back-to-back 100k-task "
            + "batches, a 50,000-concurrency subscriber to 50,000 4 KiB tasks, and half-sent maximum frames.")

    @Option(help: "Seconds each phase is measured.")
    var seconds: Double = 5

    @Option(help: "Tasks per ADD_TASKS of the batches attack.")
    var batchTasks: Int = 100_000

    @Option(help: "Due tasks and subscription concurrency of the flood attack.")
    var floodTasks: Int = 50_000

    @Option(help: "Connections of the half-frames attack (as many again try before HELLO).")
    var halfFrames: Int = 40

    @Option(help: "Attacks to run, comma-separated: batches, flood, half-frames.")
    var attacks: String = "batches,flood,half-frames"

    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard batchTasks > 0, floodTasks > 0, halfFrames >= 0 else {
            throw ValidationError("--batch-tasks and --flood-tasks must be positive, --half-frames not negative")
        }
    }

    func run() throws {
        InterruptCleanup.install()
        // The daemon closes attackers' connections while they write: that must be an error, not SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let bench = try BenchDaemon(arguments: daemon.arguments)
        defer { bench.close() }
        var config = AttackBenchmark.Config()
        config.seconds = seconds
        config.batchTasks = batchTasks
        config.floodTasks = floodTasks
        config.halfFrames = halfFrames
        config.attacks = attacks.split(separator: ",").map(String.init)
        print("attack (healthy task every \(AttackBenchmark.healthySpacingMicros) µs, PING every 1 ms)")
        _ = try AttackBenchmark.run(daemon: bench, config: config) { line in print("  " + line) }
    }
}
