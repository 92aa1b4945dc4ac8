import Foundation
import Glibc
import Synchronization
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// `show` and `history` against daemons that keep no run history: one that speaks only protocol version 2, and
/// one of version 3 that answers GET_HISTORY with UNKNOWN_MESSAGE_TYPE (a taskshedd from before the history was
/// served). No such taskshedd can be started from this tree, so a scripted one on a Unix socket plays it.
@Suite("taskshedctl against an older daemon", .serialized, .timeLimit(.minutes(1)))
struct OlderDaemonTests {
    /// Answers each connection's HELLO with `version`, FETCH_TASKS with one task, GET_HISTORY with
    /// UNKNOWN_MESSAGE_TYPE, and records the types of the requests it saw.
    final class ScriptedDaemon: Sendable {
        let directory: String
        let socketPath: String
        let version: UInt16
        private let listener: Int32
        private let seen = Mutex<[MessageType]>([])

        init(version: UInt16) throws {
            self.version = version
            directory = try TemporaryDirectory.create(prefix: "old")
            socketPath = directory + "/old.sock"
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(socketPath.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0, listen(listener, 8) == 0 else { throw CLITestError("cannot listen on \(socketPath)") }
            let thread = Thread { [self] in acceptLoop() }
            thread.start()
        }

        /// The request types received so far (HELLO left out).
        var requests: [MessageType] { seen.withLock { $0 } }

        func stop() {
            shutdown(listener, Int32(SHUT_RDWR))
            unlink(socketPath)
            TemporaryDirectory.remove(directory)
        }

        private func acceptLoop() {
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 { break }
                serve(fd)
                close(fd)
            }
            close(listener)
        }

        private func serve(_ fd: Int32) {
            var decoder = FrameDecoder()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count <= 0 { return }
                decoder.append(contentsOf: buffer[..<count])
                while let frame = try? decoder.next() {
                    let reply: Message
                    switch frame.message {
                    case .hello:
                        reply = .helloOK(HelloOK(
                            version: version, serverName: "old", serverVersion: "0.0.1",
                            maxFrameBytes: ProtocolLimits.defaultMaxFrameBytes, maxBatch: 1000, maxKwargsBytes: 65536,
                            defaultLeaseMicros: 30_000_000, connectionID: 1))
                        decoder.version = version
                    case .fetchTasks:
                        seen.withLock { $0.append(frame.message.type) }
                        reply = .tasks([OlderDaemonTests.task])
                    default:
                        seen.withLock { $0.append(frame.message.type) }
                        reply = .error(ErrorReply(code: .unknownMessageType, message: "\(frame.message.type.name) is not served"))
                    }
                    var bytes: [UInt8] = []
                    FrameEncoder.encode(Frame(requestID: frame.requestID, message: reply), into: &bytes, version: version)
                    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            }
        }
    }

    static let task = TaskRecord(
        id: "nightly", callback: "backup", runAt: 1_796_677_121_000_000, schedule: .interval(micros: 3_600_000_000),
        kwargs: Array("{}".utf8), group: nil, paused: false, pausedAt: nil, coalesce: true, state: .scheduled,
        attempt: 0, maxAttempts: 3, leaseDeadline: nil, lastError: nil, createdAt: 1_796_677_000_000_000,
        lastRunAt: 1_796_677_100_000_000, lastFailureAt: nil)

    @Test(arguments: [UInt16(2), 3])
    func showLeavesOutTheLastRunsAndHistorySaysWhy(_ version: UInt16) async throws {
        let daemon = try ScriptedDaemon(version: version)
        defer { daemon.stop() }

        let show = try await CLIProcess.run(["show", "nightly", "--socket", daemon.socketPath])
        #expect(show.status == 0, "\(show)")
        #expect(show.stdout.hasPrefix("id:            nightly\n"), "\(show)")
        #expect(!show.stdout.contains("Last runs"), "\(show)")
        #expect(show.stderr.isEmpty, "\(show)")
        let json = try await CLIProcess.run(["show", "nightly", "--json", "--socket", daemon.socketPath])
        #expect(json.status == 0, "\(json)")
        let object = try json.jsonObject()
        #expect(object["last_runs"] is NSNull, "\(json)")
        #expect(object["last_outcome"] as? String == "ok")

        let history = try await CLIProcess.run(["history", "--socket", daemon.socketPath])
        #expect(history.status == 70, "\(history)")
        #expect(history.stdout.isEmpty)
        #expect(history.stderr.hasPrefix("taskshedctl: the daemon at \(daemon.socketPath) keeps no run history"), "\(history)")
        #expect(history.stderr.hasSuffix("upgrade taskshedd\n"), "\(history)")
        #expect(history.stderr.split(separator: "\n").count == 1)

        // A version 2 daemon is never sent GET_HISTORY; a version 3 one is, and says it does not serve it.
        let asked = daemon.requests.filter { $0 == .getHistory }.count
        #expect(asked == (version >= 3 ? 3 : 0), "\(daemon.requests)")
    }
}
