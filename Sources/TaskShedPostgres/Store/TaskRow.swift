import TaskShedProtocol
import TaskShedStore

/// A task as the `tasks` table holds it: the record plus the store's own lease bookkeeping.
struct TaskRow {
    var record: TaskRecord
    /// `lastRunAt` before the current delivery (what a RELEASE puts back).
    var baseLastRunAt: Int64?
    /// The daemon (`daemons.id`) holding the lease, while leased.
    var leaseDaemon: Int64?
    /// The connection of that daemon holding the lease, while leased (a `UInt64` stored by bit pattern).
    var leaseHolder: Int64?

    /// The columns every read selects, in `init(_:row:)`'s order.
    static let columns = """
        id, callback, group_name, run_at, interval_us, kwargs, paused, paused_at, coalesce, state, attempt, \
        max_attempts, lease_deadline, last_error, created_at, last_run_at, last_failure_at, base_last_run_at, \
        lease_daemon, lease_holder, calendar, skipped_runs, last_skip
        """

    /// `columns` qualified with a table alias (`t.id, t.callback, …`), for statements that join.
    static func columns(of alias: String) -> String {
        columns.split(separator: ",").map { "\(alias).\($0.trimmingSpaces)" }.joined(separator: ", ")
    }

    /// Decodes one row selected with `columns`.
    /// - Throws: `internalError` for a row this build cannot read (a value out of range).
    init(_ result: PGResult, row r: Int) throws(StoreError) {
        guard let id = result.string(r, 0), let callback = result.string(r, 1), let runAt = result.int64(r, 3),
              let kwargs = result.bytes(r, 5), let paused = result.bool(r, 6), let coalesce = result.bool(r, 8),
              let stateRaw = result.int64(r, 9), let state = TaskState(rawValue: UInt8(clamping: stateRaw)),
              let attempt = result.int64(r, 10), let maxAttempts = result.int64(r, 11),
              let createdAt = result.int64(r, 14)
        else {
            throw StoreError(code: .internalError, message: "a row of the tasks table cannot be read (row \(r))")
        }
        let schedule: Schedule
        if let interval = result.int64(r, 4) {
            schedule = .interval(micros: interval)
        } else if let hex = result.string(r, 20) {
            guard let body = Hex.decode(hex), let calendar = try? CalendarSchedule(wireBody: body) else {
                throw StoreError(code: .internalError, message: "task \"\(id)\" has a calendar column that cannot be read")
            }
            schedule = .calendar(calendar)
        } else {
            schedule = .once
        }
        record = TaskRecord(
            id: id, callback: callback, runAt: runAt, schedule: schedule,
            kwargs: kwargs, group: result.string(r, 2), paused: paused, pausedAt: result.int64(r, 7),
            coalesce: coalesce, state: state, attempt: UInt32(clamping: attempt),
            maxAttempts: UInt32(clamping: maxAttempts), leaseDeadline: result.int64(r, 12),
            lastError: result.string(r, 13), createdAt: createdAt, lastRunAt: result.int64(r, 15),
            lastFailureAt: result.int64(r, 16), skippedRuns: UInt64(clamping: result.int64(r, 21) ?? 0),
            lastSkip: result.string(r, 22))
        baseLastRunAt = result.int64(r, 17)
        leaseDaemon = result.int64(r, 18)
        leaseHolder = result.int64(r, 19)
    }

    /// All rows of a result.
    static func all(_ result: PGResult) throws(StoreError) -> [TaskRow] {
        var rows: [TaskRow] = []
        rows.reserveCapacity(result.rowCount)
        for r in 0..<result.rowCount { rows.append(try TaskRow(result, row: r)) }
        return rows
    }

    /// Whether the lease is `(daemon, holder)`'s with this attempt.
    func isLeased(to daemon: Int64, holder: UInt64, attempt: UInt32) -> Bool {
        record.state == .leased && leaseDaemon == daemon && leaseHolder == Int64(bitPattern: holder)
            && record.attempt == attempt
    }

    // MARK: Delivery transitions (the same rules as the LMDB store: PROTOCOL.md, section 8)

    /// The next occurrence after the current one ran or was given up on: attempt 0, no lease; a pause made
    /// meanwhile stays. `nil`: a calendar rule with no occurrence left, so the task is finished and removed.
    func advanced(now: Int64) -> TaskRow? {
        var next = unleased(state: .scheduled)
        next.record.attempt = 0
        switch record.schedule {
        case .once:
            preconditionFailure("a one-off task does not advance")
        case .interval(let interval):
            next.record.runAt = nextRun(runAt: record.runAt, interval: interval, coalesce: record.coalesce, now: now)
        case .calendar(let calendar):
            switch TaskValidation.calendarStep(after: record, calendar, now: now) {
            case .next(let runAt, let skipped, let reason):
                next.record.applySkips(runAt: runAt, skipped: skipped, reason: reason)
            case .finished:
                return nil
            case .broken(let message):
                var dead = unleased(state: .dead)
                dead.record.lastError = message
                dead.record.lastFailureAt = now
                return dead
            }
        }
        return next
    }

    /// Without its lease, in `state`; attempt and `lastRunAt` stay the delivery's (it counts).
    func unleased(state: TaskState) -> TaskRow {
        var next = self
        next.record.state = state
        next.record.leaseDeadline = nil
        next.baseLastRunAt = nil
        next.leaseDaemon = nil
        next.leaseHolder = nil
        return next
    }

    /// As before its claim: the delivery does not count.
    func released() -> TaskRow {
        var next = unleased(state: .scheduled)
        next.record.attempt = record.attempt &- 1
        next.record.lastRunAt = baseLastRunAt
        return next
    }

    /// A lease that ended without an answer (worker gone, lease expired, daemon lost): a failed attempt.
    /// `nil`: a calendar task with no occurrence left, finished.
    func abandoned(reason: String, now: Int64) -> TaskRow? {
        var next: TaskRow
        if record.attempt < record.maxAttempts {
            next = unleased(state: .scheduled)
        } else if record.schedule.isRecurring {
            guard let advanced = advanced(now: now) else { return nil }
            next = advanced
        } else {
            next = unleased(state: .dead)
        }
        next.record.lastError = truncateUTF8(reason, limit: ProtocolLimits.maxErrorBytes)
        next.record.lastFailureAt = now
        return next
    }
}

extension Substring {
    /// Without leading and trailing spaces and newlines.
    var trimmingSpaces: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" { s.removeLast() }
        return s
    }
}

/// Hexadecimal text of bytes: how the `calendar` column holds a calendar schedule's wire body.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = value(utf8[i]), let low = value(utf8[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}

/// Orders records by (`runAt`, id), ids compared as UTF-8 bytes: the order of every list the stores return.
func precedesByPosition(_ a: TaskRecord, _ b: TaskRecord) -> Bool {
    if a.runAt != b.runAt { return a.runAt < b.runAt }
    return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
}
