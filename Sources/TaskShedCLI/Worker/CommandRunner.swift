import Foundation
import Glibc

/// Runs shell commands for the command-running worker: `/bin/sh -c COMMAND` in its own process group, the
/// input on standard input, standard error captured, with an optional timeout that stops the whole group.
///
/// Each run blocks one dedicated thread (not a thread of Swift's cooperative pool, which must never block),
/// waiting in `poll(2)` on the standard-error pipe and on a pidfd of the child, so an exit is seen at once even
/// when a background grandchild keeps standard error open. Without pidfd support (Linux < 5.3) it falls back to
/// checking `waitpid(WNOHANG)` every 100 ms.
///
/// Standard input is an unlinked in-memory file (`memfd_create`) rather than a pipe, so a command that never
/// reads its input cannot block the worker and no SIGPIPE can occur.
///
/// Stopping (timeout or cancellation): SIGTERM to the process group, then SIGKILL after the invocation's grace
/// period; after a stopped run ends, whatever is left of its group gets SIGKILL.
public enum CommandRunner {
    /// Runs a command to completion.
    /// - Parameter invocation: What to run.
    /// - Returns: How it ended, with the tail of its standard error.
    /// - Throws: `CommandLaunchError` when the process cannot be created (not when it fails).
    /// - Important: Cancelling the calling task stops the command's process group (SIGTERM, then SIGKILL) and
    ///   returns a result with `cancelled == true`.
    public static func run(_ invocation: CommandInvocation) async throws -> CommandResult {
        let control = RunControl()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CommandResult, Error>) in
                let thread = Thread {
                    do {
                        continuation.resume(returning: try runBlocking(invocation, control: control))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "taskshed-command"
                thread.start()
            }
        } onCancel: {
            control.cancel()
        }
    }

    /// Runs a command on the calling thread, blocking it until the command ends.
    /// - Parameters:
    ///   - invocation: What to run.
    ///   - control: Lets another thread cancel the run.
    /// - Returns: How it ended.
    /// - Throws: `CommandLaunchError`.
    static func runBlocking(_ invocation: CommandInvocation, control: RunControl) throws -> CommandResult {
        let started = monotonicMicros()
        let inputFD = try makeInputFile(invocation.standardInput)
        defer { close(inputFD) }

        var errorPipe: [Int32] = [-1, -1]
        try makeCloseOnExecPipe(&errorPipe)
        var readFD = errorPipe[0]
        defer { if readFD >= 0 { close(readFD) } }

        let pid: pid_t
        do {
            defer { close(errorPipe[1]) }
            pid = try spawn(invocation, stdinFD: inputFD, stderrFD: errorPipe[1])
        }
        control.started(processGroup: pid)

        let pidFD = openPidFD(pid)
        defer { if pidFD >= 0 { close(pidFD) } }

        var tail = StandardErrorTail(forwarding: invocation.forwardStandardError)
        let deadline = invocation.timeoutMicros.map { started + $0 }
        var stopRequestedAt: Int64?
        var timedOut = false
        var status: Int32?
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)

        while status == nil {
            let now = monotonicMicros()
            if stopRequestedAt == nil {
                if let deadline, now >= deadline {
                    timedOut = true
                    stopRequestedAt = now
                    kill(-pid, SIGTERM)
                } else if control.isCancelled {
                    stopRequestedAt = now
                    kill(-pid, SIGTERM)
                }
            } else if let stopAt = stopRequestedAt, now >= stopAt + invocation.killGraceMicros {
                kill(-pid, SIGKILL)
            }

            // How long to wait: until the next thing this loop must do on its own.
            var waitMicros: Int64 = -1
            if let stopAt = stopRequestedAt {
                waitMicros = max(0, stopAt + invocation.killGraceMicros - now)
            } else if let deadline {
                waitMicros = max(0, deadline - now)
            }
            if pidFD < 0 { waitMicros = waitMicros < 0 ? 100_000 : min(waitMicros, 100_000) }
            // Cancellation is a flag set by another thread; wake up now and then to notice it.
            waitMicros = waitMicros < 0 ? 250_000 : min(waitMicros, 250_000)

            var fds: [pollfd] = []
            if readFD >= 0 { fds.append(pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)) }
            if pidFD >= 0 { fds.append(pollfd(fd: pidFD, events: Int16(POLLIN), revents: 0)) }
            let timeoutMillis = Int32((waitMicros + 999) / 1000)
            let ready = poll(&fds, nfds_t(fds.count), timeoutMillis)
            if ready < 0 && errno != EINTR {
                throw CommandLaunchError(operation: "poll", errno: errno)
            }
            if readFD >= 0, let first = fds.first, first.revents != 0 {
                let count = read(readFD, &buffer, buffer.count)
                if count > 0 {
                    tail.append(buffer[0..<count])
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(readFD)
                    readFD = -1
                }
            }
            status = reap(pid)
        }

        // A background process may still hold standard error: take what is already buffered, then stop reading.
        if readFD >= 0 {
            var fds = [pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)]
            while poll(&fds, 1, 0) > 0, fds[0].revents & Int16(POLLIN) != 0 {
                let count = read(readFD, &buffer, buffer.count)
                guard count > 0 else { break }
                tail.append(buffer[0..<count])
            }
        }
        if stopRequestedAt != nil {
            kill(-pid, SIGKILL)
        }
        let termination: CommandResult.Termination
        if let status, status & 0x7f == 0 {
            termination = .exited((status >> 8) & 0xff)
        } else {
            termination = .signaled((status ?? 0) & 0x7f)
        }
        return CommandResult(
            termination: termination, timedOut: timedOut, cancelled: !timedOut && control.isCancelled,
            standardErrorTail: tail.lastLines(CommandResult.tailLines), elapsedMicros: monotonicMicros() - started)
    }

    /// `waitpid(pid, WNOHANG)`: the raw status once the child has ended, else `nil`.
    private static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return status }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: someone else reaped it (nothing in this process does); report an unknown exit.
            return 0xff00
        }
    }

    /// Spawns `/bin/sh -c COMMAND` in a new process group with default signal dispositions.
    /// Corresponds to `posix_spawn`.
    private static func spawn(_ invocation: CommandInvocation, stdinFD: Int32, stderrFD: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        if invocation.standardOutput == .discard {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stderrFD, 2)
        // Descriptors the worker opened without O_CLOEXEC (such as its daemon connection) must not leak into
        // commands; glibc 2.34+ can close them all in the child.
        if let closeFrom = closeFromFunction {
            _ = closeFrom(&actions, 3)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let arguments = ["/bin/sh", "-c", invocation.command]
        let environment = invocation.environment.map { "\($0.key)=\($0.value)" }.sorted()
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, &envp)
        guard result == 0 else { throw CommandLaunchError(operation: "posix_spawn", errno: result) }
        return pid
    }

    /// A descriptor whose contents are the input, positioned at its start.
    private static func makeInputFile(_ bytes: [UInt8]) throws -> Int32 {
        var fd: Int32 = -1
        if let memfdCreate = memfdCreateFunction {
            fd = memfdCreate("taskshed-kwargs", UInt32(MFD_CLOEXEC_VALUE))
        }
        if fd < 0 {
            let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((directory + "/taskshed-kwargs-XXXXXX").utf8CString)
            fd = mkstemp(&template)
            guard fd >= 0 else { throw CommandLaunchError(operation: "mkstemp", errno: errno) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            unlink(template)
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw CommandLaunchError(operation: "write", errno: code)
            }
            offset += written
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// A pipe whose two ends are close-on-exec, atomically with `pipe2` where available.
    private static func makeCloseOnExecPipe(_ fds: inout [Int32]) throws {
        if let pipe2 = pipe2Function {
            guard pipe2(&fds, O_CLOEXEC) == 0 else { throw CommandLaunchError(operation: "pipe2", errno: errno) }
            return
        }
        guard pipe(&fds) == 0 else { throw CommandLaunchError(operation: "pipe", errno: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    }

    /// `MFD_CLOEXEC` from `<sys/mman.h>`, which Swift's Glibc module does not export.
    private static let MFD_CLOEXEC_VALUE: Int32 = 1

    private typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    // These glibc functions exist at run time (pipe2, memfd_create since 2.27, pidfd_open 2.36, addclosefrom_np
    // 2.34) but their headers are not part of Swift's
    // Glibc module, so they are looked up by name; each has a fallback when missing.
    private static let pipe2Function: Pipe2? = lookup("pipe2")
    private static let memfdCreateFunction: MemfdCreate? = lookup("memfd_create")
    private static let pidfdOpenFunction: PidfdOpen? = lookup("pidfd_open")
    private static let closeFromFunction: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")

    private static func lookup<F>(_ name: String) -> F? {
        // RTLD_DEFAULT is the null handle on glibc.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: F.self)
    }

    /// A pidfd for the child (readable once it exits), or -1 when the kernel or libc lacks `pidfd_open`.
    private static func openPidFD(_ pid: pid_t) -> Int32 {
        guard let open = pidfdOpenFunction else { return -1 }
        let fd = open(pid, 0)
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }

    /// CLOCK_MONOTONIC in microseconds: timeouts must not move with the wall clock.
    static func monotonicMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// Shared between a run's thread and the task that may cancel it.
final class RunControl: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var processGroup: pid_t?
    private var cancelled = false

    /// Whether cancellation was requested.
    var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    /// Records the child's process group; signals it at once if cancellation came first.
    func started(processGroup: pid_t) {
        lock.lock()
        self.processGroup = processGroup
        let alreadyCancelled = cancelled
        lock.unlock()
        if alreadyCancelled { kill(-processGroup, SIGTERM) }
    }

    /// Requests cancellation: the run loop sees the flag within its wake-up interval and stops the group; the
    /// SIGTERM here only makes that faster.
    func cancel() {
        lock.lock()
        cancelled = true
        let group = processGroup
        lock.unlock()
        if let group { kill(-group, SIGTERM) }
    }
}

/// The end of a command's standard error: keeps the last 64 KiB, optionally copying everything to the
/// worker's own standard error.
struct StandardErrorTail {
    private var bytes: [UInt8] = []
    private let forwarding: Bool
    private static let keep = 64 * 1024

    init(forwarding: Bool) {
        self.forwarding = forwarding
    }

    mutating func append(_ chunk: ArraySlice<UInt8>) {
        if forwarding {
            chunk.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
        bytes.append(contentsOf: chunk)
        if bytes.count > 2 * StandardErrorTail.keep {
            bytes.removeFirst(bytes.count - StandardErrorTail.keep)
        }
    }

    /// The last `count` lines, decoded leniently, without trailing empty lines.
    func lastLines(_ count: Int) -> [String] {
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        while let last = lines.last, last.trimmingSpaces.isEmpty { lines.removeLast() }
        return Array(lines.suffix(count))
    }
}
