import Foundation
import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Runs the daemon binary to completion with arguments and returns its exit code and output.
func runDaemonToExit(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) throws
    -> (code: Int32, output: String)
{
    let directory = try TemporaryDirectory.create(prefix: "tsx")
    defer { TemporaryDirectory.remove(directory) }
    let log = directory + "/out.log"
    var merged = DaemonProcess.inheritedEnvironment()
    for (key, value) in environment { merged[key] = value }
    let child = try ChildProcess(executable: try DaemonProcess.executablePath(), arguments: arguments,
                                 environment: merged, outputPath: log)
    guard let status = child.wait(timeoutSeconds: timeout) else {
        child.killAndWait()
        throw TestSupportError("taskshedd \(arguments) did not exit within \(timeout) s")
    }
    return (ChildProcess.exitCode(fromWaitStatus: status), readText(log))
}

func readText(_ path: String) -> String {
    TextFile.read(path) ?? ""
}

@Suite struct StartupTests {
    @Test(arguments: [
        (["--lease-timeout", "soon"], "--lease-timeout"),
        (["--socket-mode", "999"], "--socket-mode"),
        (["--max-connections", "0"], "--max-connections"),
        (["--log-level", "loud"], "--log-level"),
        (["--log-format", "yaml"], "--log-format: 'yaml' is not one of text, json"),
        (["--socket", "/tmp/" + String(repeating: "s", count: 120)], "--socket"),
        (["--max-output-bytes", "1KiB"], "--max-output-bytes"),
        (["--no-such-flag"], "no-such-flag"),
        (["--socket-group", "no-such-group-xyz"], "--socket-group"),
        // Only for PostgreSQL, and only these modes.
        (["--datastore-pooler", "transaction"], "--datastore-pooler"),
        (["--datastore", "postgresql:host=/nowhere", "--datastore-pooler", "statement"], "--datastore-pooler"),
        // A numeric address and port only.
        (["--metrics-listen", "localhost:9464"], "--metrics-listen: 'localhost:9464' has no numeric IPv4 address"),
        (["--metrics-listen", "::1:9464"], "--metrics-listen: '::1:9464' needs brackets around its IPv6 address"),
        (["--metrics-listen", "127.0.0.1:99999"], "--metrics-listen: '127.0.0.1:99999' has no port between 0 and 65535"),
    ])
    func invalidConfigurationFailsWithOneLine(arguments: [String], mentions: String) throws {
        let directory = try TemporaryDirectory.create(prefix: "tsc")
        defer { TemporaryDirectory.remove(directory) }
        let result = try runDaemonToExit(["--socket", directory + "/d.sock", "--data-dir", directory + "/data"]
                                         + arguments)
        #expect(result.code == 2)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1, "output: \(result.output)")
        #expect(result.output.contains(mentions), "output: \(result.output)")
        // Nothing was created.
        #expect(access(directory + "/d.sock", F_OK) != 0)
    }

    @Test func helpExplainsTheFlags() throws {
        let result = try runDaemonToExit(["--help"])
        #expect(result.code == 0)
        for flag in ["--socket", "--data-dir", "--socket-mode", "--socket-group", "--allow-uid", "--allow-gid",
                     "--lease-timeout", "--max-connections", "--max-frame-bytes", "--max-batch", "--handshake-timeout",
                     "--max-output-bytes", "--no-sync", "--no-write-map", "--map-size-max", "--log-level",
                     "--log-format", "--metrics-listen"] {
            #expect(result.output.contains(flag), "--help does not mention \(flag)")
        }
    }

    @Test func secondDaemonOnTheSameSocketOrDataDirectoryRefusesToStart() throws {
        let daemon = try DaemonProcess()
        let sameSocket = try runDaemonToExit(["--socket", daemon.socketPath, "--data-dir", daemon.dataDirectory + "-2"])
        #expect(sameSocket.code == 1)
        #expect(sameSocket.output.contains("already listening"), "output: \(sameSocket.output)")
        let directory = try TemporaryDirectory.create(prefix: "tss")
        defer { TemporaryDirectory.remove(directory) }
        let sameData = try runDaemonToExit(["--socket", directory + "/other.sock", "--data-dir", daemon.dataDirectory])
        #expect(sameData.code == 1, "output: \(sameData.output)")
        #expect(access(directory + "/other.sock", F_OK) != 0, "the refused daemon left its socket file")
        // The first daemon is unaffected.
        #expect(try Client(daemon).call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
        TemporaryDirectory.remove(daemon.dataDirectory + "-2")
    }

    /// By default the store writes through a writable map, so its data file is sized to the map (64 MiB) with
    /// every block allocated; `--no-write-map` writes pages with `pwrite`, and the file holds only the pages in
    /// use. Both keep what they were given across a restart.
    @Test(arguments: [false, true])
    func theWritableMapIsTheDefaultAndNoWriteMapTurnsItOff(noWriteMap: Bool) throws {
        let daemon = try DaemonProcess(arguments: noWriteMap ? ["--no-write-map"] : [])
        let reply = try Client(daemon).call(.addTasks(AddTasks(tasks: [task("kept", runAt: 4_000_000_000_000_000)])))
        guard case .added(let results) = reply else {
            Issue.record("reply \(reply)")
            return
        }
        #expect(results.map(\.id) == ["kept"])
        var st = stat()
        #expect(stat(daemon.dataDirectory + "/data.mdb", &st) == 0)
        if noWriteMap {
            #expect(st.st_size < 64 << 20, "size \(st.st_size)")
        } else {
            #expect(st.st_size == 64 << 20, "size \(st.st_size)")
            #expect(Int(st.st_blocks) * 512 >= 64 << 20, "blocks \(st.st_blocks)")
        }
        #expect(try daemon.stop() == 0)
        try daemon.restart()
        let fetched = try Client(daemon).call(.fetchTasks(.ids(["kept"])))
        guard case .tasks(let tasks) = fetched else {
            Issue.record("reply \(fetched)")
            return
        }
        #expect(tasks.map(\.id) == ["kept"])
        #expect(try daemon.stop() == 0)
    }

    @Test func theDaemonHasOneVersionInItsFlagAndItsHandshake() throws {
        let printed = try runDaemonToExit(["--version"])
        #expect(printed.code == 0)
        #expect(printed.output.trimmingCharacters(in: .whitespacesAndNewlines) == TaskShedVersion.current)
        let daemon = try DaemonProcess()
        let connection = try RawConnection(path: daemon.socketPath)
        #expect(try connection.handshake().serverVersion == TaskShedVersion.current)
        #expect(try daemon.stop() == 0)
    }

    @Test func sighupIsLoggedAndTheDaemonKeepsServing() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("survivor", runAt: nowMicros() + 3_600_000_000)])
        #expect(Glibc.kill(pid_t(daemon.pid), SIGHUP) == 0)
        let deadline = monotonic() + 10
        while !daemon.log().contains("SIGHUP received") && monotonic() < deadline { pause(0.02) }
        #expect(daemon.log().contains("SIGHUP received"), "log:\n\(daemon.log())")
        #expect(try client.call(.ping).type == .pong)
        #expect(try client.fetch(["survivor"]).count == 1)
        #expect(try daemon.stop() == 0)
    }

    /// Every line the daemon writes with `--log-format json`, from start-up to its stop, is one JSON object.
    @Test func jsonLogFormatWritesOnlyJSONLinesFromReadyToStop() throws {
        let daemon = try DaemonProcess(arguments: ["--log-format", "json"])
        #expect(try daemon.stop() == 0)
        let lines = daemon.log().split(separator: "\n")
        #expect(lines.count >= 2, "log:\n\(daemon.log())")
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)")
            if let object { objects.append(object) }
        }
        let ready = try #require(objects.first { ($0["message"] as? String)?.hasSuffix(" ready") == true },
                                 "no ready line in:\n\(daemon.log())")
        #expect(ready["level"] as? String == "notice")
        #expect(ready["label"] as? String == "taskshedd")
        #expect(ready["taskshed.socket"] as? String == daemon.socketPath)
        #expect(ready["taskshed.pid"] as? String != nil)
        #expect((ready["time"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil)
    }

    @Test func staleSocketFileIsReplaced() throws {
        let daemon = try DaemonProcess()
        // A crash leaves the socket file behind.
        daemon.kill()
        #expect(access(daemon.socketPath, F_OK) == 0)
        try daemon.restart()
        #expect(try Client(daemon).call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
        #expect(access(daemon.socketPath, F_OK) != 0, "a clean stop removes the socket file")
    }

    @Test func sigtermAnswersInFlightRequestsTellsClientsAndExitsZero() throws {
        let daemon = try DaemonProcess()
        let client = try daemon.connect()
        try client.send(Frame(requestID: 50, message: .addTasks(AddTasks(tasks: [task("kept")]))))
        var skipped: [Frame] = []
        let added = try client.receive(requestID: 50, timeoutSeconds: 15, skipped: &skipped)
        #expect(added.message.type == .added)
        #expect(try daemon.stop() == 0)
        let frames = try client.readUntilClosed()
        #expect(frames.contains { if case .error(let e) = $0.message { return e.code == .shuttingDown }; return false })
        try daemon.restart()
        #expect(try Client(daemon).fetch(["kept"]).map(\.id) == ["kept"])
        #expect(try daemon.stop() == 0)
    }

    @Test func sigtermWhileAStoreJobRunsAnswersItAfterItsCommit() throws {
        let daemon = try DaemonProcess()
        let client = try daemon.connect()
        let count = 20_000
        let tasks = (0..<count).map { task("big-\($0)", runAt: nowMicros() + 3_600_000_000) }
        try client.send(Frame(requestID: 7, message: .addTasks(AddTasks(tasks: tasks))))
        // Let the daemon read the request and start its store job (a debug build needs a good part of a second
        // to commit 20,000 tasks), then stop it mid-job.
        pause(0.05)
        // SIGTERM without waiting: the reply is larger than the socket buffer, so the daemon can only finish
        // once this client reads.
        #expect(Glibc.kill(daemon.pid, SIGTERM) == 0)
        let frames = try client.readUntilClosed(timeoutSeconds: 30)
        #expect(try daemon.stop() == 0)
        let added = frames.first { $0.requestID == 7 }
        #expect(frames.contains { if case .error(let e) = $0.message { return e.code == .shuttingDown }; return false })
        try daemon.restart()
        let stored = try Client(daemon).stats().pending
        // The add is answered exactly when it is on disk: ADDED means all of it survived the stop; no reply
        // (the stop came before the request was read) means none of it was applied.
        if let added {
            #expect(added.message.type == .added)
            #expect(stored == UInt64(count))
        } else {
            #expect(stored == 0)
        }
        #expect(try daemon.stop() == 0)
    }

    @Test func socketFileGetsTheConfiguredMode() throws {
        let daemon = try DaemonProcess(arguments: ["--socket-mode", "0600"])
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(try daemon.stop() == 0)
    }

    /// Needs a second uid: only possible when the tests run as root (as in CI containers), with setpriv(1)
    /// and python3 to play the foreign client.
    static let canImpersonate = getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0
        && access("/usr/bin/python3", X_OK) == 0

    @Test(.enabled(if: canImpersonate, "needs root, setpriv and python3"))
    func peersOutsideTheAllowedUsersAreRefused() throws {
        let daemon = try DaemonProcess(arguments: ["--socket-mode", "0666"])
        let directory = String(daemon.socketPath.split(separator: "/").dropLast().joined(separator: "/"))
        chmod("/" + directory, 0o755)
        let script = """
            import socket,sys
            s=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); s.connect(sys.argv[1]); s.settimeout(10)
            data=b''
            while True:
                chunk=s.recv(4096)
                if not chunk: break
                data+=chunk
            sys.stdout.write(data.hex())
            """
        let result = try runHelper(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                    "/usr/bin/python3", "-c", script, daemon.socketPath])
        // ERROR frame: type 0x80ff, then code 12 (PERMISSION_DENIED) as u16.
        #expect(result.contains("80ff0000"), "reply: \(result)")
        #expect(result.contains("000c"), "reply: \(result)")
        #expect(daemon.log().contains("peer not allowed"))
        #expect(try Client(daemon).call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }
}

/// Runs a helper program to completion and returns its output.
func runHelper(_ command: [String]) throws -> String {
    let directory = try TemporaryDirectory.create(prefix: "tsh")
    defer { TemporaryDirectory.remove(directory) }
    let log = directory + "/out"
    let child = try ChildProcess(executable: command[0], arguments: Array(command.dropFirst()),
                                 environment: DaemonProcess.inheritedEnvironment(), outputPath: log)
    guard child.wait(timeoutSeconds: 30) != nil else {
        child.killAndWait()
        throw TestSupportError("\(command[0]) did not finish")
    }
    return readText(log)
}
