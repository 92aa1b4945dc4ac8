#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Synchronization
import TaskShed
import TaskShedBenchKit

/// The lag worker built on `import TaskShed`: an `EventDrivenWorker` or `PollingWorker` whose callback records
/// the instant it starts. The library's own path (socket read, decode, task hand-off to the callback's `Task`)
/// is therefore inside the figure, which is the point: the raw worker shows what the daemon alone costs.
enum ClientLagWorker {
    /// Receipts shared between the callbacks (any thread of the cooperative pool) and the waiting caller.
    final class Collector: Sendable {
        let receipts = Mutex<[RawLagWorker.Receipt]>([])
        let distinct = Mutex<Set<String>>([])

        func record(_ task: ScheduledTask, startedNanos: Int64) {
            let runAt = Int64((task.runAt.timeIntervalSince1970 * 1e6).rounded())
            // The frame's arrival as the library saw it: the difference is the library's own share.
            let received = DeliveryTiming.frameReadNanos ?? startedNanos
            receipts.withLock {
                $0.append(RawLagWorker.Receipt(id: task.id, runAtMicros: runAt, receivedNanos: received,
                                               startedNanos: startedNanos))
            }
            distinct.withLock { _ = $0.insert(task.id) }
        }

        var distinctCount: Int { distinct.withLock { $0.count } }
    }

    /// Runs the worker until `expected` distinct tasks have started (plus 300 ms for duplicates) or the deadline.
    static func run(kind: LagBenchmark.WorkerKind, socketPath: String, expected: Int, deadlineNanos: Int64) throws
        -> [RawLagWorker.Receipt]
    {
        let collector = Collector()
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        // ArgumentParser's root command is synchronous: run the async worker in a task and wait for it here.
        Task {
            do {
                let callback: TaskCallback = { task in collector.record(task, startedNanos: BenchTime.realtimeNanos()) }
                let start: () async throws -> Void
                let stop: () async -> Void
                switch kind {
                case .clientPolling(let interval):
                    let worker = try PollingWorker(
                        callbackMap: [LagBenchmark.callback: callback], pollingInterval: .microseconds(interval),
                        socketPath: socketPath, concurrency: 10_000, clientName: "taskshed-bench lag PollingWorker")
                    start = { try await worker.start() }
                    stop = { await worker.shutdown(timeout: .seconds(1)) }
                default:
                    let worker = try EventDrivenWorker(
                        callbackMap: [LagBenchmark.callback: callback], socketPath: socketPath, concurrency: 10_000,
                        clientName: "taskshed-bench lag EventDrivenWorker")
                    start = { try await worker.start() }
                    stop = { await worker.shutdown(timeout: .seconds(1)) }
                }
                try await start()
                HelperProcesses.signalReady()
                var doneAt: Int64?
                while BenchTime.realtimeNanos() < deadlineNanos {
                    if doneAt == nil && collector.distinctCount >= expected { doneAt = BenchTime.realtimeNanos() }
                    if let doneAt, BenchTime.realtimeNanos() - doneAt > 300_000_000 { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                await stop()
                outcome.withLock { $0 = .success(()) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        if case .failure(let error) = outcome.withLock({ $0 }) { throw error }
        return collector.receipts.withLock { $0 }
    }
}
