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

    /// Encodes the value (the id is the key, not part of the value) into `sink`, replacing its bytes. Layout:
    /// see LAYOUT.md. The size is computed first and the fields written straight into one buffer of that size.
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
        let interval = r.schedule.intervalMicros
        let callbackCount = r.callback.utf8.count
        let groupCount = r.group?.utf8.count
        let errorCount = r.lastError?.utf8.count
        var size = 4 + 8 + 4 + 4 + 8 + 2 + callbackCount + 4 + r.kwargs.count
        if interval != nil { size += 8 }
        if r.pausedAt != nil { size += 8 }
        if r.leaseDeadline != nil { size += 16 }
        if r.lastRunAt != nil { size += 8 }
        if r.lastFailureAt != nil { size += 8 }
        if let groupCount { size += 2 + groupCount }
        if let errorCount { size += 4 + errorCount }
        sink.bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var w = RawWriter(UnsafeMutableRawPointer(buffer.baseAddress!))
            w.u8(Self.valueFormat)
            w.u8(flags)
            w.u8(r.state.rawValue)
            w.u8(r.schedule.kind.rawValue)
            w.i64LE(r.runAt)
            if let interval { w.i64LE(interval) }
            w.u32LE(r.attempt)
            w.u32LE(r.maxAttempts)
            w.i64LE(r.createdAt)
            if let v = r.pausedAt { w.i64LE(v) }
            if let v = r.leaseDeadline {
                w.i64LE(v)
                w.u64LE(holder)
            }
            if let v = r.lastRunAt { w.i64LE(v) }
            if let v = r.lastFailureAt { w.i64LE(v) }
            w.u16LE(UInt16(callbackCount))
            w.raw(r.callback)
            if let g = r.group, let groupCount {
                w.u16LE(UInt16(groupCount))
                w.raw(g)
            }
            w.u32LE(UInt32(r.kwargs.count))
            w.raw(r.kwargs)
            if let e = r.lastError, let errorCount {
                w.u32LE(UInt32(errorCount))
                w.raw(e)
            }
            precondition(w.position == UnsafeMutableRawPointer(buffer.baseAddress!) + size, "task value size mismatch")
            initialized = size
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
