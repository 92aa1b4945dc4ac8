import Foundation
import TaskShed
import TaskShedProtocol
import Testing

/// Connection behaviour: connect errors against paths with no daemon, and pipelining, cancellation and
/// connection loss against a scripted fake daemon (which can hold a reply back or answer out of order).
@Suite("Connection", .timeLimit(.minutes(1)))
struct ConnectionTests {
    @Test func connectingWhereNoDaemonListensSaysSo() async {
        let path = "/tmp/taskshed-no-daemon-\(getpid()).sock"
        let scheduler = Scheduler(socketPath: path)
        await #expect {
            try await scheduler.ping()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .connectionFailed && error.message == "cannot connect to \(path): is taskshedd running?"
        }
    }

    @Test func aSocketFileWithNoListenerIsReportedAsNoDaemon() async throws {
        let fake = try FakeDaemon()
        fake.stop()
        // A socket file left behind by a daemon that died: ECONNREFUSED.
        let path = fake.directory + ".stale.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        defer { unlink(path) }
        let scheduler = Scheduler(socketPath: path)
        await #expect {
            try await scheduler.start()
        } throws: { error in
            (error as? TaskShedError)?.message == "cannot connect to \(path): is taskshedd running?"
        }
    }

    @Test func aSocketPathLongerThanTheKernelAllowsIsRejected() async {
        let path = "/tmp/" + String(repeating: "p", count: 120) + ".sock"
        await #expect {
            try await Scheduler(socketPath: path).ping()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .connectionFailed && error.field == "socketPath" && error.message.contains("at most 107 bytes")
        }
    }

    @Test func socketPathDefaultsToTheSharedRule() {
        let expected = DefaultSocketPath.resolve(environment: ProcessInfo.processInfo.environment, uid: getuid())
        #expect(Scheduler().socketPath == expected)
        #expect(Scheduler.defaultSocketPath() == expected)
        #expect(Scheduler(socketPath: "/x/y.sock").socketPath == "/x/y.sock")
    }

    @Test func repliesAreMatchedToTheirCallsByRequestID() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        try await scheduler.start()

        let first = Task { try await scheduler.removeTasks(group: "first") }
        let second = Task { try await scheduler.removeTasks(group: "second") }
        var received: [String: UInt32] = [:]
        for _ in 0..<2 {
            let frame = try #require(await fake.nextRequest())
            guard case .removeTasks(.group(let group)) = frame.message else {
                Issue.record("unexpected \(frame.message)")
                return
            }
            received[group] = frame.requestID
        }
        // Answer in the opposite order of sending: each call must still get its own reply.
        fake.send(.affected(2), requestID: try #require(received["second"]))
        fake.send(.affected(1), requestID: try #require(received["first"]))
        #expect(try await first.value == 1)
        #expect(try await second.value == 2)
    }

    @Test func cancellingACallFailsItAndDropsItsLateReply() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        try await scheduler.start()

        let call = Task { try await scheduler.removeTasks(group: "slow") }
        let request = try #require(await fake.nextRequest())
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }

        // The late reply is dropped; the connection keeps working for the next call.
        fake.send(.affected(9), requestID: request.requestID)
        let next = Task { try await scheduler.removeTasks(group: "next") }
        let nextRequest = try #require(await fake.nextRequest())
        #expect(nextRequest.requestID != request.requestID)
        fake.send(.affected(3), requestID: nextRequest.requestID)
        #expect(try await next.value == 3)
    }

    @Test func losingTheConnectionFailsEveryPendingCall() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        try await scheduler.start()

        let first = Task { try await scheduler.removeTasks(group: "a") }
        let second = Task { try await scheduler.pauseTasks(group: "b") }
        _ = await fake.nextRequest()
        _ = await fake.nextRequest()
        fake.disconnect()
        for result in [await first.result.map { _ in () }, await second.result.map { _ in () }] {
            #expect(throws: TaskShedError.self) { try result.get() }
            if case .failure(let error as TaskShedError) = result {
                #expect(error.code == .connectionClosed)
                #expect(error.message.contains("closed the connection"))
            }
        }
    }

    @Test func theDaemonsClosingErrorBecomesTheReasonForPendingCalls() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        try await scheduler.start()

        let call = Task { try await scheduler.stats() }
        _ = await fake.nextRequest()
        fake.send(.error(ErrorReply(code: .shuttingDown, message: "the daemon is stopping")), requestID: 0)
        fake.disconnect()
        await #expect {
            try await call.value
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .shuttingDown && error.isRetriable && error.message == "the daemon is stopping"
        }
    }

    @Test func anErrorReplyBecomesATypedErrorWithItsField() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)

        let call = Task { try await scheduler.addTask(callback: "x") }
        let request = try #require(await fake.nextRequest())
        fake.send(
            .error(ErrorReply(code: .invalidArgument, field: "tasks[0].callback", message: "must not be empty")),
            requestID: request.requestID)
        await #expect {
            try await call.value
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .invalidArgument && error.field == "tasks[0].callback" && error.message == "must not be empty"
        }
    }

    @Test func aWrongReplyTypeIsAProtocolViolation() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)

        let call = Task { try await scheduler.stats() }
        let request = try #require(await fake.nextRequest())
        fake.send(.ok, requestID: request.requestID)
        await #expect { try await call.value } throws: { ($0 as? TaskShedError)?.code == .protocolViolation }
    }

    @Test func aGarbageFrameClosesTheConnectionWithAProtocolViolation() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)

        let call = Task { try await scheduler.stats() }
        _ = await fake.nextRequest()
        // Length 3 cannot hold a header: the stream cannot be trusted any more.
        fake.send(bytes: [0, 0, 0, 3, 1, 2, 3])
        await #expect { try await call.value } throws: { ($0 as? TaskShedError)?.code == .protocolViolation }
    }

    @Test func batchesOverTheDaemonsLimitAreRejectedBeforeSending() async throws {
        let fake = try FakeDaemon(maxBatch: 3)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        let tasks = (0..<4).map { ScheduledTask(callback: "cb", id: "t\($0)") }
        await #expect {
            try await scheduler.addTasks(tasks)
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .invalidUsage && error.field == "tasks" && error.message.contains("at most 3")
        }
        await #expect { try await scheduler.removeTasks(ids: ["a", "b", "c", "d"]) } throws: {
            ($0 as? TaskShedError)?.code == .invalidUsage
        }
        // Within the limit the request goes out.
        let ok = Task { try await scheduler.removeTasks(ids: ["a", "b", "c"]) }
        let request = try #require(await fake.nextRequest())
        #expect(request.message == .removeTasks(.ids(["a", "b", "c"])))
        fake.send(.affected(0), requestID: request.requestID)
        #expect(try await ok.value == 0)
    }

    @Test func addTaskSendsEveryFieldWithTheOriginalsDefaults() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        let runAt = Date(timeIntervalSince1970: 1_800_000_000.123456)

        let added = Task { try await scheduler.addTask(
            callback: "send", runAt: runAt, kwargs: ["to": "ada"], schedule: .every(.milliseconds(1500)), id: "t-1",
            group: "mail", paused: true, coalesce: false, maxAttempts: 5, replaceExisting: false) }
        let request = try #require(await fake.nextRequest())
        let expected = AddTasks(
            onConflict: .keep,
            tasks: [
                TaskSpec(
                    id: "t-1", callback: "send", runAt: 1_800_000_000_123_456, schedule: .interval(micros: 1_500_000),
                    kwargs: Array(#"{"to":"ada"}"#.utf8), group: "mail", paused: true, coalesce: false, maxAttempts: 5)
            ])
        #expect(request.message == .addTasks(expected))
        fake.send(.added([AddResult(id: "t-1", outcome: .kept)]), requestID: request.requestID)
        #expect(try await added.value == TaskAddResult(id: "t-1", outcome: .kept))

        let defaults = Task { try await scheduler.addTask(callback: "plain") }
        let second = try #require(await fake.nextRequest())
        guard case .addTasks(let batch) = second.message, let spec = batch.tasks.first else {
            Issue.record("expected ADD_TASKS, got \(second.message)")
            return
        }
        #expect(batch.onConflict == .replace)
        #expect(spec.schedule == .once && spec.coalesce && !spec.paused && spec.group == nil && spec.maxAttempts == 0)
        #expect(spec.kwargs == Array("{}".utf8))
        #expect(spec.id?.count == 32)
        fake.send(.added([AddResult(id: spec.id ?? "", outcome: .inserted)]), requestID: second.requestID)
        #expect(try await defaults.value.outcome == .inserted)
    }
}
