import TaskShedProtocol

/// A task as the store keeps it: the public record plus its lease while it is leased.
///
/// The record of a leased task holds the lease's fields (state, attempt, `lastRunAt`, deadline), laid over the
/// stored record by `Lease.apply(to:)`; `encode` writes the record as it was before the claim (see `Lease`).
struct StoredTask {
    var record: TaskRecord
    /// The lease while `record.state == .leased`, else `nil`. Its deadline, attempt and run time are those of
    /// the record; the rest (holder, the record's `lastRunAt` before the claim) only it has.
    var lease: Lease?

    /// The lease holder while leased, else 0.
    var holder: UInt64 { lease?.holder ?? 0 }

    /// The lease as it should be stored after a change to the record: the record's deadline, attempt, run
    /// times, callback, group, kind and paused flag, with the holder and the pre-claim run time of `lease`.
    /// `nil` unless leased.
    var currentLease: Lease? {
        guard record.state == .leased, var lease, let deadline = record.leaseDeadline else { return nil }
        lease.deadline = deadline
        lease.attempt = record.attempt
        lease.lastRunAt = record.lastRunAt
        if !sameBytes(lease.callback, record.callback) { lease.callback = record.callback }
        if !sameBytes(lease.group, record.group) { lease.group = record.group }
        lease.paused = record.paused
        lease.runAt = record.runAt
        lease.recurring = record.schedule.isRecurring
        return lease
    }

    /// Version byte at the start of every value in the `tasks` database.
    static let valueFormat: UInt8 = 1
    /// The longest `last_skip` kept, in UTF-8 bytes.
    static let maxLastSkipBytes = 1024

    private struct Flag {
        static let paused: UInt8 = 1 << 0
        static let coalesce: UInt8 = 1 << 1
        static let pausedAt: UInt8 = 1 << 2
        /// Schema 4 and earlier: lease fields in the record. Never written now; a record with it is refused.
        static let lease: UInt8 = 1 << 3
        static let lastError: UInt8 = 1 << 4
        static let lastRunAt: UInt8 = 1 << 5
        static let lastFailureAt: UInt8 = 1 << 6
        static let group: UInt8 = 1 << 7
    }

    /// Encodes the value (the id is the key, not part of the value). Layout: see LAYOUT.md. The size is
    /// computed first and the fields written in one pass (`ByteSink.append(count:_:)`).
    ///
    /// A leased task is written as it was before its claim (scheduled, `attempt - 1`, the previous
    /// `lastRunAt`): leases live only in memory, so a record never says leased.
    func encode(into sink: inout ByteSink) {
        let leased = record.state == .leased
        precondition(!leased || lease != nil, "a leased task without its lease")
        let state: TaskState = leased ? .scheduled : record.state
        let attempt = leased ? record.attempt &- 1 : record.attempt
        let lastRunAt = leased ? lease?.baseLastRunAt : record.lastRunAt
        var flags: UInt8 = 0
        if record.paused { flags |= Flag.paused }
        if record.coalesce { flags |= Flag.coalesce }
        if record.pausedAt != nil { flags |= Flag.pausedAt }
        if record.lastError != nil { flags |= Flag.lastError }
        if lastRunAt != nil { flags |= Flag.lastRunAt }
        if record.lastFailureAt != nil { flags |= Flag.lastFailureAt }
        if record.group != nil { flags |= Flag.group }
        let interval = record.schedule.intervalMicros
        // A calendar schedule: its wire body, then the skip counters (only calendar tasks have them).
        let calendarBody = record.schedule.calendar?.wireBody
        let lastSkip = record.lastSkip.map { Array(truncateUTF8($0, limit: Self.maxLastSkipBytes).utf8) }
        let callbackCount = record.callback.utf8.count
        let groupCount = record.group?.utf8.count
        let errorCount = record.lastError?.utf8.count
        var count = 4 + 8 + 4 + 4 + 8 + 2 + callbackCount + 4 + record.kwargs.count
        if interval != nil { count += 8 }
        if let calendarBody { count += 4 + calendarBody.count + 8 + 2 + (lastSkip?.count ?? 0) }
        if record.pausedAt != nil { count += 8 }
        if lastRunAt != nil { count += 8 }
        if record.lastFailureAt != nil { count += 8 }
        if let groupCount { count += 2 + groupCount }
        if let errorCount { count += 4 + errorCount }
        sink.append(count: count) { w in
            w.u8(Self.valueFormat)
            w.u8(flags)
            w.u8(state.rawValue)
            w.u8(record.schedule.kind.rawValue)
            w.i64LE(record.runAt)
            if let interval { w.i64LE(interval) }
            if let calendarBody {
                w.u32LE(UInt32(calendarBody.count))
                w.raw(calendarBody)
                w.u64LE(record.skippedRuns)
                w.u16LE(UInt16(lastSkip?.count ?? 0))
                if let lastSkip { w.raw(lastSkip) }
            }
            w.u32LE(attempt)
            w.u32LE(record.maxAttempts)
            w.i64LE(record.createdAt)
            if let v = record.pausedAt { w.i64LE(v) }
            if let v = lastRunAt { w.i64LE(v) }
            if let v = record.lastFailureAt { w.i64LE(v) }
            w.u16LE(UInt16(callbackCount))
            w.raw(record.callback)
            if let g = record.group, let groupCount {
                w.u16LE(UInt16(groupCount))
                w.raw(g)
            }
            w.u32LE(UInt32(record.kwargs.count))
            w.raw(record.kwargs)
            if let e = record.lastError, let errorCount {
                w.u32LE(UInt32(errorCount))
                w.raw(e)
            }
        }
    }

    /// Decodes a value written by `encode`; `nil` if the bytes are not a valid value of this format (which
    /// includes a record that says leased, or has the lease flag of schema 3 and earlier). `callback`: the
    /// name the caller expects (a claim knows it from the index entry), used as the record's callback when the
    /// bytes match instead of decoding and validating them again.
    static func decode(id: String, _ buffer: UnsafeRawBufferPointer, callback known: String? = nil) -> StoredTask? {
        var s = ByteSource(buffer)
        guard s.u8() == valueFormat, let flags = s.u8(), let stateRaw = s.u8(),
            let state = TaskState(rawValue: stateRaw), state != .leased, flags & Flag.lease == 0, let kindRaw = s.u8(),
            let kind = ScheduleKind(rawValue: kindRaw), let runAt = s.i64LE()
        else { return nil }
        let schedule: Schedule
        var skippedRuns: UInt64 = 0
        var lastSkip: String?
        switch kind {
        case .once: schedule = .once
        case .interval:
            guard let micros = s.i64LE() else { return nil }
            schedule = .interval(micros: micros)
        case .calendar:
            guard let length = s.u32LE(), let body = s.bytes(Int(length)),
                  let calendar = try? CalendarSchedule(wireBody: body), let skipped = s.u64LE(),
                  let skipLength = s.u16LE(), let skip = s.string(Int(skipLength))
            else { return nil }
            schedule = .calendar(calendar)
            skippedRuns = skipped
            lastSkip = skipLength == 0 ? nil : skip
        }
        guard let attempt = s.u32LE(), let maxAttempts = s.u32LE(), let createdAt = s.i64LE() else { return nil }
        var pausedAt: Int64?
        var lastRunAt: Int64?
        var lastFailureAt: Int64?
        if flags & Flag.pausedAt != 0 {
            guard let v = s.i64LE() else { return nil }
            pausedAt = v
        }
        if flags & Flag.lastRunAt != 0 {
            guard let v = s.i64LE() else { return nil }
            lastRunAt = v
        }
        if flags & Flag.lastFailureAt != 0 {
            guard let v = s.i64LE() else { return nil }
            lastFailureAt = v
        }
        guard let cbLen = s.u16LE(),
            let callback = known.map({ s.string(Int(cbLen), matching: $0) }) ?? s.string(Int(cbLen))
        else { return nil }
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
            state: state, attempt: attempt, maxAttempts: maxAttempts, leaseDeadline: nil,
            lastError: lastError, createdAt: createdAt, lastRunAt: lastRunAt, lastFailureAt: lastFailureAt,
            skippedRuns: skippedRuns, lastSkip: lastSkip)
        return StoredTask(record: record)
    }
}
