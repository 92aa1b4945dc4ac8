import TaskShedProtocol

/// A task as the store keeps it: the public record plus the lease holder, which only the daemon needs.
struct StoredTask {
    var record: TaskRecord
    /// The lease holder while `record.state == .leased`, else 0.
    var holder: UInt64

    /// Version byte at the start of every value in the `tasks` database.
    static let valueFormat: UInt8 = 1

    private struct Flag {
        static let paused: UInt8 = 1 << 0
        static let coalesce: UInt8 = 1 << 1
        static let pausedAt: UInt8 = 1 << 2
        static let lease: UInt8 = 1 << 3
        static let lastError: UInt8 = 1 << 4
        static let lastRunAt: UInt8 = 1 << 5
        static let lastFailureAt: UInt8 = 1 << 6
        static let group: UInt8 = 1 << 7
    }

    /// Encodes the value (the id is the key, not part of the value). Layout: see LAYOUT.md.
    func encode(into sink: inout ByteSink) {
        let r = record
        var flags: UInt8 = 0
        if r.paused { flags |= Flag.paused }
        if r.coalesce { flags |= Flag.coalesce }
        if r.pausedAt != nil { flags |= Flag.pausedAt }
        if r.leaseDeadline != nil { flags |= Flag.lease }
        if r.lastError != nil { flags |= Flag.lastError }
        if r.lastRunAt != nil { flags |= Flag.lastRunAt }
        if r.lastFailureAt != nil { flags |= Flag.lastFailureAt }
        if r.group != nil { flags |= Flag.group }
        sink.u8(Self.valueFormat)
        sink.u8(flags)
        sink.u8(r.state.rawValue)
        sink.u8(r.schedule.kind.rawValue)
        sink.i64LE(r.runAt)
        if let interval = r.schedule.intervalMicros { sink.i64LE(interval) }
        sink.u32LE(r.attempt)
        sink.u32LE(r.maxAttempts)
        sink.i64LE(r.createdAt)
        if let v = r.pausedAt { sink.i64LE(v) }
        if let v = r.leaseDeadline {
            sink.i64LE(v)
            sink.u64LE(holder)
        }
        if let v = r.lastRunAt { sink.i64LE(v) }
        if let v = r.lastFailureAt { sink.i64LE(v) }
        sink.u16LE(UInt16(r.callback.utf8.count))
        sink.raw(r.callback)
        if let g = r.group {
            sink.u16LE(UInt16(g.utf8.count))
            sink.raw(g)
        }
        sink.u32LE(UInt32(r.kwargs.count))
        sink.raw(r.kwargs)
        if let e = r.lastError {
            sink.u32LE(UInt32(e.utf8.count))
            sink.raw(e)
        }
    }

    /// Decodes a value written by `encode`; `nil` if the bytes are not a valid value of this format.
    static func decode(id: String, _ buffer: UnsafeRawBufferPointer) -> StoredTask? {
        var s = ByteSource(buffer)
        guard s.u8() == valueFormat, let flags = s.u8(), let stateRaw = s.u8(),
            let state = TaskState(rawValue: stateRaw), let kindRaw = s.u8(),
            let kind = ScheduleKind(rawValue: kindRaw), let runAt = s.i64LE()
        else { return nil }
        let schedule: Schedule
        switch kind {
        case .once: schedule = .once
        case .interval:
            guard let micros = s.i64LE() else { return nil }
            schedule = .interval(micros: micros)
        }
        guard let attempt = s.u32LE(), let maxAttempts = s.u32LE(), let createdAt = s.i64LE() else { return nil }
        var pausedAt: Int64?
        var leaseDeadline: Int64?
        var holder: UInt64 = 0
        var lastRunAt: Int64?
        var lastFailureAt: Int64?
        if flags & Flag.pausedAt != 0 {
            guard let v = s.i64LE() else { return nil }
            pausedAt = v
        }
        if flags & Flag.lease != 0 {
            guard let v = s.i64LE(), let h = s.u64LE() else { return nil }
            leaseDeadline = v
            holder = h
        }
        if flags & Flag.lastRunAt != 0 {
            guard let v = s.i64LE() else { return nil }
            lastRunAt = v
        }
        if flags & Flag.lastFailureAt != 0 {
            guard let v = s.i64LE() else { return nil }
            lastFailureAt = v
        }
        guard let cbLen = s.u16LE(), let callback = s.string(Int(cbLen)) else { return nil }
        var group: String?
        if flags & Flag.group != 0 {
            guard let len = s.u16LE(), let g = s.string(Int(len)) else { return nil }
            group = g
        }
        guard let kwLen = s.u32LE(), let kw = s.bytes(Int(kwLen)) else { return nil }
        var lastError: String?
        if flags & Flag.lastError != 0 {
            guard let len = s.u32LE(), let e = s.string(Int(len)) else { return nil }
            lastError = e
        }
        guard s.isAtEnd else { return nil }
        let record = TaskRecord(
            id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: Array(kw), group: group,
            paused: flags & Flag.paused != 0, pausedAt: pausedAt, coalesce: flags & Flag.coalesce != 0,
            state: state, attempt: attempt, maxAttempts: maxAttempts, leaseDeadline: leaseDeadline,
            lastError: lastError, createdAt: createdAt, lastRunAt: lastRunAt, lastFailureAt: lastFailureAt)
        return StoredTask(record: record, holder: holder)
    }
}
