// Wire layouts of the model types; field order = stored-property order (see PROTOCOL.md, "Common structures").

extension Schedule: WireCodable {
    /// `kind u8 | body bytes`: once has an empty body, interval an 8-byte `i64` body.
    public func encode(to writer: inout ByteWriter) {
        switch self {
        case .once:
            writer.writeU8(ScheduleKind.once.rawValue)
            writer.writeU32(0)
        case .interval(let micros):
            writer.writeU8(ScheduleKind.interval.rawValue)
            writer.writeU32(8)
            writer.writeI64(micros)
        }
    }

    /// Reads a schedule; the interval's value is not checked here (the server validates it).
    /// - Throws: `.malformedMessage` with field `kind` for an unknown kind, `body` for a body of the wrong size.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Schedule {
        let kindOffset = reader.index
        let rawKind = try reader.readU8(field: "kind")
        let bodyOffset = reader.index
        let length = try reader.readU32(field: "body")
        guard let kind = ScheduleKind(rawValue: rawKind) else {
            throw reader.malformed(
                "unknown schedule kind \(rawKind); version 1 defines 0 (once) and 1 (interval)", field: "kind",
                at: kindOffset)
        }
        switch kind {
        case .once:
            guard length == 0 else {
                throw reader.malformed(
                    "a once schedule has an empty body, got \(length) bytes", field: "body", at: bodyOffset)
            }
            return .once
        case .interval:
            guard length == 8 else {
                throw reader.malformed(
                    "an interval schedule's body is one i64 (8 bytes), got \(length) bytes", field: "body",
                    at: bodyOffset)
            }
            return .interval(micros: try reader.readI64(field: "body"))
        }
    }

    /// kind + empty body length.
    public static var minimumEncodedBytes: Int { 5 }
}

extension TaskSelector: WireCodable {
    /// `kind u8` then `list<string>` ids (0), `string` group (1) or nothing (2 = all).
    public func encode(to writer: inout ByteWriter) {
        switch self {
        case .ids(let ids):
            writer.writeU8(0)
            writer.writeStringList(ids)
        case .group(let group):
            writer.writeU8(1)
            writer.writeString(group)
        case .all:
            writer.writeU8(2)
        }
    }

    /// Reads a selector.
    /// - Throws: `.malformedMessage` with field `kind`, `ids[i]` or `group`.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> TaskSelector {
        let at = reader.index
        switch try reader.readU8(field: "kind") {
        case 0: return .ids(try reader.readStringList(field: "ids"))
        case 1: return .group(try reader.readString(field: "group"))
        case 2: return .all
        case let other:
            throw reader.malformed(
                "unknown selector kind \(other); allowed: 0 (ids), 1 (group), 2 (all)", field: "kind", at: at)
        }
    }

    /// The kind byte alone (`all`).
    public static var minimumEncodedBytes: Int { 1 }
}

extension TaskSpec: WireCodable {
    /// `id opt<string> | callback string | run_at opt<i64> | schedule | kwargs bytes | group opt<string> |
    /// paused bool | coalesce bool | max_attempts u32`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeOptionalString(id)
        writer.writeString(callback)
        writer.writeOptionalI64(runAt)
        schedule.encode(to: &writer)
        writer.writeBytes(kwargs)
        writer.writeOptionalString(group)
        writer.writeBool(paused)
        writer.writeBool(coalesce)
        writer.writeU32(maxAttempts)
    }

    /// Reads a task specification.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> TaskSpec {
        let id = try reader.readOptionalString(field: "id")
        let callback = try reader.readString(field: "callback")
        let runAt = try reader.readOptionalI64(field: "run_at")
        let schedule = try reader.read(Schedule.self, field: "schedule")
        let kwargs = try reader.readBytes(field: "kwargs")
        let group = try reader.readOptionalString(field: "group")
        let paused = try reader.readBool(field: "paused")
        let coalesce = try reader.readBool(field: "coalesce")
        let maxAttempts = try reader.readU32(field: "max_attempts")
        return TaskSpec(
            id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: kwargs, group: group,
            paused: paused, coalesce: coalesce, maxAttempts: maxAttempts)
    }

    /// 1 + 2 + 1 + 5 + 4 + 1 + 1 + 1 + 4.
    public static var minimumEncodedBytes: Int { 20 }
}

extension TaskRecord: WireCodable {
    /// `id string | callback string | run_at i64 | schedule | kwargs bytes | group opt<string> | paused bool |
    /// paused_at opt<i64> | coalesce bool | state u8 | attempt u32 | max_attempts u32 | lease_deadline opt<i64> |
    /// last_error opt<string> | created_at i64 | last_run_at opt<i64> | last_failure_at opt<i64>`.
    public func encode(to writer: inout ByteWriter) {
        writer.writeString(id)
        writer.writeString(callback)
        writer.writeI64(runAt)
        schedule.encode(to: &writer)
        writer.writeBytes(kwargs)
        writer.writeOptionalString(group)
        writer.writeBool(paused)
        writer.writeOptionalI64(pausedAt)
        writer.writeBool(coalesce)
        writer.writeU8(state.rawValue)
        writer.writeU32(attempt)
        writer.writeU32(maxAttempts)
        writer.writeOptionalI64(leaseDeadline)
        writer.writeOptionalString(lastError)
        writer.writeI64(createdAt)
        writer.writeOptionalI64(lastRunAt)
        writer.writeOptionalI64(lastFailureAt)
    }

    /// Reads a task record.
    /// - Throws: `.malformedMessage` naming the field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> TaskRecord {
        let id = try reader.readString(field: "id")
        let callback = try reader.readString(field: "callback")
        let runAt = try reader.readI64(field: "run_at")
        let schedule = try reader.read(Schedule.self, field: "schedule")
        let kwargs = try reader.readBytes(field: "kwargs")
        let group = try reader.readOptionalString(field: "group")
        let paused = try reader.readBool(field: "paused")
        let pausedAt = try reader.readOptionalI64(field: "paused_at")
        let coalesce = try reader.readBool(field: "coalesce")
        let state = try reader.readEnum(TaskState.self, field: "state")
        let attempt = try reader.readU32(field: "attempt")
        let maxAttempts = try reader.readU32(field: "max_attempts")
        let leaseDeadline = try reader.readOptionalI64(field: "lease_deadline")
        let lastError = try reader.readOptionalString(field: "last_error")
        let createdAt = try reader.readI64(field: "created_at")
        let lastRunAt = try reader.readOptionalI64(field: "last_run_at")
        let lastFailureAt = try reader.readOptionalI64(field: "last_failure_at")
        return TaskRecord(
            id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: kwargs, group: group,
            paused: paused, pausedAt: pausedAt, coalesce: coalesce, state: state, attempt: attempt,
            maxAttempts: maxAttempts, leaseDeadline: leaseDeadline, lastError: lastError, createdAt: createdAt,
            lastRunAt: lastRunAt, lastFailureAt: lastFailureAt)
    }

    /// 2 + 2 + 8 + 5 + 4 + 1 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1 + 8 + 1 + 1.
    public static var minimumEncodedBytes: Int { 46 }

    /// The bytes `encode(to:)` writes, computed without encoding: a server sizes replies with it (a reply
    /// must fit in `max_frame_bytes`).
    public var encodedByteCount: Int {
        func string(_ value: String) -> Int {
            let count = value.utf8.count
            guard count > ProtocolLimits.maxStringBytes else { return 2 + count }
            // Cut at a scalar boundary when written: ask the writer (rare: only FAIL errors get this long).
            var writer = ByteWriter()
            writer.writeString(value)
            return writer.bytes.count
        }
        var count = Self.minimumEncodedBytes - 4
        count += string(id) + string(callback) + kwargs.count
        if case .interval = schedule { count += 8 }
        if let group { count += string(group) }
        if pausedAt != nil { count += 8 }
        if leaseDeadline != nil { count += 8 }
        if let lastError { count += string(lastError) }
        if lastRunAt != nil { count += 8 }
        if lastFailureAt != nil { count += 8 }
        return count
    }
}
