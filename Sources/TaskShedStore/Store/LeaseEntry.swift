/// A lease as the `lease_ids` database keeps it (key: the task's id; layout in LAYOUT.md).
///
/// A claim writes the lease here and in `leases` but leaves the task's record as it was: the record would
/// otherwise be rewritten at the claim and again at the ack, two random `tasks` pages per delivery instead of
/// one. Every load lays the entry over the record (`apply(to:)`), so the rest of the store sees one task with
/// its lease fields, as if the record held them.
struct LeaseEntry: Equatable {
    var deadline: Int64
    var holder: UInt64
    var attempt: UInt32
    var lastRunAt: Int64?

    /// The lease of a leased task; `nil` for a task in any other state.
    /// Reads the fields one by one: a local copy of `task.record` would retain each of its strings and arrays.
    @inline(__always)
    init?(_ task: StoredTask) {
        guard task.record.state == .leased, let deadline = task.record.leaseDeadline else { return nil }
        self.deadline = deadline
        self.holder = task.holder
        self.attempt = task.record.attempt
        self.lastRunAt = task.record.lastRunAt
    }

    private init(deadline: Int64, holder: UInt64, attempt: UInt32, lastRunAt: Int64?) {
        self.deadline = deadline
        self.holder = holder
        self.attempt = attempt
        self.lastRunAt = lastRunAt
    }

    /// Encoded size: deadline, holder, attempt, flag byte, lastRunAt.
    static let encodedCount = 8 + 8 + 4 + 1 + 8

    /// Encodes the value: i64 deadline, u64 holder, u32 attempt, u8 (1 = lastRunAt present), i64 lastRunAt
    /// (0 when absent), all little-endian.
    func encode(into sink: inout ByteSink) {
        sink.i64LE(deadline)
        sink.u64LE(holder)
        sink.u32LE(attempt)
        sink.u8(lastRunAt == nil ? 0 : 1)
        sink.i64LE(lastRunAt ?? 0)
    }

    /// Decodes a value written by `encode`; `nil` if the bytes are not one.
    static func decode(_ buffer: UnsafeRawBufferPointer) -> LeaseEntry? {
        var s = ByteSource(buffer)
        guard let deadline = s.i64LE(), let holder = s.u64LE(), let attempt = s.u32LE(), let has = s.u8(),
            has <= 1, let last = s.i64LE(), s.isAtEnd
        else { return nil }
        return LeaseEntry(deadline: deadline, holder: holder, attempt: attempt, lastRunAt: has == 1 ? last : nil)
    }

    /// Lays the lease over a task decoded from its record: leased, with this attempt, run time, deadline and
    /// holder.
    func apply(to task: inout StoredTask) {
        task.record.state = .leased
        task.record.attempt = attempt
        task.record.lastRunAt = lastRunAt
        task.record.leaseDeadline = deadline
        task.holder = holder
    }
}
