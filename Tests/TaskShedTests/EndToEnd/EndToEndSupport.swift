import Foundation
import Glibc
import Synchronization
import TaskShed
import TaskShedTestSupport
import Testing

/// Waits until `condition` holds (an error counts as "not yet"), checking every 20 ms, for at most `timeout`
/// (generous: a bound on a hang, never a performance assertion).
/// - Returns: Whether the condition held in time.
func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return (try? await condition()) == true
}

/// Collects what callbacks saw, across tasks.
final class RunLog: Sendable {
    struct Run: Sendable, Hashable {
        var id: String
        var attempt: Int
    }

    private let runs = Mutex<[Run]>([])

    func record(_ task: ScheduledTask) {
        runs.withLock { $0.append(Run(id: task.id, attempt: task.attempt)) }
    }

    var all: [Run] { runs.withLock { $0 } }
    var count: Int { runs.withLock { $0.count } }

    func count(of id: String) -> Int {
        runs.withLock { $0.filter { $0.id == id }.count }
    }
}

/// A `taskshed-test-worker` process (see Tests/TaskShedTestWorker) and the file it writes its events to.
final class WorkerProcess: @unchecked Sendable {
    let process: ChildProcess
    let outputPath: String

    init(socketPath: String, outputPath: String, mode: String = "polling", sleepMilliseconds: Int = 0,
         concurrency: Int = 16, pollingMilliseconds: Int = 100, extra: [String] = []) throws {
        self.outputPath = outputPath
        process = try ChildProcess(
            executable: try WorkerProcess.executablePath(),
            arguments: [
                "--socket", socketPath, "--output", outputPath, "--mode", mode, "--sleep-ms", "\(sleepMilliseconds)",
                "--concurrency", "\(concurrency)", "--polling-ms", "\(pollingMilliseconds)",
            ] + extra,
            environment: DaemonProcess.inheritedEnvironment(),
            outputPath: outputPath + ".log")
    }

    deinit {
        if process.isRunning { process.killAndWait() }
    }

    /// The event lines written so far ("start <id> <attempt>", "done <id> <attempt>", "ready <pid>", …).
    func lines() -> [String] {
        guard let data = FileManager.default.contents(atPath: outputPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Task ids of the lines with this event ("start" or "done").
    func ids(_ event: String) -> [String] {
        lines().compactMap { line in
            let parts = line.split(separator: " ")
            return parts.count >= 2 && parts[0] == event ? String(parts[1]) : nil
        }
    }

    var isReady: Bool { lines().contains { $0.hasPrefix("ready ") } }

    /// The worker's own log (stderr), for failure messages.
    func log() -> String {
        (FileManager.default.contents(atPath: outputPath + ".log")).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Path of the worker binary: `taskshed-test-worker` next to the running test executable.
    static func executablePath() throws -> String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = exe.deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("taskshed-test-worker").path
            if access(candidate, X_OK) == 0 { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw TaskShedError(.invalidUsage, message: "taskshed-test-worker not found next to \(exe.path); run swift build")
    }
}

/// A fresh temporary directory for worker output files.
func temporaryDirectory() throws -> String {
    try TemporaryDirectory.create(prefix: "tsc")
}
