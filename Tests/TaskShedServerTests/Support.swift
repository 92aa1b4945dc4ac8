import Glibc
import TaskShedProtocol
import TaskShedServer
import TaskShedTestSupport
import Testing

/// The wall clock in µs.
func nowMicros() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
}

/// Monotonic seconds, for test deadlines.
func monotonic() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Sleeps for `seconds`.
func pause(_ seconds: Double) {
    usleep(UInt32(seconds * 1_000_000))
}

/// A request-id counter per connection helper.
final class Requests: @unchecked Sendable {
    private var next: UInt32 = 100
    func id() -> UInt32 {
        next += 1
        return next
    }
}

/// A scheduler/worker test client over a raw connection.
final class Client: @unchecked Sendable {
    let raw: RawConnection
    let ids = Requests()
    /// Deliveries read while waiting for other replies.
    var pendingDeliveries: [TaskRecord] = []
    /// Other unsolicited frames (errors with id 0...).
    var unsolicited: [Frame] = []
    var subscribeID: UInt32?

    init(_ daemon: DaemonProcess) throws {
        raw = try daemon.connect()
    }

    init(path: String, version: UInt16 = 1, clientName: String = "taskshed-tests") throws {
        raw = try RawConnection(path: path)
        try raw.handshake(clientName: clientName, version: version)
    }

    /// Sends a request and returns its reply; deliveries that arrive meanwhile are kept.
    func call(_ message: Message, timeout: Double = 15) throws -> Message {
        let id = ids.id()
        try raw.send(Frame(requestID: id, message: message))
        var skipped: [Frame] = []
        let reply = try raw.receive(requestID: id, timeoutSeconds: timeout, skipped: &skipped)
        absorb(skipped)
        return reply.message
    }

    private func absorb(_ frames: [Frame]) {
        for frame in frames {
            if case .delivery(let task) = frame.message, frame.requestID == subscribeID {
                pendingDeliveries.append(task)
            } else {
                unsolicited.append(frame)
            }
        }
    }

    @discardableResult
    func add(_ tasks: [TaskSpec], onConflict: ConflictPolicy = .replace) throws -> [AddResult] {
        let reply = try call(.addTasks(AddTasks(onConflict: onConflict, tasks: tasks)))
        guard case .added(let results) = reply else { throw TestSupportError("ADD_TASKS answered \(reply)") }
        return results
    }

    func fetch(_ ids: [String]) throws -> [TaskRecord] {
        let reply = try call(.fetchTasks(.ids(ids)))
        guard case .tasks(let tasks) = reply else { throw TestSupportError("FETCH answered \(reply)") }
        return tasks
    }

    func affected(_ message: Message) throws -> UInt64 {
        let reply = try call(message)
        guard case .affected(let count) = reply else { throw TestSupportError("\(message.type.name) answered \(reply)") }
        return count
    }

    func stats() throws -> Stats {
        let reply = try call(.getStats)
        guard case .stats(let stats) = reply else { throw TestSupportError("GET_STATS answered \(reply)") }
        return stats
    }

    func subscribe(_ callbacks: [String], concurrency: UInt32 = 1, leaseMicros: Int64? = nil) throws {
        let id = ids.id()
        subscribeID = id
        try raw.send(Frame(requestID: id, message: .subscribe(Subscribe(callbacks: callbacks, concurrency: concurrency,
                                                                        leaseMicros: leaseMicros))))
        var skipped: [Frame] = []
        let reply = try raw.receive(requestID: id, timeoutSeconds: 15, skipped: &skipped)
        absorb(skipped)
        guard case .subscribed = reply.message else { throw TestSupportError("SUBSCRIBE answered \(reply.message)") }
    }

    /// The next pushed task, or `nil` if none arrives within `timeout`.
    func nextDelivery(timeout: Double = 15) throws -> TaskRecord? {
        if !pendingDeliveries.isEmpty { return pendingDeliveries.removeFirst() }
        let deadline = monotonic() + timeout
        while monotonic() < deadline {
            let frame: Frame?
            do {
                frame = try raw.receive(timeoutSeconds: max(0.001, deadline - monotonic()))
            } catch let error as TestSupportError where error.message.hasPrefix("no frame") {
                return nil
            }
            guard let frame else { throw TestSupportError("connection closed while waiting for a delivery") }
            if case .delivery(let task) = frame.message, frame.requestID == subscribeID { return task }
            unsolicited.append(frame)
        }
        return nil
    }

    func ack(_ task: TaskRecord) throws -> Message {
        try call(.ack(LeaseRef(id: task.id, attempt: task.attempt)))
    }

    func fail(_ task: TaskRecord, retry: Bool, error: String = "boom") throws -> Message {
        try call(.fail(Fail(lease: LeaseRef(id: task.id, attempt: task.attempt), error: error, retry: retry)))
    }

    func claim(_ callbacks: [String], max: UInt32, leaseMicros: Int64? = nil) throws -> [TaskRecord] {
        let reply = try call(.claim(Claim(callbacks: callbacks, max: max, leaseMicros: leaseMicros)))
        guard case .tasks(let tasks) = reply else { throw TestSupportError("CLAIM answered \(reply)") }
        return tasks
    }
}

/// Expects `message` to be an ERROR with `code` (and `field` when given).
func expectError(_ message: Message, _ code: ErrorCode, field: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard case .error(let reply) = message else {
        Issue.record("expected ERROR \(code.name), got \(message)", sourceLocation: sourceLocation)
        return
    }
    #expect(reply.code == code, "message: \(reply.message)", sourceLocation: sourceLocation)
    if let field {
        #expect(reply.field == field, "message: \(reply.message)", sourceLocation: sourceLocation)
    }
}

/// The golden vectors of proto-spec.
func loadVectors() throws -> [ProtocolVector] {
    guard let directory = ProtocolVector.vectorsDirectory(forFilePath: #filePath) else {
        throw TestSupportError("proto-spec/vectors not found above \(#filePath)")
    }
    return try ProtocolVector.loadAll(inDirectory: directory)
}

/// A one-off task spec.
func task(_ id: String?, callback: String = "cb", runAt: Int64? = nil, schedule: Schedule = .once,
          kwargs: String = "{}", group: String? = nil, paused: Bool = false, coalesce: Bool = true,
          maxAttempts: UInt32 = 0) -> TaskSpec {
    TaskSpec(id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: Array(kwargs.utf8), group: group,
             paused: paused, coalesce: coalesce, maxAttempts: maxAttempts)
}

/// Reads `count` replies from `connection`, by request id, recording an issue for a second reply to one request.
/// - Returns: The replies, or `nil` (with an issue recorded) if the connection closed first.
func replies(_ count: Int, from connection: RawConnection) throws -> [UInt32: Message]? {
    var replies: [UInt32: Message] = [:]
    while replies.count < count {
        guard let frame = try connection.receive() else {
            Issue.record("closed after \(replies.count) replies")
            return nil
        }
        #expect(replies[frame.requestID] == nil, "two replies to request \(frame.requestID)")
        replies[frame.requestID] = frame.message
    }
    return replies
}

/// The case of PROTOCOL.md section 8 that several tests build in their own way: a worker connection claims due
/// tasks "b1" and "b2" (callback "bye"), `send` writes on it requests about the two leases (an ACK of b1 and a
/// RELEASE of b2, among others), and the connection closes at once. The requests must win over the close: b1
/// gone, b2 due again with the attempt not counted, neither "worker disconnected".
///
/// It waits until both have settled, not only until nothing is leased: a read racing the job that applies them
/// sees their leases end before the commit removes b1 (LAYOUT.md, "Leases"). If the close won, b1 stays and the
/// expectations fail after the deadline.
func expectAckAndReleaseWinOverTheClose(
    _ daemon: DaemonProcess, _ scheduler: Client,
    sending send: (_ connection: RawConnection, _ acked: LeaseRef, _ released: LeaseRef) throws -> Void
) throws {
    try scheduler.add([task("b1", callback: "bye"), task("b2", callback: "bye")])
    let worker = try Client(daemon)
    let held = try worker.claim(["bye"], max: 2)
    let acked = try #require(held.first { $0.id == "b1" })
    let released = try #require(held.first { $0.id == "b2" })
    try send(
        worker.raw, LeaseRef(id: acked.id, attempt: acked.attempt),
        LeaseRef(id: released.id, attempt: released.attempt))
    worker.raw.close()
    let deadline = monotonic() + 10
    var records: [TaskRecord] = []
    repeat {
        records = try scheduler.fetch(["b1", "b2"])
        if !records.contains(where: { $0.id == "b1" }) && records.allSatisfy({ $0.state != .leased }) { break }
        pause(0.02)
    } while monotonic() < deadline
    #expect(records.map(\.id) == ["b2"])
    #expect(records.first?.attempt == 0)
    #expect(records.first?.lastError == nil)
}
