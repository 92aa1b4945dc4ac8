#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// A `taskshedd` started by the benchmark on a temporary socket and data directory.
///
/// The binary is `$TASKSHEDD_PATH` if set, else `taskshedd` next to the bench executable (a release build puts
/// both in `.build/release`). The daemon's stdout and stderr go to `daemon.log` in the run directory.
///
/// - Important: One owner drives it. `close()` (or `deinit`) stops the daemon and removes the run directory.
public final class BenchDaemon {
    /// The run directory (socket, log, data).
    public let runDirectory: String
    /// The socket path.
    public let socketPath: String
    /// The data directory.
    public let dataDirectory: String
    /// The daemon's log file.
    public let logPath: String
    /// Extra daemon arguments.
    public let arguments: [String]
    private var process: BenchProcess?

    /// The running daemon's pid (0 when stopped).
    public var pid: Int32 { process?.pid ?? 0 }

    /// Creates a run directory and starts the daemon, returning once it answers `PING`.
    /// - Parameter arguments: Extra arguments (e.g. `["--no-sync"]`); `--log-level warning` is added unless given.
    /// - Throws: `BenchError` when the binary is missing, the spawn fails or it does not serve within 30 s.
    public init(arguments: [String] = []) throws {
        var template = Array("/tmp/taskshed-bench-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError.errno("mkdtemp")
        }
        runDirectory = String(cString: made)
        InterruptCleanup.register(directory: runDirectory)
        socketPath = runDirectory + "/d.sock"
        dataDirectory = runDirectory + "/data"
        logPath = runDirectory + "/daemon.log"
        self.arguments = arguments.contains("--log-level") ? arguments : arguments + ["--log-level", "warning"]
        do {
            _ = try start(waitForNextWakeup: false)
        } catch {
            Self.removeTree(runDirectory)
            InterruptCleanup.unregister(directory: runDirectory)
            throw error
        }
    }

    deinit { close() }

    /// Path of the daemon binary.
    /// - Returns: `$TASKSHEDD_PATH`, or `taskshedd` beside this executable.
    /// - Throws: `BenchError` when it is not an executable file.
    public static func executablePath() throws -> String {
        if let explicit = getenv("TASKSHEDD_PATH").map({ String(cString: $0) }), !explicit.isEmpty {
            return explicit
        }
        let own = try BenchProcess.selfExecutable()
        var directory = String(own[..<(own.lastIndex(of: "/") ?? own.startIndex)])
        // A test bundle may sit deeper than the executables (`X.xctest/...`): walk up until taskshedd is beside.
        while !directory.isEmpty {
            if access(directory + "/taskshedd", X_OK) == 0 { return directory + "/taskshedd" }
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        }
        throw BenchError("taskshedd not found next to \(own): build it (swift build -c release) or set TASKSHEDD_PATH")
    }

    /// Spawns the daemon and waits until it serves.
    /// - Parameter waitForNextWakeup: Also wait until `PONG` carries a next wake-up (the store's earliest
    ///   pending task is known), as the restart-to-ready measurement requires.
    /// - Returns: Nanoseconds from just before `posix_spawn` to the first qualifying `PONG`.
    /// - Throws: `BenchError` when a daemon already runs, the spawn fails, or it is not ready within 60 s.
    @discardableResult
    public func start(waitForNextWakeup: Bool) throws -> Int64 {
        guard process == nil else { throw BenchError("the daemon is already running") }
        let executable = try Self.executablePath()
        let started = BenchTime.monotonicNanos()
        let child = try BenchProcess(executable: executable,
                                     arguments: ["--socket", socketPath, "--data-dir", dataDirectory] + arguments,
                                     outputPath: logPath)
        process = child
        let deadline = started + 60_000_000_000
        var lastError = "not started"
        while BenchTime.monotonicNanos() < deadline {
            guard child.isRunning else {
                process = nil
                throw BenchError("taskshedd exited during start-up; log:\n\(log())")
            }
            do {
                let connection = try BenchConnection(path: socketPath)
                try connection.handshake(clientName: "taskshed-bench readiness")
                while BenchTime.monotonicNanos() < deadline {
                    let reply = try connection.request(.ping)
                    guard case .pong(let pong) = reply else { throw BenchError("PING answered with \(reply.type)") }
                    if !waitForNextWakeup || pong.nextWakeup != nil { return BenchTime.monotonicNanos() - started }
                    usleep(200)
                }
            } catch {
                lastError = "\(error)"
                // A short pause: the measurement is start-to-ready, so polling must be fine-grained.
                usleep(200)
            }
        }
        throw BenchError("taskshedd not ready within 60 s (\(lastError)); log:\n\(log())")
    }

    /// Stops the daemon with SIGTERM and waits for it to exit (SIGKILL after 60 s).
    /// - Returns: The exit code.
    @discardableResult
    public func stop() -> Int32 {
        guard let child = process else { return 0 }
        process = nil
        child.send(SIGTERM)
        if let code = child.wait(timeoutSeconds: 60) { return code }
        child.send(SIGKILL)
        return child.wait()
    }

    /// Stops the daemon (if running) and removes the run directory with its data.
    public func close() {
        stop()
        Self.removeTree(runDirectory)
        InterruptCleanup.unregister(directory: runDirectory)
    }

    /// Opens a raw connection and performs the handshake.
    /// - Parameter name: Client name for the daemon's logs.
    /// - Returns: The connection.
    /// - Throws: `BenchError` when connecting or the handshake fails.
    public func connect(name: String = "taskshed-bench") throws -> BenchConnection {
        let connection = try BenchConnection(path: socketPath)
        try connection.handshake(clientName: name)
        return connection
    }

    /// The daemon's log so far.
    public func log() -> String { ProcFacts.readSmallFile(logPath) ?? "" }

    /// Bytes of the store's files on disk: apparent size and allocated blocks, summed over the data directory.
    /// - Returns: `(apparent, allocated)` in bytes.
    public func storeBytes() -> (apparent: Int64, allocated: Int64) {
        var apparent: Int64 = 0
        var allocated: Int64 = 0
        guard let directory = opendir(dataDirectory) else { return (0, 0) }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var info = stat()
            if stat(dataDirectory + "/" + name, &info) == 0 {
                apparent += Int64(info.st_size)
                allocated += Int64(info.st_blocks) * 512
            }
        }
        return (apparent, allocated)
    }

    /// Removes a directory tree of plain files and directories (the bench's own temporary directories).
    static func removeTree(_ path: String) {
        guard let directory = opendir(path) else {
            unlink(path)
            return
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names {
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }
}
