// Wire layouts of the payload structs; field order = stored-property order (see PROTOCOL.md, "Messages").
// Field names in errors are the specification's snake_case names.

extension Hello: WireCodable {
    /// `min_version u16 | max_version u16 | client_name string`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU16(minVersion)
        writer.writeU16(maxVersion)
        writer.writeString(clientName)
    }

    /// Reads a hello.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Hello {
        Hello(
            minVersion: try reader.readU16(field: "min_version"),
            maxVersion: try reader.readU16(field: "max_version"),
            clientName: try reader.readString(field: "client_name"))
    }

    /// 2 + 2 + 2.
    public static var minimumEncodedBytes: Int { 6 }
}

extension HelloOK: WireCodable {
    /// `version u16 | server_name string | server_version string | max_frame_bytes u32 | max_batch u32 |
    /// max_kwargs_bytes u32 | default_lease_us i64 | connection_id u64`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU16(version)
        writer.writeString(serverName)
        writer.writeString(serverVersion)
        writer.writeU32(maxFrameBytes)
        writer.writeU32(maxBatch)
        writer.writeU32(maxKwargsBytes)
        writer.writeI64(defaultLeaseMicros)
        writer.writeU64(connectionID)
    }

    /// Reads a hello reply.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> HelloOK {
        HelloOK(
            version: try reader.readU16(field: "version"),
            serverName: try reader.readString(field: "server_name"),
            serverVersion: try reader.readString(field: "server_version"),
            maxFrameBytes: try reader.readU32(field: "max_frame_bytes"),
            maxBatch: try reader.readU32(field: "max_batch"),
            maxKwargsBytes: try reader.readU32(field: "max_kwargs_bytes"),
            defaultLeaseMicros: try reader.readI64(field: "default_lease_us"),
            connectionID: try reader.readU64(field: "connection_id"))
    }

    /// 2 + 2 + 2 + 4 + 4 + 4 + 8 + 8.
    public static var minimumEncodedBytes: Int { 34 }
}

extension Pong: WireCodable {
    /// `server_time i64 | next_wakeup opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeI64(serverTime)
        writer.writeOptionalI64(nextWakeup)
    }

    /// Reads a pong.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Pong {
        Pong(
            serverTime: try reader.readI64(field: "server_time"),
            nextWakeup: try reader.readOptionalI64(field: "next_wakeup"))
    }

    /// 8 + 1.
    public static var minimumEncodedBytes: Int { 9 }
}

extension AddTasks: WireCodable {
    /// `on_conflict u8 | tasks list<TaskSpec>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU8(onConflict.rawValue)
        writer.writeList(tasks)
    }

    /// Reads an add-tasks request.
    /// - Throws: `.malformedMessage` naming the field at fault (`tasks[i].…`).
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> AddTasks {
        AddTasks(
            onConflict: try reader.readEnum(ConflictPolicy.self, field: "on_conflict"),
            tasks: try reader.readList(of: TaskSpec.self, field: "tasks"))
    }

    /// 1 + 4.
    public static var minimumEncodedBytes: Int { 5 }
}

extension AddResult: WireCodable {
    /// `id string | outcome u8`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(id)
        writer.writeU8(outcome.rawValue)
    }

    /// Reads one add result.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> AddResult {
        AddResult(
            id: try reader.readString(field: "id"),
            outcome: try reader.readEnum(AddOutcome.self, field: "outcome"))
    }

    /// 2 + 1.
    public static var minimumEncodedBytes: Int { 3 }
}

extension TaskFilter: WireCodable {
    /// `group opt<string> | state opt<u8> | callback opt<string> | due_after opt<i64> | due_before opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeOptionalString(group)
        writer.writeOptional(state) { w, s in w.writeU8(s.rawValue) }
        writer.writeOptionalString(callback)
        writer.writeOptionalI64(dueAfter)
        writer.writeOptionalI64(dueBefore)
    }

    /// Reads a filter.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> TaskFilter {
        TaskFilter(
            group: try reader.readOptionalString(field: "group"),
            state: try reader.readOptional(field: "state") { (r: inout ByteReader) throws(ProtocolError) in
                try r.readEnum(StateFilter.self)
            },
            callback: try reader.readOptionalString(field: "callback"),
            dueAfter: try reader.readOptionalI64(field: "due_after"),
            dueBefore: try reader.readOptionalI64(field: "due_before"))
    }

    /// Five absent optionals.
    public static var minimumEncodedBytes: Int { 5 }
}

extension ListTasks: WireCodable {
    /// `filter TaskFilter | limit u32 | cursor opt<bytes>`.
    public func encode(to writer: inout ByteWriter) {
        filter.encode(to: &writer)
        writer.writeU32(limit)
        writer.writeOptional(cursor) { w, c in w.writeBytes(c) }
    }

    /// Reads a list request.
    /// - Throws: `.malformedMessage` naming the field at fault (`filter.…`, `limit`, `cursor`).
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> ListTasks {
        ListTasks(
            filter: try reader.read(TaskFilter.self, field: "filter"),
            limit: try reader.readU32(field: "limit"),
            cursor: try reader.readOptional(field: "cursor") { (r: inout ByteReader) throws(ProtocolError) in
                try r.readBytes()
            })
    }

    /// 5 + 4 + 1.
    public static var minimumEncodedBytes: Int { 10 }
}

extension TaskPage: WireCodable {
    /// `tasks list<TaskRecord> | next_cursor opt<bytes>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeList(tasks)
        writer.writeOptional(nextCursor) { w, c in w.writeBytes(c) }
    }

    /// Reads a page.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> TaskPage {
        TaskPage(
            tasks: try reader.readList(of: TaskRecord.self, field: "tasks"),
            nextCursor: try reader.readOptional(field: "next_cursor") {
                (r: inout ByteReader) throws(ProtocolError) in try r.readBytes()
            })
    }

    /// 4 + 1.
    public static var minimumEncodedBytes: Int { 5 }
}

extension RunTimeUpdate: WireCodable {
    /// `id string | run_at i64`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(id)
        writer.writeI64(runAt)
    }

    /// Reads one update.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> RunTimeUpdate {
        RunTimeUpdate(id: try reader.readString(field: "id"), runAt: try reader.readI64(field: "run_at"))
    }

    /// 2 + 8.
    public static var minimumEncodedBytes: Int { 10 }
}

extension Subscribe: WireCodable {
    /// `callbacks list<string> | concurrency u32 | lease_us opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeStringList(callbacks)
        writer.writeU32(concurrency)
        writer.writeOptionalI64(leaseMicros)
    }

    /// Reads a subscribe request.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Subscribe {
        Subscribe(
            callbacks: try reader.readStringList(field: "callbacks"),
            concurrency: try reader.readU32(field: "concurrency"),
            leaseMicros: try reader.readOptionalI64(field: "lease_us"))
    }

    /// 4 + 4 + 1.
    public static var minimumEncodedBytes: Int { 9 }
}

extension Subscribed: WireCodable {
    /// `lease_us i64`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeI64(leaseMicros)
    }

    /// Reads a subscribe reply.
    /// - Throws: `.malformedMessage` when truncated.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Subscribed {
        Subscribed(leaseMicros: try reader.readI64(field: "lease_us"))
    }

    /// 8.
    public static var minimumEncodedBytes: Int { 8 }
}

extension Claim: WireCodable {
    /// `callbacks list<string> | max u32 | lease_us opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeStringList(callbacks)
        writer.writeU32(max)
        writer.writeOptionalI64(leaseMicros)
    }

    /// Reads a claim request.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Claim {
        Claim(
            callbacks: try reader.readStringList(field: "callbacks"),
            max: try reader.readU32(field: "max"),
            leaseMicros: try reader.readOptionalI64(field: "lease_us"))
    }

    /// 4 + 4 + 1.
    public static var minimumEncodedBytes: Int { 9 }
}

extension LeaseRef: WireCodable {
    /// `id string | attempt u32`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(id)
        writer.writeU32(attempt)
    }

    /// Reads a lease reference.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> LeaseRef {
        LeaseRef(id: try reader.readString(field: "id"), attempt: try reader.readU32(field: "attempt"))
    }

    /// 2 + 4.
    public static var minimumEncodedBytes: Int { 6 }
}

extension Fail: WireCodable {
    /// `lease LeaseRef | error string | retry bool`.
    public func encode(to writer: inout ByteWriter) {
        lease.encode(to: &writer)
        writer.writeString(error)
        writer.writeBool(retry)
    }

    /// Reads a fail request.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Fail {
        Fail(
            lease: try reader.read(LeaseRef.self, field: "lease"),
            error: try reader.readString(field: "error"),
            retry: try reader.readBool(field: "retry"))
    }

    /// 6 + 2 + 1.
    public static var minimumEncodedBytes: Int { 9 }
}

extension Touch: WireCodable {
    /// `lease LeaseRef | extend_us opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        lease.encode(to: &writer)
        writer.writeOptionalI64(extendMicros)
    }

    /// Reads a touch request.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Touch {
        Touch(
            lease: try reader.read(LeaseRef.self, field: "lease"),
            extendMicros: try reader.readOptionalI64(field: "extend_us"))
    }

    /// 6 + 1.
    public static var minimumEncodedBytes: Int { 7 }
}

extension CallbackStats: WireCodable {
    /// `callback string | scheduled u64 | due u64 | leased u64 | dead u64 | workers u32`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(callback)
        writer.writeU64(scheduled)
        writer.writeU64(due)
        writer.writeU64(leased)
        writer.writeU64(dead)
        writer.writeU32(workers)
    }

    /// Reads per-callback figures.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> CallbackStats {
        CallbackStats(
            callback: try reader.readString(field: "callback"),
            scheduled: try reader.readU64(field: "scheduled"),
            due: try reader.readU64(field: "due"),
            leased: try reader.readU64(field: "leased"),
            dead: try reader.readU64(field: "dead"),
            workers: try reader.readU32(field: "workers"))
    }

    /// 2 + 4 × 8 + 4.
    public static var minimumEncodedBytes: Int { 38 }
}

extension LagSummary: WireCodable {
    /// `count u64 | p50 i64 | p90 i64 | p99 i64 | max i64`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU64(count)
        writer.writeI64(p50)
        writer.writeI64(p90)
        writer.writeI64(p99)
        writer.writeI64(max)
    }

    /// Reads a lag summary.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> LagSummary {
        LagSummary(
            count: try reader.readU64(field: "count"),
            p50: try reader.readI64(field: "p50"),
            p90: try reader.readI64(field: "p90"),
            p99: try reader.readI64(field: "p99"),
            max: try reader.readI64(field: "max"))
    }

    /// 5 × 8.
    public static var minimumEncodedBytes: Int { 40 }
}

extension Stats: WireCodable {
    /// `server_version string | server_time i64 | started_at i64 | pending u64 | due u64 | paused u64 |
    /// leased u64 | dead u64 | waiting_for_worker u64 | next_wakeup opt<i64> | connections u32 |
    /// callbacks list<CallbackStats> | store_file_bytes u64 | store_map_bytes u64 | store_used_bytes u64 |
    /// lag LagSummary`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(serverVersion)
        writer.writeI64(serverTime)
        writer.writeI64(startedAt)
        writer.writeU64(pending)
        writer.writeU64(due)
        writer.writeU64(paused)
        writer.writeU64(leased)
        writer.writeU64(dead)
        writer.writeU64(waitingForWorker)
        writer.writeOptionalI64(nextWakeup)
        writer.writeU32(connections)
        writer.writeList(callbacks)
        writer.writeU64(storeFileBytes)
        writer.writeU64(storeMapBytes)
        writer.writeU64(storeUsedBytes)
        lag.encode(to: &writer)
    }

    /// Reads statistics.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Stats {
        Stats(
            serverVersion: try reader.readString(field: "server_version"),
            serverTime: try reader.readI64(field: "server_time"),
            startedAt: try reader.readI64(field: "started_at"),
            pending: try reader.readU64(field: "pending"),
            due: try reader.readU64(field: "due"),
            paused: try reader.readU64(field: "paused"),
            leased: try reader.readU64(field: "leased"),
            dead: try reader.readU64(field: "dead"),
            waitingForWorker: try reader.readU64(field: "waiting_for_worker"),
            nextWakeup: try reader.readOptionalI64(field: "next_wakeup"),
            connections: try reader.readU32(field: "connections"),
            callbacks: try reader.readList(of: CallbackStats.self, field: "callbacks"),
            storeFileBytes: try reader.readU64(field: "store_file_bytes"),
            storeMapBytes: try reader.readU64(field: "store_map_bytes"),
            storeUsedBytes: try reader.readU64(field: "store_used_bytes"),
            lag: try reader.read(LagSummary.self, field: "lag"))
    }

    /// 2 + 8 × 8 + 1 + 4 + 4 + 3 × 8 + 40.
    public static var minimumEncodedBytes: Int { 139 }
}

extension DaemonInfo: WireCodable {
    /// `name string | host string | pid u32 | started_at i64 | heartbeat_age_us i64 | leased u64 |
    /// this_daemon bool`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(name)
        writer.writeString(host)
        writer.writeU32(pid)
        writer.writeI64(startedAt)
        writer.writeI64(heartbeatAgeMicros)
        writer.writeU64(leased)
        writer.writeBool(isThisDaemon)
    }

    /// Reads one daemon's entry.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> DaemonInfo {
        DaemonInfo(
            name: try reader.readString(field: "name"),
            host: try reader.readString(field: "host"),
            pid: try reader.readU32(field: "pid"),
            startedAt: try reader.readI64(field: "started_at"),
            heartbeatAgeMicros: try reader.readI64(field: "heartbeat_age_us"),
            leased: try reader.readU64(field: "leased"),
            isThisDaemon: try reader.readBool(field: "this_daemon"))
    }

    /// 2 + 2 + 4 + 3 × 8 + 1.
    public static var minimumEncodedBytes: Int { 33 }
}

extension ErrorReply: WireCodable {
    /// `code u16 | field opt<string> | message string`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU16(code.rawValue)
        writer.writeOptionalString(field)
        writer.writeString(message)
    }

    /// Reads an error reply; unknown codes are kept (a client treats them as not retriable).
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> ErrorReply {
        ErrorReply(
            code: ErrorCode(rawValue: try reader.readU16(field: "code")),
            field: try reader.readOptionalString(field: "field"),
            message: try reader.readString(field: "message"))
    }

    /// 2 + 1 + 2.
    public static var minimumEncodedBytes: Int { 5 }
}
