import Testing
import TaskShedProtocol
import TaskShedTestSupport

/// Frames of 256 KiB and more are decoded and checked on the thread pool (`Server+LargeFrames`): the results
/// and errors must be those of a frame decoded on the loop, and the connection's requests take effect in the order sent.
@Suite("Large frames off the loop")
struct LargeFrameTests {
    /// An ADD_TASKS of `count` tasks with ~100-byte kwargs (3,000 make ~400 KB), the task at `badIndex` (if any)
    /// with an empty callback.
    static func bigAdd(_ prefix: String, _ count: Int, badIndex: Int? = nil) -> Message {
        let kwargs = "{\"pad\":\"" + String(repeating: "p", count: 90) + "\"}"
        return .addTasks(AddTasks(tasks: (0..<count).map {
            task("\(prefix)\($0)", callback: $0 == badIndex ? "" : "big", runAt: nowMicros() + 3_600_000_000, kwargs: kwargs)
        }))
    }

    @Test func largeRequestsGetTheRepliesAndErrorsOfSmallOnesInTheirOrder() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        var bytes: [UInt8] = []
        FrameEncoder.encode(Frame(requestID: 1, message: Self.bigAdd("a", 3_000)), into: &bytes)
        FrameEncoder.encode(Frame(requestID: 2, message: .fetchTasks(.ids(["a2999"]))), into: &bytes)
        FrameEncoder.encode(Frame(requestID: 3, message: Self.bigAdd("b", 3_000, badIndex: 1_500)), into: &bytes)
        // An ADD_TASKS header over 300 KB of garbage: a malformed message, not a fatal error.
        var garbage: [UInt8] = [0x00, 0x04, 0x93, 0xE8, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04]
        garbage += [UInt8](repeating: 0xFF, count: 300_000)
        bytes += garbage
        FrameEncoder.encode(Frame(requestID: 5, message: .ping), into: &bytes)
        try client.raw.send(bytes: bytes)
        // Replies are matched by id (a durable change's reply waits for the disk); requests take effect in order:
        // the FETCH sees the ADD before it.
        var answers: [UInt32: Message] = [:]
        while answers.count < 5, let frame = try client.raw.receive(timeoutSeconds: 20) {
            answers[frame.requestID] = frame.message
        }
        if case .added(let results) = answers[1] { #expect(results.count == 3_000) } else { Issue.record("\(String(describing: answers[1]))") }
        if case .tasks(let tasks) = answers[2] { #expect(tasks.map(\.id) == ["a2999"]) } else { Issue.record("FETCH") }
        if let reply = answers[3] { expectError(reply, .invalidArgument, field: "tasks[1500].callback") } else { Issue.record("no reply 3") }
        if let reply = answers[4] { expectError(reply, .malformedMessage) } else { Issue.record("no reply 4") }
        #expect(answers[5]?.type == .pong)
        // Nothing of the refused batch was added.
        #expect(try client.fetch(["b0", "b2999"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test func anAckSentAfterALargeFrameBeforeTheCloseIsApplied() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        try expectAckAndReleaseWinOverTheClose(daemon, scheduler) { connection, acked, released in
            try connection.send(Frame(requestID: 1, message: Self.bigAdd("c", 3_000)),
                                Frame(requestID: 2, message: .ack(acked)), Frame(requestID: 3, message: .release(released)))
        }
        #expect(try scheduler.fetch(["c0"]).count == 1)
        #expect(try daemon.stop() == 0)
    }
}
