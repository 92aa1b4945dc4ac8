import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Every request vector of proto-spec, sent as raw bytes to a real daemon, gets a reply of a type the
/// specification lists for it; every error vector gets its error, and the connection closes exactly when the
/// error is fatal. One daemon serves the whole suite (the vectors are independent of each other's state, and
/// replies that depend on state, such as ACK of a lease nobody holds, list every allowed outcome).
@Suite(.serialized) struct ProtocolVectorServerTests {
    /// Reply types the specification allows for each request type (ERROR codes where the vector's task ids or
    /// leases do not exist in a fresh store).
    static let allowedReplies: [String: (types: Set<MessageType>, errors: Set<ErrorCode>)] = [
        "HELLO": ([.helloOK], []),
        "PING": ([.pong], []),
        "ADD_TASKS": ([.added], []),
        "FETCH_TASKS": ([.tasks], []),
        // A vector's cursor was not returned by this server's previous page: the store refuses it.
        "LIST_TASKS": ([.taskPage], [.invalidArgument]),
        "PAUSE_TASKS": ([.affected], []),
        "RESUME_TASKS": ([.affected], []),
        "REMOVE_TASKS": ([.affected], []),
        "UPDATE_RUN_TIMES": ([.affected], [.taskNotFound]),
        "RETRY_DEAD": ([.affected], []),
        "PURGE_DEAD": ([.affected], []),
        "GET_STATS": ([.stats], []),
        "GET_DAEMONS": ([.daemons], []),
        "GET_HISTORY": ([.history], []),
        "GET_METRICS": ([.metrics], []),
        "SUBSCRIBE": ([.subscribed], []),
        "SUBSCRIBE_AHEAD": ([.subscribed], []),
        "UNSUBSCRIBE": ([.ok], []),
        "CLAIM": ([.tasks], []),
        "ACK": ([.ok], [.leaseLost]),
        "FAIL": ([.ok], [.leaseLost]),
        "TOUCH": ([.leaseExtended], [.leaseLost]),
        "RELEASE": ([.ok], [.leaseLost]),
    ]

    @Test func everyRequestVectorGetsADocumentedReply() throws {
        let daemon = try DaemonProcess()
        let vectors = try loadVectors().filter { $0.direction == .clientToServer && $0.expectation == .valid }
        #expect(vectors.count >= 19)
        var seenTypes = Set<String>()
        for vector in vectors {
            guard let name = vector.messageName, let allowed = Self.allowedReplies[name] else {
                Issue.record("vector \(vector.name) has a request type the test does not know")
                continue
            }
            seenTypes.insert(name)
            let connection = try RawConnection(path: daemon.socketPath)
            if name != "HELLO" { try connection.handshake(version: vector.connectionVersion) }
            try connection.send(bytes: vector.bytes)
            let requestID = vector.bytes.count >= 12
                ? UInt32(vector.bytes[8]) << 24 | UInt32(vector.bytes[9]) << 16 | UInt32(vector.bytes[10]) << 8
                    | UInt32(vector.bytes[11]) : 0
            var skipped: [Frame] = []
            let reply = try connection.receive(requestID: requestID, timeoutSeconds: 15, skipped: &skipped)
            switch reply.message {
            case .error(let error):
                #expect(allowed.errors.contains(error.code),
                        "\(vector.name): ERROR \(error.code.name) \(error.message)")
            default:
                #expect(allowed.types.contains(reply.message.type), "\(vector.name): \(reply.message.type)")
            }
            // The connection is still usable after every valid request.
            let pong = try connection.request(.ping, id: 999)
            #expect(pong.type == .pong, "\(vector.name): PING after it answered \(pong)")
        }
        #expect(seenTypes == Set(Self.allowedReplies.keys), "request types without a vector: \(Set(Self.allowedReplies.keys).subtracting(seenTypes))")
        #expect(try daemon.stop() == 0)
    }

    @Test func everyErrorVectorGetsItsErrorAndFatalOnesClose() throws {
        let daemon = try DaemonProcess()
        let healthy = try daemon.connect()
        let vectors = try loadVectors().filter { $0.direction == .clientToServer }
        var checked = 0
        for vector in vectors {
            guard case .error(let code, let fatal) = vector.expectation else { continue }
            checked += 1
            let connection = try daemon.connect()
            try connection.send(bytes: vector.bytes)
            guard let reply = try connection.receive(timeoutSeconds: 15) else {
                Issue.record("\(vector.name): closed without an ERROR")
                continue
            }
            guard case .error(let error) = reply.message else {
                Issue.record("\(vector.name): expected ERROR \(code.name), got \(reply.message)")
                continue
            }
            #expect(error.code == code, "\(vector.name): \(error.message)")
            if let field = vector.field {
                #expect(error.field == field, "\(vector.name): field \(error.field ?? "nil")")
            }
            if fatal {
                #expect(try connection.readUntilClosed(timeoutSeconds: 15).isEmpty, "\(vector.name)")
            } else {
                #expect(try connection.request(.ping, id: 7).type == .pong, "\(vector.name): connection lost")
            }
            #expect(try healthy.request(.ping, id: 8).type == .pong, "\(vector.name) harmed another client")
        }
        #expect(checked >= 15)
        #expect(try daemon.stop() == 0)
    }

    @Test func serverToClientTypesSentByAClientAreUnknownRequests() throws {
        let daemon = try DaemonProcess()
        let connection = try daemon.connect()
        let vectors = try loadVectors().filter { $0.direction == .serverToClient && $0.expectation == .valid }
        #expect(!vectors.isEmpty)
        for vector in vectors {
            try connection.send(bytes: vector.bytes)
            guard let reply = try connection.receive(timeoutSeconds: 15) else {
                Issue.record("\(vector.name): connection closed")
                return
            }
            guard case .error(let error) = reply.message else {
                Issue.record("\(vector.name): expected UNKNOWN_MESSAGE_TYPE, got \(reply.message)")
                continue
            }
            #expect(error.code == .unknownMessageType, "\(vector.name)")
        }
        #expect(try connection.request(.ping, id: 5).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    @Test func incompleteVectorsThenCloseLeaveTheDaemonServing() throws {
        let daemon = try DaemonProcess()
        let healthy = try daemon.connect()
        for vector in try loadVectors() where vector.expectation == .incomplete {
            let connection = try daemon.connect()
            try connection.send(bytes: vector.bytes)
            connection.close()
            #expect(try healthy.request(.ping, id: 9).type == .pong, "\(vector.name)")
        }
        #expect(try daemon.stop() == 0)
    }
}
