// Wire layouts of the model types; field order = stored-property order (see PROTOCOL.md, "Common structures").

extension Schedule: WireCodable {
    /// `kind u8 | body bytes`: once has an empty body, interval an 8-byte `i64` body, calendar (version 3) a
    /// `CalendarSchedule`. A writer for version 1 or 2 writes a calendar schedule as `once`: those versions
    /// have no way to describe it (PROTOCOL.md, section 10).
    public func encode(to writer: inout ByteWriter) {
        switch self {
        case .once:
            writer.writeU8(ScheduleKind.once.rawValue)
            writer.writeU32(0)
        case .interval(let micros):
            writer.writeU8(ScheduleKind.interval.rawValue)
            writer.writeU32(8)
            writer.writeI64(micros)
        case .calendar(let calendar):
            guard writer.version >= 3 else {
                writer.writeU8(ScheduleKind.once.rawValue)
                writer.writeU32(0)
                return
            }
            writer.writeU8(ScheduleKind.calendar.rawValue)
            let lengthAt = writer.count
            writer.writeU32(0)
            calendar.encode(to: &writer)
            writer.patchU32(UInt32(writer.count - lengthAt - 4), at: lengthAt)
        }
    }

    /// Reads a schedule; values are not checked here (the server validates the interval and the calendar
    /// rule), only the layout.
    /// - Throws: `.malformedMessage` with field `kind` for an unknown kind (calendar on a version 1 or 2
    ///   connection included), `body` for a body of the wrong size, or the calendar field at fault.
    public static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Schedule {
        let kindOffset = reader.index
        let rawKind = try reader.readU8(field: "kind")
        let bodyOffset = reader.index
        let length = try reader.readU32(field: "body")
        guard let kind = ScheduleKind(rawValue: rawKind), kind != .calendar || reader.version >= 3 else {
            let known = reader.version >= 3 ? "0 (once), 1 (interval) and 2 (calendar)" : "0 (once) and 1 (interval)"
            throw reader.malformed(
                "unknown schedule kind \(rawKind); version \(reader.version) defines \(known)"
                    + (rawKind == 2 ? " (calendar schedules need version 3)" : ""), field: "kind",
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
        case .calendar:
            guard Int(length) <= reader.remaining else {
                throw reader.malformed(
                    "a calendar schedule's body of \(length) bytes runs past the end of the frame", field: "body",
                    at: bodyOffset)
            }
            let start = reader.index
            let calendar = try CalendarSchedule.decode(from: &reader)
            guard reader.index - start == Int(length) else {
                throw reader.malformed(
                    "a calendar schedule's fields take \(reader.index - start) bytes, but its body is \(length)",
                    field: "body", at: bodyOffset)
            }
            return .calendar(calendar)
        }
    }

    /// kind + empty body length.
    public static var minimumEncodedBytes: Int { 5 }
}

extension CalendarSchedule {
    /// The schedule's wire body (what follows kind 2 and its length): stores keep these bytes as they are.
    public var wireBody: [UInt8] {
        var writer = ByteWriter(capacity: encodedByteCount)
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes a wire body written by ``wireBody``.
    /// - Throws: `.malformedMessage` naming the field at fault, or trailing bytes.
    public init(wireBody: some Collection<UInt8>) throws(ProtocolError) {
        var reader = ByteReader(wireBody)
        self = try Self.decode(from: &reader)
        try reader.expectEnd()
    }

    /// `syntax u8 | expression string | time_zone string | gap u8 | fold u8 | catch_up u8 | catch_up_max u32 |
    /// catch_up_window i64 | overlap u8 | jitter i64 | jitter_mode u8`.
    func encode(to writer: inout ByteWriter) {
        writer.writeU8(syntax.rawValue)
        writer.writeString(expression)
        writer.writeString(timeZone)
        writer.writeU8(gap.rawValue)
        writer.writeU8(fold.rawValue)
        writer.writeU8(catchUp.rawValue)
        writer.writeU32(catchUpMaximum)
        writer.writeI64(catchUpWindowMicros)
        writer.writeU8(overlap.rawValue)
        writer.writeI64(jitterMicros)
        writer.writeU8(jitterMode.rawValue)
    }

    /// The bytes `encode(to:)` writes.
    var encodedByteCount: Int { 1 + 2 + expression.utf8.count + 2 + timeZone.utf8.count + 3 + 4 + 8 + 1 + 8 + 1 }

    static func decode(from reader: inout ByteReader) throws(ProtocolError) -> CalendarSchedule {
        CalendarSchedule(
            syntax: try reader.readEnum(Syntax.self, field: "syntax"),
            expression: try reader.readString(field: "expression"),
            timeZone: try reader.readString(field: "time_zone"),
            gap: try reader.readEnum(Gap.self, field: "gap"),
            fold: try reader.readEnum(Fold.self, field: "fold"),
            catchUp: try reader.readEnum(CatchUp.self, field: "catch_up"),
            catchUpMaximum: try reader.readU32(field: "catch_up_max"),
            catchUpWindowMicros: try reader.readI64(field: "catch_up_window"),
            overlap: try reader.readEnum(Overlap.self, field: "overlap"),
            jitterMicros: try reader.readI64(field: "jitter"),
            jitterMode: try reader.readEnum(JitterMode.self, field: "jitter_mode"))
    }
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
    /// last_error opt<string> | created_at i64 | last_run_at opt<i64> | last_failure_at opt<i64>`, and from
    /// version 3 `skipped_runs u64 | last_skip opt<string>`.
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
        if writer.version >= 3 {
            writer.writeU64(skippedRuns)
            writer.writeOptionalString(lastSkip)
        }
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
        var skippedRuns: UInt64 = 0
        var lastSkip: String?
        if reader.version >= 3 {
            skippedRuns = try reader.readU64(field: "skipped_runs")
            lastSkip = try reader.readOptionalString(field: "last_skip")
        }
        return TaskRecord(
            id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: kwargs, group: group,
            paused: paused, pausedAt: pausedAt, coalesce: coalesce, state: state, attempt: attempt,
            maxAttempts: maxAttempts, leaseDeadline: leaseDeadline, lastError: lastError, createdAt: createdAt,
            lastRunAt: lastRunAt, lastFailureAt: lastFailureAt, skippedRuns: skippedRuns, lastSkip: lastSkip)
    }

    /// 2 + 2 + 8 + 5 + 4 + 1 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1 + 8 + 1 + 1 (version 1; version 3 adds 9).
    public static var minimumEncodedBytes: Int { 46 }

    /// The bytes `encode(to:)` writes on a version 3 connection, computed without encoding: a server sizes
    /// replies with it (a reply must fit in `max_frame_bytes`). Versions 1 and 2 write no more than this.
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
        switch schedule {
        case .once: break
        case .interval: count += 8
        case .calendar(let calendar): count += calendar.encodedByteCount
        }
        count += 9
        if let lastSkip { count += string(lastSkip) }
        if let group { count += string(group) }
        if pausedAt != nil { count += 8 }
        if leaseDeadline != nil { count += 8 }
        if let lastError { count += string(lastError) }
        if lastRunAt != nil { count += 8 }
        if lastFailureAt != nil { count += 8 }
        return count
    }
}
