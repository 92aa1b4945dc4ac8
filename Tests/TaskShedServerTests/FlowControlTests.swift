import Glibc
import Testing
import TaskShedProtocol
import TaskShedTestSupport

/// Flow control and the limits on what one connection can make the daemon hold (issue 17): pushes go out as
/// the worker's socket takes them, unread replies stop the reading of requests instead of ending the
/// connection, `SLOW_CONSUMER` only after a stall, and input memory is bounded before and after HELLO.
@Suite("Flow control and input limits")
struct FlowControlTests {
    /// A JSON object of about `bytes` bytes.
    static func padding(_ bytes: Int) -> String { "{\"pad\":\"" + String(repeating: "x", count: bytes) + "\"}" }

    /// Adds `count` tasks due now with `kwargs`, in batches of `batch`.
    static func addDue(_ client: Client, _ count: Int, callback: String, kwargs: String, batch: Int) throws {
        let now = nowMicros()
        for start in stride(from: 0, to: count, by: batch) {
            try client.add((start..<min(count, start + batch)).map {
                task("\(callback)\($0)", callback: callback, runAt: now, kwargs: kwargs)
            })
        }
    }

    /// Waits until `callback` has `leased` tasks leased.
    static func waitForLeased(_ client: Client, callback: String, _ leased: UInt64) throws -> Bool {
        let deadline = monotonic() + 20
        while monotonic() < deadline {
            if try client.stats().callbacks.first(where: { $0.callback == callback })?.leased == leased { return true }
            pause(0.02)
        }
        return false
    }

    @Test func aLargeSubscriptionDrainsAsItReadsWithEveryAttemptTheFirst() throws {
        // 3,000 deliveries of 4 KiB are 12 MB, forty times the 300 KiB output limit: the daemon must write them
        // as the worker reads, not queue them all and drop the worker.
        let daemon = try DaemonProcess(arguments: ["--max-frame-bytes", "256KiB", "--max-kwargs-bytes", "8KiB",
                                                   "--max-output-bytes", "300KiB", "--slow-consumer-timeout", "2s"])
        let scheduler = try Client(daemon)
        let count = 3_000
        try Self.addDue(scheduler, count, callback: "big", kwargs: Self.padding(4_000), batch: 50)
        let worker = try Client(daemon)
        try worker.subscribe(["big"], concurrency: UInt32(count))
        var attempts: [String: UInt32] = [:]
        while attempts.count < count {
            guard let delivery = try worker.nextDelivery(timeout: 20) else { break }
            #expect(attempts[delivery.id] == nil, "\(delivery.id) delivered twice")
            attempts[delivery.id] = delivery.attempt
            // Reading in bursts with pauses shorter than the stall timeout is reading.
            if attempts.count % 500 == 0 { pause(0.3) }
        }
        #expect(attempts.count == count)
        #expect(attempts.values.allSatisfy { $0 == 1 }, "attempts: \(Set(attempts.values))")
        #expect(worker.unsolicited.isEmpty, "\(worker.unsolicited.map(\.message))")
        var acks: [UInt8] = []
        for (index, (id, attempt)) in attempts.enumerated() {
            FrameEncoder.encode(Frame(requestID: UInt32(10_000 + index), message: .ack(LeaseRef(id: id, attempt: attempt))),
                                into: &acks)
        }
        try worker.raw.send(bytes: acks)
        let answers = try replies(count, from: worker.raw)
        #expect(answers?.values.allSatisfy { $0 == .ok } == true)
        #expect(try scheduler.fetch((0..<count).map { "big\($0)" }).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test func aWorkerThatStopsReadingIsDroppedAfterTheStallAndTasksItNeverGotAreUncounted() throws {
        let daemon = try DaemonProcess(arguments: ["--slow-consumer-timeout", "1s", "--lease-timeout", "60s"])
        let scheduler = try Client(daemon)
        let count = 1_000
        try Self.addDue(scheduler, count, callback: "stuck", kwargs: Self.padding(4_000), batch: 100)
        let stuck = try Client(daemon)
        stuck.raw.setReceiveBufferSize(4096)
        try stuck.subscribe(["stuck"], concurrency: UInt32(count))
        // Everything is leased to the worker that reads nothing; most of it never reaches its socket.
        #expect(try Self.waitForLeased(scheduler, callback: "stuck", UInt64(count)))
        let heir = try Client(daemon)
        try heir.subscribe(["stuck"], concurrency: UInt32(count))
        var attempts: [String: UInt32] = [:]
        while attempts.count < count, let delivery = try heir.nextDelivery(timeout: 20) {
            attempts[delivery.id] = delivery.attempt
        }
        #expect(attempts.count == count)
        // Written to the stuck worker: the push window (1 MiB) and the socket buffers, a few hundred tasks at
        // most; their attempt counts. The rest were never written and come back uncounted.
        let uncounted = attempts.values.filter { $0 == 1 }.count
        #expect(uncounted >= 500, "\(uncounted) of \(count) uncounted")
        #expect(attempts.values.allSatisfy { $0 <= 2 })
        let frames = try stuck.raw.readUntilClosed(timeoutSeconds: 30)
        if let last = frames.last { expectError(last.message, .slowConsumer) } else { Issue.record("no frames") }
        #expect(try scheduler.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func unreadRepliesPauseTheRequestsInsteadOfEndingTheConnection() throws {
        let daemon = try DaemonProcess(arguments: ["--max-frame-bytes", "256KiB", "--max-kwargs-bytes", "32KiB",
                                                   "--max-output-bytes", "300KiB"])
        let client = try Client(daemon)
        let ids = (0..<4).map { "big\($0)" }
        try client.add(ids.map { task($0, kwargs: Self.padding(30_000)) })
        client.raw.setReceiveBufferSize(4096)
        var requests: [UInt8] = []
        for index in 0..<60 {
            FrameEncoder.encode(Frame(requestID: UInt32(1000 + index), message: .fetchTasks(.ids(ids))), into: &requests)
        }
        // 60 replies of ~120 KB: 7 MB unread, far past the 300 KiB limit, for a second.
        try client.raw.send(bytes: requests)
        pause(1)
        let other = try Client(daemon)
        #expect(try other.call(.ping).type == .pong)
        let answers = try replies(60, from: client.raw)
        #expect(answers?.count == 60)
        #expect(answers?.values.allSatisfy { if case .tasks(let tasks) = $0 { tasks.count == 4 } else { false } } == true)
        #expect(try client.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func aClaimTakesOnlyWhatFitsInOneFrameAndLeavesTheRestUncounted() throws {
        let daemon = try DaemonProcess(arguments: ["--max-frame-bytes", "64KiB", "--max-kwargs-bytes", "16KiB"])
        let scheduler = try Client(daemon)
        try Self.addDue(scheduler, 20, callback: "poll", kwargs: Self.padding(8_000), batch: 5)
        let worker = try Client(daemon)
        let first = try worker.claim(["poll"], max: 20)
        #expect(!first.isEmpty && first.count < 20, "\(first.count) claimed")
        #expect(first.reduce(12) { $0 + $1.encodedByteCount } <= 64 << 10)
        var claimed = first
        while claimed.count < 20 {
            let next = try worker.claim(["poll"], max: 20)
            if next.isEmpty { break }
            claimed += next
        }
        #expect(claimed.count == 20)
        #expect(Set(claimed.map(\.id)).count == 20)
        #expect(claimed.allSatisfy { $0.attempt == 1 }, "attempts: \(claimed.map(\.attempt))")
        #expect(try daemon.stop() == 0)
    }

    @Test func aLargeFrameBeforeHelloIsRefusedAtItsHeader() throws {
        let daemon = try DaemonProcess(arguments: ["--handshake-timeout", "30s"])
        let raw = try RawConnection(path: daemon.socketPath)
        // A HELLO header announcing 100,000 bytes: before HELLO only small frames are accepted.
        try raw.send(bytes: [0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01])
        let frames = try raw.readUntilClosed(timeoutSeconds: 10)
        if let first = frames.first {
            expectError(first.message, .frameTooLarge)
            if case .error(let error) = first.message { #expect(error.message.contains("before HELLO")) }
        } else {
            Issue.record("no error")
        }
        #expect(try daemon.stop() == 0)
    }

    @Test func silentConnectionsCannotLockOutClientsThatSendHello() throws {
        let daemon = try DaemonProcess(arguments: ["--max-handshaking", "4", "--max-connections", "8",
                                                   "--handshake-timeout", "60s"])
        let silent = try (0..<20).map { _ in try RawConnection(path: daemon.socketPath) }
        let client = try Client(daemon)
        #expect(try client.call(.ping).type == .pong)
        // The oldest silent ones made room: each got TOO_MANY_CONNECTIONS and the end of the stream.
        var evicted = 0
        for raw in silent.prefix(16) {
            let frames = try raw.readUntilClosed(timeoutSeconds: 10)
            if let first = frames.first, case .error(let error) = first.message, error.code == .tooManyConnections {
                evicted += 1
            }
        }
        #expect(evicted == 16)
        #expect(try daemon.stop() == 0)
    }

    @Test func partialFramesPastTheInputBudgetCloseTheLargestHolders() throws {
        let daemon = try DaemonProcess(arguments: ["--max-frame-bytes", "1MiB", "--max-input-bytes", "2MiB",
                                                   "--max-kwargs-bytes", "64KiB"])
        let healthy = try Client(daemon)
        var senders: [Client] = []
        for _ in 0..<4 {
            let sender = try Client(daemon)
            // An ADD_TASKS header for a frame of 1 MiB, then 900 KB of it, and silence.
            var bytes: [UInt8] = [0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09]
            bytes += [UInt8](repeating: 0x41, count: 900_000)
            try? sender.raw.send(bytes: bytes)
            senders.append(sender)
        }
        var overloaded = 0
        for sender in senders {
            if let frame = try? sender.raw.receive(timeoutSeconds: 3), case .error(let error) = frame.message {
                #expect(error.code == .overloaded)
                overloaded += 1
            }
        }
        // 3.6 MB sent against a 2 MiB budget: at least two of the four had to go.
        #expect(overloaded >= 2 && overloaded < 4, "\(overloaded) closed")
        #expect(try healthy.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func aFrameThatStopsArrivingEndsTheConnection() throws {
        let daemon = try DaemonProcess(arguments: ["--frame-timeout", "300ms"])
        let client = try Client(daemon)
        // The header of a 1,000-byte PING frame and 10 bytes of it.
        try client.raw.send(bytes: [0x00, 0x00, 0x03, 0xE8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05]
                                + [UInt8](repeating: 0, count: 10))
        let started = monotonic()
        let frames = try client.raw.readUntilClosed(timeoutSeconds: 10)
        if let first = frames.first { expectError(first.message, .frameTimeout) } else { Issue.record("no error") }
        #expect(monotonic() - started >= 0.25)
        #expect(try daemon.stop() == 0)
    }

    @Test func aClientRefusedAfterItsHelloGetsTheErrorAndACleanEnd() throws {
        let daemon = try DaemonProcess(arguments: ["--max-connections", "1"])
        var first: Client?
        let deadline = monotonic() + 10
        while first == nil && monotonic() < deadline {
            first = try? Client(daemon)
            if first == nil { pause(0.02) }
        }
        #expect(first != nil)
        for _ in 0..<5 {
            let refused = try RawConnection(path: daemon.socketPath)
            // The HELLO is sent at once, before the daemon reads anything: it sits unread when the daemon refuses.
            try refused.send(Frame(requestID: 1, message: .hello(Hello(minVersion: 1, maxVersion: 1, clientName: "late"))))
            pause(0.05)
            let frames = try refused.readUntilClosed(timeoutSeconds: 10)
            if let error = frames.first { expectError(error.message, .tooManyConnections) } else { Issue.record("no error") }
            #expect(!refused.wasReset, "the connection was reset instead of ended")
        }
        #expect(try first?.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }
}
