#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// `taskshed-bench shared`: several daemons on one PostgreSQL datastore (`SharedDatastoreBenchmark`).
struct SharedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shared",
        abstract: "The PostgreSQL datastore: cross-daemon lag beside LMDB and the floor, add → delivery across "
            + "daemons beside NOTIFY and commit floors, drain on two daemons, batched and single adds.")

    @Option(help: ArgumentHelp("A PostgreSQL server to use (libpq connection string); default: a throw-away "
        + "cluster started with scripts/pg-test-server.sh and removed afterwards.", valueName: "conninfo"))
    var postgres: String?

    @Option(help: "Tasks of each lag run.") var lagCount: Int = 500
    @Option(help: "Seconds the lag tasks are spread over.") var lagSeconds: Double = 5
    @Option(help: "Tasks added due at once, one at a time.") var immediate: Int = 300
    @Option(help: "Due tasks drained by four workers on two daemons.") var drain: Int = 100_000
    @Option(help: "Tasks of the batched add.") var batch: Int = 100_000
    @Option(help: "Sequential single adds.") var single: Int = 1_000
    @Option(help: "Concurrent add clients.") var clients: Int = 16
    @Option(help: "Adds per concurrent client.") var perClient: Int = 200
    @Option(help: "Samples of each database floor.") var floorCount: Int = 1_000

    @OptionGroup var daemon: DaemonOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard lagCount > 0, lagSeconds > 0, immediate > 0, drain > 0, batch > 0, single > 0, clients > 0,
              perClient > 0, floorCount > 0 else { throw ValidationError("counts must be positive") }
    }

    func run() throws {
        InterruptCleanup.install()
        var config = SharedDatastoreBenchmark.Config()
        config.lagCount = lagCount
        config.lagSeconds = lagSeconds
        config.immediateCount = immediate
        config.drainCount = drain
        config.batchCount = batch
        config.singleCount = single
        config.clients = clients
        config.perClient = perClient
        config.floorCount = floorCount
        config.connectionString = postgres
        config.daemonArguments = daemon.arguments
        for table in try SharedDatastoreBenchmark.run(config) { report.emit(table) }
    }
}
