import Foundation
import Glibc

/// A spawned child process (`posix_spawn`), for tests that run the daemon or a helper.
public final class ChildProcess: @unchecked Sendable {
    /// The child's pid.
    public let pid: pid_t
    private var exitStatus: Int32?

    /// Spawns `executable` with `arguments`, an explicit environment, and extra descriptors.
    /// - Parameters:
    ///   - executable: Path of the program.
    ///   - arguments: Arguments after the program name.
    ///   - environment: The complete environment of the child.
    ///   - outputPath: File that receives the child's stdout and stderr (appended), or `nil` for /dev/null.
    ///   - inheritedDescriptors: Descriptors to install in the child: child number → parent descriptor
    ///     (for socket activation, `[3: listeningSocket]`).
    /// - Throws: `TestSupportError` when the spawn fails.
    public init(executable: String, arguments: [String], environment: [String: String], outputPath: String? = nil,
                inheritedDescriptors: [Int32: Int32] = [:]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let output = outputPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Each inherited descriptor is first duplicated to a high, close-on-exec number: dup2 from there onto the
        // target clears close-on-exec on the target only, and works even when source and target are equal.
        var temporaries: [Int32] = []
        defer { temporaries.forEach { close($0) } }
        for (target, source) in inheritedDescriptors.sorted(by: { $0.key < $1.key }) {
            let temporary = fcntl(source, F_DUPFD_CLOEXEC, 100)
            guard temporary >= 0 else {
                throw TestSupportError("cannot duplicate descriptor \(source): \(String(cString: strerror(errno)))")
            }
            temporaries.append(temporary)
            posix_spawn_file_actions_adddup2(&actions, temporary, target)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The test runner may block signals in its threads; the child must start with none blocked and default
        // handlers, or SIGTERM would not reach the daemon's own handler.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw TestSupportError("posix_spawn \(executable): \(String(cString: strerror(status)))")
        }
        pid = child
    }

    /// Whether the child has not been reaped yet.
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            exitStatus = status
            return false
        }
        return result == 0
    }

    /// Sends a signal. Corresponds to `kill`.
    /// - Parameter signal: The signal.
    public func send(_ signal: Int32) {
        if exitStatus == nil { Glibc.kill(pid, signal) }
    }

    /// Waits for the child to exit, up to `timeoutSeconds`.
    /// - Parameter timeoutSeconds: How long to wait.
    /// - Returns: The raw wait status, or `nil` if it is still running.
    public func wait(timeoutSeconds: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = monotonicSeconds() + timeoutSeconds
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exitStatus = status
                return status
            }
            if result < 0 { return exitStatus }
            if monotonicSeconds() > deadline { return nil }
            usleep(2_000)
        }
    }

    /// `wait(timeoutSeconds:)` on a thread of its own: an async test that waits for a long child (a build, a
    /// script) then holds none of the test process's cooperative threads, which are as many as the cores and which
    /// every other async test of the process needs to make progress.
    /// - Parameter timeoutSeconds: How long to wait.
    /// - Returns: The raw wait status, or `nil` if it is still running.
    public func waitOffPool(timeoutSeconds: Double) async -> Int32? {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: self.wait(timeoutSeconds: timeoutSeconds)) }
            thread.name = "taskshed-test-wait"
            thread.start()
        }
    }

    /// The exit code if the child exited normally, or 128 + signal number if a signal ended it.
    /// - Parameter status: A raw wait status.
    public static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Sends SIGKILL and reaps the child.
    public func killAndWait() {
        send(SIGKILL)
        _ = wait(timeoutSeconds: 30)
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
