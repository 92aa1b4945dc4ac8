#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TaskShedBenchKit

/// `taskshed-bench`: TaskShed's benchmarks, one subcommand per area.
@main
struct TaskShedBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskshed-bench",
        abstract: "TaskShed benchmarks. Build with -c release.",
        subcommands: [StoreBench.self, StoreOpenProbe.self] + BenchScenarios.subcommands)
}

/// `taskshed-bench store`: the store benchmarks.
struct StoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Batched add, single durable adds, claim + ack, and open / next wake-up of a large store.")

    @Option(help: "Directory for the benchmark stores (removed afterwards).")
    var directory: String = "/tmp/taskshed-bench-store"

    @Option(help: "Tasks in the large store for the open / next wake-up measurement.")
    var largeTasks: Int = 1_000_000

    @Flag(help: "Use 10,000,000 tasks for the large store (the issue's size; about 4 GiB of disk).")
    var tenMillion = false

    @Option(help: "Tasks claimed and acked in the claim + ack scenarios.")
    var claimTasks: Int = 100_000

    @Option(help: "Single-task durable adds to time.")
    var singleAdds: Int = 2_000

    @Flag(help: "Commit without fsync (MDB_NOSYNC) in the add and claim scenarios.")
    var noSync = false

    @Flag(help: "Open the add and claim stores without MDB_NORDAHEAD.")
    var readAhead = false

    @Flag(help: "Skip the large-store scenario.")
    var skipLarge = false

    @Option(help: "Run only these scenarios (comma-separated: batched-add, single-add, single-add-profile, claim-ack, lease-ends, large, lmdb-micro).")
    var only: String?

    @Option(help: "Only this runAt order in claim-ack (random or ascending).")
    var claimOrder: TimeOrder?

    func wants(_ scenario: String) -> Bool {
        guard let only else { return scenario != "large" || !skipLarge }
        return only.split(separator: ",").contains { $0 == scenario }
    }

    func run() throws {
        mkdir(directory, 0o700)
        var config = StoreBenchmarks.Config(directory: directory)
        config.durable = !noSync
        config.singleAdds = singleAdds
        config.noReadAhead = !readAhead
        config.claimAckTasks = claimTasks
        config.largeStoreTasks = tenMillion ? 10_000_000 : largeTasks
        print("taskshed-bench store (\(config.durable ? "durable" : "no-sync") commits)")
        for order in TimeOrder.allCases where wants("batched-add") {
            print(try StoreBenchmarks.batchedAdd(config, order: order).line)
        }
        if wants("lmdb-micro") {
            for r in try LMDBMicroBenchmarks.frontDeletes(directory: directory) { print(r.line) }
        }
        if wants("single-add") { print(try StoreBenchmarks.singleAdds(config).line) }
        if wants("single-add-profile") {
            print("single durable add, store opened as the daemon opens it (\(singleAdds) adds):")
            for line in SingleAddProfile.lines(try SingleAddProfile.measure(directory: directory, count: singleAdds)) {
                print("  " + line)
            }
        }
        for order in (claimOrder.map { [$0] } ?? TimeOrder.allCases) where wants("claim-ack") {
            print(try StoreBenchmarks.claimAck(config, order: order, isolatedAcks: true).line)
            print(try StoreBenchmarks.claimAck(config, order: order, isolatedAcks: false).line)
            print(try StoreBenchmarks.pipelinedClaimAck(config, order: order).line)
            print(try StoreBenchmarks.pipelinedClaimAck(config, order: order, history: true).line)
        }
        for how in StoreBenchmarks.LeaseEnd.allCases where wants("lease-ends") {
            print(try StoreBenchmarks.leaseEnds(config, how: how).line)
        }
        guard wants("large") else { return }
        let path = directory + "/large"
        print(try StoreBenchmarks.buildLargeStore(config, path: path) { print($0) }.line)
        let dropped = BenchClock.dropPageCache()
        print("page cache dropped before the cold open: \(dropped ? "yes" : "no (not root?)")")
        try probe(path, noReadAhead: true)
        print("(warm)")
        try probe(path, noReadAhead: true)
        if BenchClock.dropPageCache() { try probe(path, noReadAhead: false) }
        StoreBenchmarksCleanup.remove(path)
    }

    /// Runs the open measurement in a fresh process so that its RSS is that of a process that just opened.
    func probe(_ path: String, noReadAhead: Bool) throws {
        let exe = "/proc/self/exe"
        var args = [exe, "store-open-probe", path] + (noReadAhead ? [] : ["--read-ahead"])
        var cArgs = args.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, nil, nil, &cArgs, environ)
        guard rc == 0 else { throw ValidationError("posix_spawn failed: \(rc)") }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        args.removeAll()
    }
}

/// `taskshed-bench store-open-probe <dir>`: opens a store, finds the next wake-up, prints time and RSS.
struct StoreOpenProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-open-probe", abstract: "Internal: cold open of an existing store (run by `store`).",
        shouldDisplay: false)

    @Argument(help: "Store directory.")
    var path: String

    @Flag(help: "Open without MDB_NORDAHEAD.")
    var readAhead = false

    func run() throws {
        print(try StoreBenchmarks.openAndNextWakeup(path: path, noReadAhead: !readAhead).line)
    }
}

/// Removes a benchmark store directory.
enum StoreBenchmarksCleanup {
    static func remove(_ path: String) {
        for name in ["data.mdb", "lock.mdb", "taskshed.lock"] { unlink(path + "/" + name) }
        rmdir(path)
    }
}

extension TimeOrder: ExpressibleByArgument {}
