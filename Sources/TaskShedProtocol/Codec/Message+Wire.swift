extension Message {
    /// Appends this message's payload (not the frame header).
    /// - Parameter writer: The writer to append to.
    public func encodePayload(to writer: inout ByteWriter) {
        switch self {
        case .hello(let v): v.encode(to: &writer)
        case .ping, .getStats, .getDaemons, .getMetrics, .unsubscribe, .ok: break
        case .getHistory(let v): v.encode(to: &writer)
        case .addTasks(let v): v.encode(to: &writer)
        case .fetchTasks(let s), .pauseTasks(let s), .resumeTasks(let s), .removeTasks(let s), .retryDead(let s),
            .purgeDead(let s):
            s.encode(to: &writer)
        case .listTasks(let v): v.encode(to: &writer)
        case .updateRunTimes(let v): writer.writeList(v)
        case .subscribe(let v): v.encode(to: &writer)
        case .claim(let v): v.encode(to: &writer)
        case .subscribeAhead(let v, let ahead):
            v.encode(to: &writer)
            writer.writeI64(ahead)
        case .ack(let v), .release(let v), .revoke(let v): v.encode(to: &writer)
        case .fail(let v): v.encode(to: &writer)
        case .touch(let v): v.encode(to: &writer)
        case .helloOK(let v): v.encode(to: &writer)
        case .pong(let v): v.encode(to: &writer)
        case .added(let v): writer.writeList(v)
        case .tasks(let v): writer.writeList(v)
        case .taskPage(let v): v.encode(to: &writer)
        case .affected(let count): writer.writeU64(count)
        case .stats(let v): v.encode(to: &writer)
        case .daemons(let v): writer.writeList(v)
        case .history(let v): v.encode(to: &writer)
        case .metrics(let text): writer.writeBytes(text)
        case .subscribed(let v): v.encode(to: &writer)
        case .delivery(let v): v.encode(to: &writer)
        case .leaseExtended(let deadline): writer.writeI64(deadline)
        case .error(let v): v.encode(to: &writer)
        }
    }

    /// Reads the payload of a message of the given type; the caller checks that nothing trails it.
    /// - Parameters:
    ///   - type: The frame's message type.
    ///   - reader: A reader over exactly the payload.
    /// - Returns: The message.
    /// - Throws: `.malformedMessage` naming the field at fault (for selector payloads `selector.…`).
    public static func decodePayload(
        _ type: MessageType, from reader: inout ByteReader
    ) throws(ProtocolError) -> Message {
        switch type {
        case .hello: return .hello(try reader.read(Hello.self))
        case .ping: return .ping
        case .addTasks: return .addTasks(try reader.read(AddTasks.self))
        case .fetchTasks: return .fetchTasks(try reader.read(TaskSelector.self, field: "selector"))
        case .listTasks: return .listTasks(try reader.read(ListTasks.self))
        case .pauseTasks: return .pauseTasks(try reader.read(TaskSelector.self, field: "selector"))
        case .resumeTasks: return .resumeTasks(try reader.read(TaskSelector.self, field: "selector"))
        case .removeTasks: return .removeTasks(try reader.read(TaskSelector.self, field: "selector"))
        case .updateRunTimes: return .updateRunTimes(try reader.readList(of: RunTimeUpdate.self, field: "updates"))
        case .retryDead: return .retryDead(try reader.read(TaskSelector.self, field: "selector"))
        case .purgeDead: return .purgeDead(try reader.read(TaskSelector.self, field: "selector"))
        case .getStats: return .getStats
        case .getDaemons: return .getDaemons
        case .getHistory: return .getHistory(try reader.read(HistoryQuery.self))
        case .getMetrics: return .getMetrics
        case .subscribe: return .subscribe(try reader.read(Subscribe.self))
        case .unsubscribe: return .unsubscribe
        case .claim: return .claim(try reader.read(Claim.self))
        case .ack: return .ack(try reader.read(LeaseRef.self))
        case .fail: return .fail(try reader.read(Fail.self))
        case .touch: return .touch(try reader.read(Touch.self))
        case .release: return .release(try reader.read(LeaseRef.self))
        case .subscribeAhead:
            let subscribe = try reader.read(Subscribe.self)
            return .subscribeAhead(subscribe, aheadMicros: try reader.readI64(field: "ahead_us"))
        case .helloOK: return .helloOK(try reader.read(HelloOK.self))
        case .pong: return .pong(try reader.read(Pong.self))
        case .ok: return .ok
        case .added: return .added(try reader.readList(of: AddResult.self, field: "results"))
        case .tasks: return .tasks(try reader.readList(of: TaskRecord.self, field: "tasks"))
        case .taskPage: return .taskPage(try reader.read(TaskPage.self))
        case .affected: return .affected(try reader.readU64(field: "count"))
        case .stats: return .stats(try reader.read(Stats.self))
        case .daemons: return .daemons(try reader.readList(of: DaemonInfo.self, field: "daemons"))
        case .history: return .history(try reader.read(HistoryPage.self))
        case .metrics: return .metrics(try reader.readBytes(field: "text"))
        case .subscribed: return .subscribed(try reader.read(Subscribed.self))
        case .delivery: return .delivery(try reader.read(TaskRecord.self, field: "task"))
        case .revoke: return .revoke(try reader.read(LeaseRef.self))
        case .leaseExtended: return .leaseExtended(deadline: try reader.readI64(field: "deadline"))
        case .error: return .error(try reader.read(ErrorReply.self))
        }
    }
}

extension MessageType {
    /// The specification's name of this type ("ADD_TASKS"), as used in `PROTOCOL.md` and the vector files.
    public var name: String {
        switch self {
        case .hello: return "HELLO"
        case .ping: return "PING"
        case .addTasks: return "ADD_TASKS"
        case .fetchTasks: return "FETCH_TASKS"
        case .listTasks: return "LIST_TASKS"
        case .pauseTasks: return "PAUSE_TASKS"
        case .resumeTasks: return "RESUME_TASKS"
        case .removeTasks: return "REMOVE_TASKS"
        case .updateRunTimes: return "UPDATE_RUN_TIMES"
        case .retryDead: return "RETRY_DEAD"
        case .purgeDead: return "PURGE_DEAD"
        case .getStats: return "GET_STATS"
        case .getDaemons: return "GET_DAEMONS"
        case .getHistory: return "GET_HISTORY"
        case .getMetrics: return "GET_METRICS"
        case .subscribe: return "SUBSCRIBE"
        case .unsubscribe: return "UNSUBSCRIBE"
        case .claim: return "CLAIM"
        case .ack: return "ACK"
        case .fail: return "FAIL"
        case .touch: return "TOUCH"
        case .release: return "RELEASE"
        case .subscribeAhead: return "SUBSCRIBE_AHEAD"
        case .helloOK: return "HELLO_OK"
        case .pong: return "PONG"
        case .ok: return "OK"
        case .added: return "ADDED"
        case .tasks: return "TASKS"
        case .taskPage: return "TASK_PAGE"
        case .affected: return "AFFECTED"
        case .stats: return "STATS"
        case .daemons: return "DAEMONS"
        case .history: return "HISTORY"
        case .metrics: return "METRICS"
        case .subscribed: return "SUBSCRIBED"
        case .delivery: return "DELIVERY"
        case .revoke: return "REVOKE"
        case .leaseExtended: return "LEASE_EXTENDED"
        case .error: return "ERROR"
        }
    }

    /// The type with the given specification name, if any.
    /// - Parameter name: A name such as "ADD_TASKS".
    public init?(name: String) {
        guard let match = MessageType.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}
