#if canImport(Glibc)
import Glibc
#endif

/// Starting the bench's own helper processes (workers, clients) and the small files they report through.
public enum HelperProcesses {
    /// The descriptor on which a helper writes one byte when it is ready (connected and subscribed).
    public static let readyDescriptor: Int32 = 4

    /// Spawns `taskshed-bench <arguments>` and waits until it reports ready on descriptor 4.
    /// - Parameters:
    ///   - arguments: Subcommand and its options.
    ///   - logPath: File for the helper's stdout and stderr.
    ///   - timeoutSeconds: Longest wait for readiness.
    /// - Returns: The running helper.
    /// - Throws: `BenchError` when the spawn fails, or the helper exits or stays silent before it is ready.
    public static func spawnReady(_ arguments: [String], logPath: String, timeoutSeconds: Double = 30) throws
        -> BenchProcess
    {
        try spawnControlled(arguments, logPath: logPath, timeoutSeconds: timeoutSeconds).process
    }

    /// Spawns `taskshed-bench <arguments>`, waits until it reports ready on descriptor 4, and keeps the other end
    /// of that socket so that `Helper.go()` can release it (for helpers that must start together).
    /// - Parameters:
    ///   - arguments: Subcommand and its options.
    ///   - logPath: File for the helper's stdout and stderr.
    ///   - timeoutSeconds: Longest wait for readiness.
    /// - Returns: The running helper with its control socket.
    /// - Throws: `BenchError` when the spawn fails, or the helper exits or stays silent before it is ready.
    public static func spawnControlled(_ arguments: [String], logPath: String, timeoutSeconds: Double = 30) throws
        -> Helper
    {
        var fds: [Int32] = [-1, -1]
        // A socket pair rather than a pipe: the helper answers "ready" and then waits for "go" on the same
        // descriptor (and pipe2 is not exported by Glibc's module). Both ends close on exec.
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw BenchError.errno("socketpair")
        }
        let child: BenchProcess
        do {
            child = try BenchProcess(executable: try BenchProcess.selfExecutable(), arguments: arguments,
                                     outputPath: logPath, descriptors: [readyDescriptor: fds[1]])
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&pfd, 1, Int32(timeoutSeconds * 1000)) } while ready < 0 && errno == EINTR
        var byte: UInt8 = 0
        guard ready == 1, read(fds[0], &byte, 1) == 1 else {
            close(fds[0])
            child.send(SIGKILL)
            child.wait()
            let log = ProcFacts.readSmallFile(logPath) ?? ""
            throw BenchError("helper \(arguments.first ?? "") did not become ready; its log:\n\(log)")
        }
        return Helper(process: child, control: fds[0])
    }

    /// A helper process and the bench's end of its control socket.
    public final class Helper {
        /// The process.
        public let process: BenchProcess
        private var control: Int32

        init(process: BenchProcess, control: Int32) {
            self.process = process
            self.control = control
        }

        deinit { if control >= 0 { close(control) } }

        /// Releases a helper waiting in `HelperProcesses.waitForGo()`.
        public func go() {
            guard control >= 0 else { return }
            var byte: UInt8 = 1
            _ = write(control, &byte, 1)
            close(control)
            control = -1
        }
    }

    /// Called by a helper once it is ready: writes one byte to descriptor 4 and closes it.
    public static func signalReady() {
        var byte: UInt8 = 1
        _ = write(readyDescriptor, &byte, 1)
        close(readyDescriptor)
    }

    /// Called by a helper started with `spawnControlled`: reports ready, then blocks until the bench calls
    /// `go()` (or exits).
    public static func signalReadyAndWaitForGo() {
        var byte: UInt8 = 1
        _ = write(readyDescriptor, &byte, 1)
        while read(readyDescriptor, &byte, 1) < 0 && errno == EINTR {}
        close(readyDescriptor)
    }

    /// Writes text to a file (created or truncated).
    /// - Parameters:
    ///   - text: The content.
    ///   - path: The file.
    /// - Throws: `BenchError` when it cannot be written.
    public static func writeFile(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError.errno("open(\(path))") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError.errno("write(\(path))") }
            offset += n
        }
        bytes.removeAll()
    }

    /// Reads a helper's report: whitespace-separated integers, one record per line.
    /// - Parameter path: The file.
    /// - Returns: The records.
    /// - Throws: `BenchError` when the file is missing.
    public static func readRecords(_ path: String) throws -> [[Int64]] {
        guard let text = ProcFacts.readSmallFile(path) else { throw BenchError("no report at \(path)") }
        return text.split(separator: "\n").map { line in line.split(separator: " ").compactMap { Int64($0) } }
    }
}
