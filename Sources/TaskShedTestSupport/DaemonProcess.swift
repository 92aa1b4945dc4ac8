import Glibc
import TaskShedProtocol

/// A real `taskshedd` process on a fresh temporary socket and data directory, for end-to-end tests.
///
/// The binary is `$TASKSHEDD_PATH` if set, else `taskshedd` in the directory of the running test executable
/// (SwiftPM builds both into the same directory). `init` returns once the daemon answers `HELLO` and `PING`
/// on its socket. The daemon's stdout and stderr go to `logPath`, which a failing test can print.
///
/// - Important: Not thread-safe: drive one instance from one task at a time. `deinit` kills a daemon that is
///   still running and removes the temporary directories this instance created.
public final class DaemonProcess: @unchecked Sendable {
    /// The socket the daemon listens on.
    public let socketPath: String
    /// The daemon's data directory.
    public let dataDirectory: String
    /// The daemon's log file (stdout and stderr, appended across restarts).
    public let logPath: String
    /// The current daemon process's pid.
    public var pid: Int32 { process.pid }

    private let arguments: [String]
    private let environment: [String: String]
    private let runDirectory: String
    private let ownsDataDirectory: Bool
    private var process: ChildProcess

    /// Starts a daemon and waits until it serves.
    /// - Parameters:
    ///   - arguments: Extra command-line arguments (after `--socket` and `--data-dir`).
    ///   - dataDirectory: A data directory to use, or `nil` for a fresh temporary one (removed in `deinit`).
    ///   - environment: Variables added to (or replacing) the inherited environment.
    /// - Throws: `TestSupportError` when the binary is missing, the spawn fails, or the daemon does not serve
    ///   within 20 seconds (its log is included in the message).
    public init(arguments: [String] = [], dataDirectory: String? = nil, environment: [String: String] = [:]) throws {
        runDirectory = try TemporaryDirectory.create(prefix: "tsd")
        socketPath = runDirectory + "/d.sock"
        logPath = runDirectory + "/daemon.log"
        if let dataDirectory {
            self.dataDirectory = dataDirectory
            ownsDataDirectory = false
        } else {
            self.dataDirectory = runDirectory + "/data"
            ownsDataDirectory = true
        }
        self.arguments = arguments
        var merged = DaemonProcess.inheritedEnvironment()
        for (key, value) in environment { merged[key] = value }
        self.environment = merged
        do {
            process = try DaemonProcess.spawn(socketPath: socketPath, dataDirectory: self.dataDirectory,
                                              arguments: arguments, environment: merged, logPath: logPath)
            try waitUntilServing()
        } catch {
            TemporaryDirectory.remove(runDirectory)
            throw error
        }
    }

    deinit {
        if process.isRunning { process.killAndWait() }
        // A fresh data directory lives inside the run directory; a caller's own directory is left alone.
        TemporaryDirectory.remove(runDirectory)
    }

    /// Path of the `taskshedd` binary the tests run.
    /// - Returns: `$TASKSHEDD_PATH`, or `taskshedd` next to the running executable.
    /// - Throws: `TestSupportError` when no executable file is there.
    public static func executablePath() throws -> String {
        if let explicit = getenv("TASKSHEDD_PATH").map({ String(cString: $0) }), !explicit.isEmpty {
            return explicit
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw TestSupportError("readlink /proc/self/exe failed") }
        let exe = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            .joined(separator: "/")
        // A test bundle may be a directory (`X.xctest/...`): walk up until a taskshedd sits beside us.
        while !directory.isEmpty {
            let candidate = directory + "/taskshedd"
            if access(candidate, X_OK) == 0 { return candidate }
            directory = directory.split(separator: "/", omittingEmptySubsequences: false).dropLast()
                .joined(separator: "/")
        }
        throw TestSupportError("taskshedd not found next to \(exe); build it or set TASKSHEDD_PATH")
    }

    /// The test's environment without the variables that would make the daemon think systemd started it.
    public static func inheritedEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        for key in ["NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
                    "JOURNAL_STREAM", "INVOCATION_ID", "TASKSHED_SOCKET"] {
            result[key] = nil
        }
        return result
    }

    private static func spawn(socketPath: String, dataDirectory: String, arguments: [String],
                              environment: [String: String], logPath: String) throws -> ChildProcess {
        let executable = try executablePath()
        return try ChildProcess(executable: executable,
                                arguments: ["--socket", socketPath, "--data-dir", dataDirectory] + arguments,
                                environment: environment, outputPath: logPath)
    }

    /// The daemon's log so far.
    public func log() -> String {
        TextFile.read(logPath) ?? ""
    }

    private func waitUntilServing() throws {
        let deadline = monotonicSeconds() + 20
        var lastError = "not started"
        while monotonicSeconds() < deadline {
            if !process.isRunning {
                throw TestSupportError("taskshedd exited during start-up; log:\n\(log())")
            }
            do {
                let connection = try RawConnection(path: socketPath)
                try connection.handshake(clientName: "DaemonProcess")
                let reply = try connection.request(.ping, id: 1)
                guard case .pong = reply else { throw TestSupportError("PING answered with \(reply)") }
                return
            } catch {
                lastError = "\(error)"
                usleep(10_000)
            }
        }
        throw TestSupportError("taskshedd did not serve within 20 s (\(lastError)); log:\n\(log())")
    }

    /// Stops the daemon with SIGTERM and waits for it.
    /// - Returns: The exit code (128 + signal if a signal ended it).
    /// - Throws: `TestSupportError` when it does not exit within 30 seconds (it is then killed).
    @discardableResult
    public func stop() throws -> Int32 {
        process.send(SIGTERM)
        guard let status = process.wait(timeoutSeconds: 30) else {
            process.killAndWait()
            throw TestSupportError("taskshedd did not exit within 30 s of SIGTERM; log:\n\(log())")
        }
        return ChildProcess.exitCode(fromWaitStatus: status)
    }

    /// Kills the daemon with SIGKILL (a crash) and reaps it.
    public func kill() {
        process.killAndWait()
    }

    /// Starts the daemon again on the same socket and data directory (after `stop()` or `kill()`; a running
    /// daemon is killed first).
    /// - Throws: `TestSupportError` as `init` does.
    public func restart() throws {
        if process.isRunning { process.killAndWait() }
        process = try DaemonProcess.spawn(socketPath: socketPath, dataDirectory: dataDirectory,
                                          arguments: arguments, environment: environment, logPath: logPath)
        try waitUntilServing()
    }

    /// Opens a raw connection to the daemon and performs the handshake.
    /// - Returns: The connection.
    /// - Throws: `TestSupportError` when connecting or the handshake fails.
    public func connect() throws -> RawConnection {
        let connection = try RawConnection(path: socketPath)
        try connection.handshake()
        return connection
    }
}
