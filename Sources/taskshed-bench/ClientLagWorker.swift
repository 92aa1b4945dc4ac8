import TaskShedBenchKit

/// The lag worker built on `import TaskShed` (EventDrivenWorker / PollingWorker).
enum ClientLagWorker {
    static func run(kind: LagBenchmark.WorkerKind, socketPath: String, expected: Int, deadlineNanos: Int64) throws
        -> [RawLagWorker.Receipt]
    {
        throw BenchError("this build has no TaskShed client library yet; use --workers raw")
    }
}
