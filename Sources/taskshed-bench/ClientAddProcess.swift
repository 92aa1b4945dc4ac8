import Dispatch
import Foundation
import Synchronization
import TaskShed
import TaskShedBenchKit

/// The `add` scenario's client process on `import TaskShed`: one `Scheduler` (one connection), one
/// `addTask` in flight at a time, so the figure includes the library's request path.
enum ClientAddProcess {
    /// Connects, reports ready, waits for go, adds `count` tasks one by one.
    /// - Returns: The report line `count startNanos endNanos` (`CLOCK_REALTIME`).
    static func run(socketPath: String, count: Int, seed: UInt64) throws -> String {
        let outcome = Mutex<Result<String, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        // ArgumentParser's root command is synchronous: run the async client in a task and wait for it here.
        Task {
            do {
                let scheduler = Scheduler(socketPath: socketPath, clientName: "taskshed-bench add client (library)")
                try await scheduler.start()
                var random = SplitMix64(seed: seed)
                let runAts = (0..<count).map { _ -> Date in
                    let micros = AddBenchmark.pendingSpec(random: &random).runAt ?? 0
                    return Date(timeIntervalSince1970: Double(micros) / 1e6)
                }
                HelperProcesses.signalReadyAndWaitForGo()
                let start = BenchTime.realtimeNanos()
                for runAt in runAts {
                    try await scheduler.addTask(callback: AddBenchmark.callback, runAt: runAt)
                }
                let end = BenchTime.realtimeNanos()
                scheduler.shutdown()
                outcome.withLock { $0 = .success("\(count) \(start) \(end)\n") }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        switch outcome.withLock({ $0 }) {
        case .success(let line): return line
        case .failure(let error): throw error
        case nil: throw BenchError("the add client finished without an outcome")
        }
    }
}
