import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

@Suite struct PipeliningTests {
    @Test func pipelinedRequestsTakeEffectInOrderAndEachGetsOneReply() throws {
        let daemon = try DaemonProcess()
        let connection = try daemon.connect()
        // One write carrying: add, fetch (must see the add), pause, fetch (must see the pause), remove, fetch.
        try connection.send(
            Frame(requestID: 1, message: .addTasks(AddTasks(tasks: [task("p1", runAt: nowMicros() + 3_600_000_000)]))),
            Frame(requestID: 2, message: .fetchTasks(.ids(["p1"]))),
            Frame(requestID: 3, message: .pauseTasks(.ids(["p1"]))),
            Frame(requestID: 4, message: .fetchTasks(.ids(["p1"]))),
            Frame(requestID: 5, message: .ping),
            Frame(requestID: 6, message: .removeTasks(.ids(["p1"]))),
            Frame(requestID: 7, message: .fetchTasks(.ids(["p1"]))))
        var replies: [UInt32: Message] = [:]
        while replies.count < 7 {
            guard let frame = try connection.receive() else {
                Issue.record("closed after \(replies.count) replies")
                return
            }
            #expect(replies[frame.requestID] == nil, "two replies to request \(frame.requestID)")
            replies[frame.requestID] = frame.message
        }
        #expect(replies[1]?.type == .added)
        guard case .tasks(let first) = replies[2], case .tasks(let second) = replies[4],
              case .tasks(let third) = replies[7] else {
            Issue.record("unexpected replies: \(replies)")
            return
        }
        #expect(first.map(\.id) == ["p1"])
        #expect(first.first?.paused == false)
        #expect(second.first?.paused == true)
        #expect(third.isEmpty)
        #expect(replies[3] == .affected(1))
        #expect(replies[6] == .affected(1))
        #expect(replies[5]?.type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func manyClientsAddingAtOnceAreAllAcknowledged() throws {
        let daemon = try DaemonProcess()
        let clients = try (0..<8).map { _ in try daemon.connect() }
        // Every client pipelines 20 adds before reading: they share group commits.
        for (index, client) in clients.enumerated() {
            var bytes: [UInt8] = []
            for batch in 0..<20 {
                FrameEncoder.encode(Frame(requestID: UInt32(batch + 1), message: .addTasks(AddTasks(tasks: [
                    task("c\(index)-\(batch)", runAt: nowMicros() + 3_600_000_000),
                ]))), into: &bytes)
            }
            try client.send(bytes: bytes)
        }
        for client in clients {
            var seen = Set<UInt32>()
            while seen.count < 20 {
                guard let frame = try client.receive() else { break }
                #expect(frame.message.type == .added)
                seen.insert(frame.requestID)
            }
            #expect(seen.count == 20)
        }
        let checker = try Client(daemon)
        let ids = (0..<8).flatMap { index in (0..<20).map { "c\(index)-\($0)" } }
        #expect(try checker.fetch(ids).count == ids.count)
        #expect(try daemon.stop() == 0)
    }
}
