import Glibc
import Logging
import TaskShedProtocol
import Testing

@testable import TaskShed

/// How connection-level failures read. Permission errors cannot be provoked for real here (the tests run as
/// root, which bypasses socket permissions), so the errno mapping is checked directly.
@Suite("Connect errors", .timeLimit(.minutes(1)))
struct ConnectErrorTests {
    @Test func permissionErrorsPointAtTheSocketsGroup() {
        for code in [EACCES, EPERM] {
            let error = Connection.connectError(errno: code, path: "/run/taskshed/taskshedd.sock")
            #expect(error.code == .connectionFailed)
            #expect(error.message == "permission denied on /run/taskshed/taskshedd.sock: join the group that owns the socket")
        }
    }

    @Test func aMissingOrDeadSocketAsksWhetherTheDaemonRuns() {
        for code in [ENOENT, ECONNREFUSED, ENOTDIR] {
            let error = Connection.connectError(errno: code, path: "/tmp/x.sock")
            #expect(error.code == .connectionFailed)
            #expect(error.message == "cannot connect to /tmp/x.sock: is taskshedd running?")
        }
    }

    @Test func otherErrorsKeepTheSystemsExplanation() {
        let error = Connection.connectError(errno: EAGAIN, path: "/tmp/x.sock")
        #expect(error.message.hasPrefix("cannot connect to /tmp/x.sock: "))
        #expect(error.message.contains(String(cString: strerror(EAGAIN))))
    }

    @Test func listingDaemonsFromADaemonThatSpeaksOnlyVersion1SaysWhy() async throws {
        // FakeDaemon answers HELLO with version 1; GET_DAEMONS is version 2's, so nothing is sent.
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        await #expect {
            try await scheduler.daemons()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .unsupportedVersion && error.message.contains("needs version 2")
        }
    }

    @Test func aHandshakeRefusalIsThrownWithTheDaemonsCodeAndMessage() async throws {
        let fake = try FakeDaemon(
            helloReply: .error(ErrorReply(code: .unsupportedVersion, message: "this server speaks versions 2...3")))
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        await #expect {
            try await scheduler.start()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .unsupportedVersion && error.message == "this server speaks versions 2...3"
        }
    }

    @Test func aDaemonThatNeverAnswersTheHandshakeTimesOut() async throws {
        // The fake serves one connection; a second one is accepted by the kernel but never answered.
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let first = Scheduler(socketPath: fake.socketPath)
        try await first.start()
        await #expect {
            try await Connection.open(
                path: fake.socketPath, clientName: "test", logger: Logger(label: "test"), handshakeTimeout: .milliseconds(100))
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .connectionFailed && error.message.contains("did not answer the handshake")
        }
    }

    @Test func aTooManyConnectionsRefusalIsRetriable() async throws {
        let fake = try FakeDaemon(helloReply: .error(ErrorReply(code: .tooManyConnections, message: "at the limit of 2")))
        defer { fake.stop() }
        await #expect {
            try await Scheduler(socketPath: fake.socketPath).ping()
        } throws: { error in
            (error as? TaskShedError)?.code == .tooManyConnections && (error as? TaskShedError)?.isRetriable == true
        }
    }
}
