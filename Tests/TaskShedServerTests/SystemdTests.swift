import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// A datagram socket standing in for systemd's notification socket.
final class NotifyListener {
    let fd: Int32
    let address: String

    /// Binds a path socket, or an abstract one when `abstractName` is given (`NOTIFY_SOCKET=@name`).
    init(directory: String, abstractName: String? = nil) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8]
        if let abstractName {
            address = "@" + abstractName
            bytes = [0] + Array(abstractName.utf8)
        } else {
            address = directory + "/notify.sock"
            bytes = Array(address.utf8)
        }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = 2 + bytes.count + (abstractName == nil ? 1 : 0)
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard result == 0 else { throw TestSupportError("bind notify socket: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Collects datagrams until one contains `needle` or the timeout passes.
    func waitFor(_ needle: String, timeout: Double = 20) -> [String] {
        var messages: [String] = []
        let deadline = monotonic() + timeout
        while monotonic() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 100) <= 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { continue }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            messages.append(text)
            if text.contains(needle) { return messages }
        }
        return messages
    }
}

/// Creates a listening Unix stream socket at `path` (what systemd does for `taskshedd.socket`).
func makeListeningSocket(_ path: String, listen doListen: Bool = true) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0 else { throw TestSupportError("bind \(path): \(String(cString: strerror(errno)))") }
    if doListen { Glibc.listen(fd, 64) }
    return fd
}

/// Starts taskshedd through `sh` so that `LISTEN_PID` can be the daemon's own pid (`exec` keeps the pid).
func startActivated(arguments: [String], environment: [String: String], descriptor: Int32, log: String,
                    listenPID: String = "$$") throws -> ChildProcess {
    var merged = DaemonProcess.inheritedEnvironment()
    for (key, value) in environment { merged[key] = value }
    merged["LISTEN_FDS"] = "1"
    let daemon = try DaemonProcess.executablePath()
    return try ChildProcess(executable: "/bin/sh",
                            arguments: ["-c", "export LISTEN_PID=\(listenPID); exec \"$0\" \"$@\"", daemon] + arguments,
                            environment: merged, outputPath: log, inheritedDescriptors: [3: descriptor])
}

@Suite struct SystemdTests {
    @Test func socketActivationAndReadinessAndStoppingNotifications() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsa")
        defer { TemporaryDirectory.remove(directory) }
        let path = directory + "/activated.sock"
        let socket = try makeListeningSocket(path)
        defer { close(socket) }
        let notify = try NotifyListener(directory: directory)
        let child = try startActivated(
            arguments: ["--socket", directory + "/unused.sock", "--data-dir", directory + "/data"],
            environment: ["NOTIFY_SOCKET": notify.address], descriptor: socket, log: directory + "/log")
        defer { if child.isRunning { child.killAndWait() } }
        let ready = notify.waitFor("READY=1")
        #expect(ready.contains { $0.contains("READY=1") }, "notifications: \(ready); log: \(readText(directory + "/log"))")
        // Served on the inherited socket; the --socket path was never bound.
        let client = try Client(path: path)
        #expect(try client.call(.ping).type == .pong)
        #expect(access(directory + "/unused.sock", F_OK) != 0)
        child.send(SIGTERM)
        let stopping = notify.waitFor("STOPPING=1")
        #expect(stopping.contains { $0.contains("STOPPING=1") })
        let status = child.wait(timeoutSeconds: 30)
        #expect(status.map(ChildProcess.exitCode(fromWaitStatus:)) == 0)
        // The socket belongs to systemd: the daemon leaves its file in place.
        #expect(access(path, F_OK) == 0)
    }

    @Test func activationWithANonListeningSocketFailsClearly() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsb")
        defer { TemporaryDirectory.remove(directory) }
        let socket = try makeListeningSocket(directory + "/idle.sock", listen: false)
        defer { close(socket) }
        let child = try startActivated(arguments: ["--socket", directory + "/d.sock", "--data-dir", directory + "/data"],
                                       environment: [:], descriptor: socket, log: directory + "/log")
        let status = child.wait(timeoutSeconds: 30)
        #expect(status.map(ChildProcess.exitCode(fromWaitStatus:)) == 1)
        let log = readText(directory + "/log")
        #expect(log.contains("not a listening AF_UNIX SOCK_STREAM socket"), "log: \(log)")
    }

    @Test func activationVariablesForAnotherProcessAreIgnored() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsi")
        defer { TemporaryDirectory.remove(directory) }
        let socket = try makeListeningSocket(directory + "/other.sock")
        defer { close(socket) }
        let child = try startActivated(arguments: ["--socket", directory + "/d.sock", "--data-dir", directory + "/data"],
                                       environment: [:], descriptor: socket, log: directory + "/log", listenPID: "1")
        defer { if child.isRunning { child.killAndWait() } }
        var client: Client?
        let deadline = monotonic() + 20
        while client == nil && monotonic() < deadline {
            client = try? Client(path: directory + "/d.sock")
            if client == nil { pause(0.02) }
        }
        #expect(client != nil, "log: \(readText(directory + "/log"))")
        child.send(SIGTERM)
        #expect(child.wait(timeoutSeconds: 30).map(ChildProcess.exitCode(fromWaitStatus:)) == 0)
    }

    @Test func abstractNotifySocketAndWatchdogPings() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsw")
        defer { TemporaryDirectory.remove(directory) }
        let name = "taskshed-test-\(getpid())-\(Int(monotonic() * 1000) % 1_000_000)"
        let notify = try NotifyListener(directory: directory, abstractName: name)
        let daemon = try DaemonProcess(environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"])
        let messages = notify.waitFor("WATCHDOG=1")
        #expect(messages.contains { $0.contains("READY=1") }, "notifications: \(messages)")
        #expect(messages.contains { $0.contains("WATCHDOG=1") }, "notifications: \(messages)")
        #expect(try daemon.stop() == 0)
    }

    @Test func journalPrefixesUnderSystemd() throws {
        let daemon = try DaemonProcess(environment: ["INVOCATION_ID": "0123456789abcdef"])
        #expect(try daemon.stop() == 0)
        let lines = daemon.log().split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines { #expect(line.hasPrefix("<"), "line without priority: \(line)") }
        #expect(lines.contains { $0.hasPrefix("<5>") && $0.contains("ready") })
    }
}

@Suite struct SystemdUnitTests {
    static let canVerify = access("/usr/bin/systemd-analyze", X_OK) == 0

    /// `systemd-analyze verify` on the shipped units, with ExecStart pointed at the binary under test (the
    /// units name /usr/local/bin/taskshedd, which a test machine does not have).
    @Test(.enabled(if: canVerify, "needs systemd-analyze"))
    func shippedUnitsPassSystemdAnalyzeVerify() throws {
        var components = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        components.removeLast(3)
        let unitDirectory = components.joined(separator: "/") + "/systemd"
        let directory = try TemporaryDirectory.create(prefix: "tsu")
        defer { TemporaryDirectory.remove(directory) }
        let daemon = try DaemonProcess.executablePath()
        for unit in ["taskshedd.service", "taskshedd.socket"] {
            let text = readText(unitDirectory + "/" + unit)
            #expect(!text.isEmpty, "\(unit) missing")
            let patched = text.replacing("/usr/local/bin/taskshedd", with: daemon)
            let fd = open(directory + "/" + unit, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            _ = Array(patched.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let output = try runHelper(["/usr/bin/systemd-analyze", "verify", "--man=no",
                                    directory + "/taskshedd.socket", directory + "/taskshedd.service"])
        #expect(output.isEmpty, "systemd-analyze verify: \(output)")
    }
}
