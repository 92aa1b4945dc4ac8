#if canImport(Glibc)
import Glibc
#endif

/// An error of the benchmark harness itself (spawn, socket, protocol surprise), with a readable message.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var description: String

    /// Creates an error.
    /// - Parameter description: What went wrong.
    public init(_ description: String) { self.description = description }

    /// An error naming a failed C call and `errno`'s text.
    static func errno(_ call: String) -> BenchError {
        BenchError("\(call) failed: \(String(cString: strerror(Glibc.errno)))")
    }
}

/// Clock readings used by every scenario.
public enum BenchTime {
    /// `CLOCK_REALTIME` in nanoseconds since the epoch: task run times are wall-clock instants.
    public static func realtimeNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// `CLOCK_MONOTONIC` in nanoseconds: for durations.
    public static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// This process's user + system CPU time so far (`getrusage(RUSAGE_SELF)`), in nanoseconds.
    public static func selfCPUNanos() -> Int64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func nanos(_ t: timeval) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_usec) * 1000 }
        return nanos(usage.ru_utime) + nanos(usage.ru_stime)
    }
}

/// Facts about another process read from `/proc`.
public enum ProcFacts {
    /// User + system CPU time of a process (`utime` + `stime` of `/proc/PID/stat`), in nanoseconds.
    /// - Parameter pid: The process.
    /// - Returns: `nil` when the process is gone or the file cannot be parsed.
    public static func cpuNanos(pid: Int32) -> Int64? {
        guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) * 1_000_000_000 / max(ticks, 1)
    }

    /// A field of `/proc/PID/status` in KiB (e.g. `RssAnon`, `VmHWM`).
    /// - Parameters:
    ///   - field: The field name without the colon.
    ///   - pid: The process.
    /// - Returns: `nil` when the process is gone or has no such field.
    public static func statusKiB(_ field: String, pid: Int32) -> Int? {
        guard let text = readSmallFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.dropFirst(field.count + 1).filter { $0.isNumber })
        }
        return nil
    }

    /// Bytes this process has caused to be written to storage (`write_bytes` of `/proc/self/io`): page cache
    /// writeback it triggered, such as an `msync` or `fdatasync`.
    /// - Returns: The count, or 0 when the kernel does not account I/O.
    public static func writtenBytes() -> Int64 {
        guard let text = readSmallFile("/proc/self/io") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("write_bytes:") {
            return Int64(line.dropFirst("write_bytes:".count).filter { $0.isNumber }) ?? 0
        }
        return 0
    }

    /// Reads a whole (small) file as UTF-8.
    /// - Parameter path: The file.
    /// - Returns: Its text, or `nil` when it cannot be opened.
    public static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A child process spawned with `posix_spawn`, with chosen descriptors installed.
///
/// - Important: One owner drives it; `deinit` kills and reaps a child that is still running.
public final class BenchProcess: @unchecked Sendable {
    /// The child's pid.
    public let pid: pid_t
    /// The wait status once reaped.
    public private(set) var waitStatus: Int32?

    /// Path of the running executable (`/proc/self/exe` resolved), used to spawn the bench's own subcommands.
    /// - Returns: The absolute path.
    /// - Throws: `BenchError` when `readlink` fails.
    public static func selfExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw BenchError.errno("readlink(/proc/self/exe)") }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Spawns a program.
    /// - Parameters:
    ///   - executable: Path of the program.
    ///   - arguments: Arguments after the program name.
    ///   - outputPath: File for stdout and stderr (appended), or `nil` to share the parent's.
    ///   - descriptors: Child descriptor number → parent descriptor to install there (e.g. `[3: socket]`).
    /// - Throws: `BenchError` when the spawn fails.
    public init(executable: String, arguments: [String], outputPath: String? = nil,
                descriptors: [Int32: Int32] = [:]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // dup2 onto the target clears close-on-exec there; going through a high temporary copy makes it work even
        // when the parent's descriptor already has the target number.
        var temporaries: [Int32] = []
        defer { temporaries.forEach { close($0) } }
        for (target, source) in descriptors.sorted(by: { $0.key < $1.key }) {
            let temporary = fcntl(source, F_DUPFD_CLOEXEC, 100)
            guard temporary >= 0 else { throw BenchError.errno("fcntl(F_DUPFD_CLOEXEC)") }
            temporaries.append(temporary)
            posix_spawn_file_actions_adddup2(&actions, temporary, target)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw BenchError("posix_spawn \(executable) failed: \(String(cString: strerror(status)))")
        }
        pid = child
        InterruptCleanup.register(child: child)
    }

    deinit {
        if waitStatus == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    /// Sends a signal.
    /// - Parameter signal: The signal number.
    public func send(_ signal: Int32) {
        if waitStatus == nil { kill(pid, signal) }
    }

    /// Waits for the child to exit (retrying `EINTR`).
    /// - Returns: The exit code, or 128 + the signal that ended it.
    @discardableResult
    public func wait() -> Int32 {
        if let waitStatus { return Self.exitCode(waitStatus) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { break }
        }
        waitStatus = status
        InterruptCleanup.unregister(child: pid)
        return Self.exitCode(status)
    }

    /// Waits at most `seconds` for the child to exit.
    /// - Parameter seconds: The longest wait.
    /// - Returns: The exit code (as `wait()`), or `nil` if it is still running.
    public func wait(timeoutSeconds seconds: Double) -> Int32? {
        if let waitStatus { return Self.exitCode(waitStatus) }
        let deadline = BenchTime.monotonicNanos() + Int64(seconds * 1e9)
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                waitStatus = status
                InterruptCleanup.unregister(child: pid)
                return Self.exitCode(status)
            }
            if result < 0 && errno != EINTR { return nil }
            if BenchTime.monotonicNanos() >= deadline { return nil }
            usleep(1000)
        }
    }

    /// Whether the child is still running (reaps it if it has exited).
    public var isRunning: Bool {
        if waitStatus != nil { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            waitStatus = status
            InterruptCleanup.unregister(child: pid)
            return false
        }
        return true
    }

    static func exitCode(_ status: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
