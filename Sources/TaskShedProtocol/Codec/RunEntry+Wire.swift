// Wire layouts of the run history (version 3): `GET_HISTORY`'s query, `HISTORY`'s page and its entries
// (PROTOCOL.md sections 4.7 and 6.18). Field order = stored-property order; errors use the snake_case names.

extension RunEntry: WireCodable {
    /// `seq u64 | task_id string | callback string | attempt u32 | scheduled_at instant |
    /// delivered_at opt<instant> | finished_at instant | outcome u8 | then u8 | error opt<string> |
    /// worker_name string | worker_pid u32 | worker_uid u32 | daemon string`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeU64(seq)
        writer.writeString(taskID)
        writer.writeString(callback)
        writer.writeU32(attempt)
        writer.writeI64(scheduledAt)
        writer.writeOptionalI64(deliveredAt)
        writer.writeI64(finishedAt)
        writer.writeU8(outcome.rawValue)
        writer.writeU8(then.rawValue)
        writer.writeOptionalString(error)
        writer.writeString(workerName)
        writer.writeU32(workerPID)
        writer.writeU32(workerUID)
        writer.writeString(daemon)
    }

    /// Reads one history entry.
    /// - Throws: `.malformedMessage` naming the field at fault (`outcome` and `then` for a value that is not a
    ///   `RunOutcome` or `RunFollowUp`).
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> RunEntry {
        RunEntry(
            seq: try reader.readU64(field: "seq"),
            taskID: try reader.readString(field: "task_id"),
            callback: try reader.readString(field: "callback"),
            attempt: try reader.readU32(field: "attempt"),
            scheduledAt: try reader.readI64(field: "scheduled_at"),
            deliveredAt: try reader.readOptionalI64(field: "delivered_at"),
            finishedAt: try reader.readI64(field: "finished_at"),
            outcome: try reader.readEnum(RunOutcome.self, field: "outcome"),
            then: try reader.readEnum(RunFollowUp.self, field: "then"),
            error: try reader.readOptionalString(field: "error"),
            workerName: try reader.readString(field: "worker_name"),
            workerPID: try reader.readU32(field: "worker_pid"),
            workerUID: try reader.readU32(field: "worker_uid"),
            daemon: try reader.readString(field: "daemon"))
    }

    /// 8 + 2 + 2 + 4 + 8 + 1 + 8 + 1 + 1 + 1 + 2 + 4 + 4 + 2.
    public static var minimumEncodedBytes: Int { 48 }
}

extension HistoryQuery: WireCodable {
    /// `task_id opt<string> | callback opt<string> | failed_only bool | since opt<instant> | limit u32 |
    /// before opt<u64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeOptionalString(taskID)
        writer.writeOptionalString(callback)
        writer.writeBool(failedOnly)
        writer.writeOptionalI64(since)
        writer.writeU32(limit)
        writer.writeOptional(before) { w, seq in w.writeU64(seq) }
    }

    /// Reads a history query; the values are checked by the server (`limit`, `since`), not here.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> HistoryQuery {
        HistoryQuery(
            taskID: try reader.readOptionalString(field: "task_id"),
            callback: try reader.readOptionalString(field: "callback"),
            failedOnly: try reader.readBool(field: "failed_only"),
            since: try reader.readOptionalI64(field: "since"),
            limit: try reader.readU32(field: "limit"),
            before: try reader.readOptional(field: "before") { (r: inout ByteReader) throws(ProtocolError) in
                try r.readU64()
            })
    }

    /// 1 + 1 + 1 + 1 + 4 + 1.
    public static var minimumEncodedBytes: Int { 9 }
}

extension HistoryPage: WireCodable {
    /// `runs list<RunEntry> | next_before opt<u64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeList(runs)
        writer.writeOptional(nextBefore) { w, seq in w.writeU64(seq) }
    }

    /// Reads a history page.
    /// - Throws: `.malformedMessage` naming the field at fault (`runs[i].…`, `next_before`).
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> HistoryPage {
        HistoryPage(
            runs: try reader.readList(of: RunEntry.self, field: "runs"),
            nextBefore: try reader.readOptional(field: "next_before") {
                (r: inout ByteReader) throws(ProtocolError) in try r.readU64()
            })
    }

    /// 4 + 1.
    public static var minimumEncodedBytes: Int { 5 }
}
