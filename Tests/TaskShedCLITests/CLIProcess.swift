import Foundation
import Glibc
import Testing

/// What a finished `taskshedctl` run printed and returned.
struct CLIResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "status \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

    /// The standard output parsed as a JSON object.
    func jsonObject() throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(value as? [String: Any], "not a JSON object: \(stdout)")
    }
}

/// Runs the built `taskshedctl` (found next to the test executable) as a subprocess, with its standard output
/// and error in separate files so that neither can block it.
final class CLIProcess: @unchecked Sendable {
    let pid: pid_t
    let directory: String
    private var exitStatus: Int32?

    static func executable() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { throw CLITestError("readlink /proc/self/exe failed") }
        var directory = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            let candidate = directory + "/taskshedctl"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw CLITestError("taskshedctl not found next to the test executable; build it (swift build --build-tests)")
    }

    /// Starts `taskshedctl arguments...` with `stdin` as its standard input, through `launcher` (such as
    /// `setpriv --reuid=...`) when one is given.
    init(_ arguments: [String], stdin: String = "", environment extra: [String: String] = [:], launcher: [String] = [])
        throws
    {
        let ctl = try CLIProcess.executable()
        let executable = launcher.first ?? ctl
        let argumentsAfterProgram = launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [ctl] + arguments
        var template = Array("/tmp/taskshedctl-test-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw CLITestError("mkdtemp failed") }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard FileManager.default.createFile(atPath: directory + "/stdin", contents: Data(stdin.utf8)) else {
            throw CLITestError("cannot write \(directory)/stdin")
        }

        var environment = ProcessInfo.processInfo.environment
        environment["TASKSHED_SOCKET"] = nil
        for (key, value) in extra { environment[key] = value }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, directory + "/stdin", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, directory + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + argumentsAfterProgram).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw CLITestError("posix_spawn taskshedctl: \(String(cString: strerror(status)))") }
        pid = child
    }

    deinit {
        if exitStatus == nil {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs to completion (at most 60 s, then SIGKILL).
    static func run(
        _ arguments: [String], stdin: String = "", environment: [String: String] = [:], launcher: [String] = []
    ) async throws -> CLIResult {
        let process = try CLIProcess(arguments, stdin: stdin, environment: environment, launcher: launcher)
        return try await process.finish(timeoutSeconds: 60)
    }

    func signal(_ number: Int32) {
        Glibc.kill(pid, number)
    }

    /// What the process has written to standard output and error so far.
    var output: (stdout: String, stderr: String) {
        (read("stdout"), read("stderr"))
    }

    /// Waits for the exit (polling with async sleeps so no test thread blocks), then collects the output.
    func finish(timeoutSeconds: Double) async throws -> CLIResult {
        var waited = 0.0
        while exitStatus == nil {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                exitStatus = status
                break
            }
            if waited > timeoutSeconds {
                Glibc.kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                exitStatus = status
                throw CLITestError("taskshedctl did not finish within \(timeoutSeconds) s; stderr: \(read("stderr"))")
            }
            try await Task.sleep(for: .milliseconds(5))
            waited += 0.005
        }
        let raw = exitStatus ?? 0
        let code: Int32 = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return CLIResult(status: code, stdout: read("stdout"), stderr: read("stderr"))
    }

    private func read(_ name: String) -> String {
        FileManager.default.contents(atPath: directory + "/" + name).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

struct CLITestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds, for at most `seconds` (a bound for a slow machine, not a timing check).
func eventually(seconds: Double = 20, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
