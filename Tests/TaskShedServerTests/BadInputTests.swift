import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Each kind of bad input gets its documented error while a healthy client on the same daemon keeps being
/// served.
@Suite struct BadInputTests {
    @Test func garbageHugeLengthTruncationAndUnknownTypeDoNotHarmOthers() throws {
        let daemon = try DaemonProcess()
        let healthy = try Client(daemon)

        // An HTTP request: "GET " read as a length prefix is 1.2 GB.
        let http = try daemon.connect()
        try http.send(bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let httpFrames = try http.readUntilClosed()
        #expect(httpFrames.count == 1)
        if let first = httpFrames.first { expectError(first.message, .frameTooLarge) }
        #expect(try healthy.call(.ping).type == .pong)

        // A length below the header size.
        let short = try daemon.connect()
        try short.send(bytes: [0, 0, 0, 3, 1, 2, 3])
        let shortFrames = try short.readUntilClosed()
        if let first = shortFrames.first { expectError(first.message, .malformedFrame) } else { Issue.record("no error") }

        // A frame cut short, then the client hangs up.
        let truncated = try daemon.connect()
        var frame = FrameEncoder.encode(Frame(requestID: 5, message: .addTasks(AddTasks(tasks: [task("x")]))))
        frame.removeLast(3)
        try truncated.send(bytes: frame)
        truncated.close()
        #expect(try healthy.call(.ping).type == .pong)
        #expect(try healthy.fetch(["x"]).isEmpty, "a truncated ADD_TASKS was applied")

        // An unknown type: error with its request id, connection stays usable.
        let unknown = try daemon.connect()
        try unknown.send(bytes: [0, 0, 0, 8, 0x7E, 0x7E, 0, 0, 0, 0, 0, 42])
        let reply = try unknown.receive()
        #expect(reply?.requestID == 42)
        if let reply { expectError(reply.message, .unknownMessageType) }
        #expect(try unknown.request(.ping, id: 43).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func requestsBeforeTheHandshakeAndBadVersionsAreRefused() throws {
        let daemon = try DaemonProcess()
        let healthy = try Client(daemon)

        let early = try RawConnection(path: daemon.socketPath)
        try early.send(Frame(requestID: 3, message: .ping))
        let earlyFrames = try early.readUntilClosed()
        #expect(earlyFrames.first?.requestID == 3)
        if let first = earlyFrames.first { expectError(first.message, .handshakeRequired) }

        let future = try RawConnection(path: daemon.socketPath)
        try future.send(Frame(requestID: 4, message: .hello(Hello(minVersion: 4, maxVersion: 9, clientName: "future"))))
        let futureFrames = try future.readUntilClosed()
        if let first = futureFrames.first {
            expectError(first.message, .unsupportedVersion)
            if case .error(let reply) = first.message { #expect(reply.message.contains("server speaks 1...3")) }
        } else {
            Issue.record("no error")
        }

        // The highest version both speak: 3 for a client offering 1...9, 1 for one that offers only 1.
        for (offer, chosen) in [(UInt16(1)...9, UInt16(3)), (1...1, 1), (2...2, 2), (1...2, 2)] {
            let client = try RawConnection(path: daemon.socketPath)
            let reply = try client.request(
                .hello(Hello(minVersion: offer.lowerBound, maxVersion: offer.upperBound, clientName: "range")), id: 5)
            guard case .helloOK(let ok) = reply else {
                Issue.record("HELLO \(offer) answered \(reply)")
                continue
            }
            #expect(ok.version == chosen, "HELLO \(offer)")
            let daemons = try client.request(.getDaemons, id: 6)
            if chosen >= 2 {
                guard case .daemons(let list) = daemons else {
                    Issue.record("GET_DAEMONS on version \(chosen) answered \(daemons)")
                    continue
                }
                #expect(list.count == 1 && list[0].isThisDaemon && list[0].pid == UInt32(daemon.pid))
            } else {
                expectError(daemons, .unknownMessageType)
            }
        }

        let twice = try daemon.connect()
        let again = try twice.request(.hello(Hello(minVersion: 1, maxVersion: 1, clientName: "again")), id: 6)
        expectError(again, .invalidArgument)
        #expect(try healthy.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func silentClientGetsHandshakeTimeout() throws {
        let daemon = try DaemonProcess(arguments: ["--handshake-timeout", "300ms"])
        let silent = try RawConnection(path: daemon.socketPath)
        let frames = try silent.readUntilClosed(timeoutSeconds: 20)
        if let first = frames.first { expectError(first.message, .handshakeTimeout) } else { Issue.record("no error") }
        // A client that says HELLO in time is not affected.
        let healthy = try Client(daemon)
        pause(0.5)
        #expect(try healthy.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func invalidFieldsAreNamed() throws {
        let daemon = try DaemonProcess(arguments: ["--max-batch", "10"])
        let client = try Client(daemon)
        expectError(try client.call(.addTasks(AddTasks(tasks: []))), .invalidArgument, field: "tasks")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task("a"), task("b", callback: "")]))), .invalidArgument,
                    field: "tasks[1].callback")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task("a", schedule: .interval(micros: 0))]))),
                    .invalidArgument, field: "tasks[0].schedule")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task("a", kwargs: "[1,2]")]))), .invalidArgument,
                    field: "tasks[0].kwargs")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task("a", kwargs: "{\"a\":")]))), .invalidArgument,
                    field: "tasks[0].kwargs")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task("d"), task("d")]))), .invalidArgument,
                    field: "tasks[1].id")
        expectError(try client.call(.addTasks(AddTasks(tasks: [task(String(repeating: "x", count: 256))]))),
                    .invalidArgument, field: "tasks[0].id")
        expectError(try client.call(.addTasks(AddTasks(tasks: (0..<11).map { task("m\($0)") }))), .invalidArgument,
                    field: "tasks")
        expectError(try client.call(.fetchTasks(.all)), .invalidArgument, field: "selector.kind")
        expectError(try client.call(.claim(Claim(callbacks: ["cb"], max: 0))), .invalidArgument, field: "max")
        expectError(try client.call(.claim(Claim(callbacks: [], max: 1))), .invalidArgument, field: "callbacks")
        expectError(try client.call(.subscribe(Subscribe(callbacks: ["cb"], concurrency: 0))), .invalidArgument,
                    field: "concurrency")
        expectError(try client.call(.subscribe(Subscribe(callbacks: ["cb", "cb"], concurrency: 1))), .invalidArgument,
                    field: "callbacks[1]")
        expectError(try client.call(.subscribe(Subscribe(callbacks: ["cb"], concurrency: 1, leaseMicros: -5))),
                    .invalidArgument, field: "lease_us")
        expectError(try client.call(.subscribe(Subscribe(callbacks: ["cb"], concurrency: 1, leaseMicros: 999))),
                    .invalidArgument, field: "lease_us")
        expectError(try client.call(.claim(Claim(callbacks: ["cb"], max: 1, leaseMicros: 86_400_000_001))),
                    .invalidArgument, field: "lease_us")
        expectError(try client.call(.touch(Touch(lease: LeaseRef(id: "t", attempt: 1), extendMicros: 5))),
                    .invalidArgument, field: "extend_us")
        expectError(try client.call(.listTasks(ListTasks(limit: 0))), .invalidArgument, field: "limit")
        // One subscription per connection.
        #expect(try client.call(.subscribe(Subscribe(callbacks: ["one"], concurrency: 1))).type == .subscribed)
        expectError(try client.call(.subscribe(Subscribe(callbacks: ["two"], concurrency: 1))), .invalidArgument)
        #expect(try client.call(.unsubscribe) == .ok)
        #expect(try client.call(.unsubscribe) == .ok)
        #expect(try client.call(.subscribe(Subscribe(callbacks: ["two"], concurrency: 1))).type == .subscribed)
        // Nothing was stored by the refused requests, and the connection still works.
        #expect(try client.fetch(["a", "b", "d", "m0"]).isEmpty)
        #expect(try client.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func connectionsPastTheLimitAreRefusedAndTheLimitFreesUp() throws {
        let daemon = try DaemonProcess(arguments: ["--max-connections", "2"])
        // DaemonProcess's own readiness probe connection may still be closing: wait until two fit.
        var first: Client?
        let deadline = monotonic() + 10
        while first == nil && monotonic() < deadline {
            first = try? Client(daemon)
            if first == nil { pause(0.02) }
        }
        let second = try Client(daemon)
        let third = try RawConnection(path: daemon.socketPath)
        let frames = try third.readUntilClosed()
        if let refused = frames.first { expectError(refused.message, .tooManyConnections) } else { Issue.record("no error") }
        #expect(try second.call(.ping).type == .pong)
        first?.raw.close()
        var fourth: Client?
        while fourth == nil && monotonic() < deadline + 10 {
            fourth = try? Client(daemon)
            if fourth == nil { pause(0.02) }
        }
        #expect(fourth != nil)
        #expect(try daemon.stop() == 0)
    }

    @Test func slowReaderIsDisconnectedAndItsTasksRedelivered() throws {
        let daemon = try DaemonProcess(arguments: ["--max-frame-bytes", "256KiB", "--max-kwargs-bytes", "32KiB",
                                                   "--max-output-bytes", "300KiB", "--slow-consumer-timeout", "500ms"])
        let scheduler = try Client(daemon)
        let big = "{\"pad\":\"" + String(repeating: "x", count: 30_000) + "\"}"
        try scheduler.add([task("held", callback: "slow")] + (0..<4).map { task("big\($0)", callback: "other", kwargs: big) })
        let slow = try Client(daemon)
        slow.raw.setReceiveBufferSize(4096)
        try slow.subscribe(["slow"], concurrency: 1)
        #expect(try slow.nextDelivery()?.id == "held")
        // Ask for ~120 KB replies again and again without reading them (one write: the requests fit in the
        // socket buffers, so the client is not blocked).
        var requests: [UInt8] = []
        for index in 0..<60 {
            FrameEncoder.encode(Frame(requestID: UInt32(1000 + index), message: .fetchTasks(.ids((0..<4).map { "big\($0)" }))),
                                into: &requests)
        }
        try slow.raw.send(bytes: requests)
        // The daemon answers until 300 KiB are unread, then reads no more of its requests; once the client has
        // read nothing for 500 ms, the daemon drops it. The task it held goes to the next worker then.
        let heir = try Client(daemon)
        try heir.subscribe(["slow"], concurrency: 1)
        let redelivered = try heir.nextDelivery()
        #expect(redelivered?.id == "held")
        #expect(redelivered?.attempt == 2)
        // The daemon stopped answering at its 300 KiB cap: reading now, the client finds some replies, then
        // SLOW_CONSUMER, then the end of the stream.
        let frames = try slow.raw.readUntilClosed(timeoutSeconds: 30)
        let replies = frames.filter { $0.message.type == .tasks }
        #expect(replies.count < 60, "all \(replies.count) replies were buffered")
        if let last = frames.last { expectError(last.message, .slowConsumer) } else { Issue.record("no frames") }
        #expect(try scheduler.call(.ping).type == .pong)
        #expect(try daemon.stop() == 0)
    }
}
