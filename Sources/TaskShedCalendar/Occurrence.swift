/// One run time of a rule: the instant, the wall time the rule named, and what DST did to it.
public struct Occurrence: Sendable, Hashable, CustomStringConvertible {
    /// The instant, microseconds since the Unix epoch, UTC (the unit of run times across TaskShed); always a
    /// whole second.
    public var instant: Int64
    /// The local wall time the rule named. It differs from the clock at `instant` only for gap adjustments.
    public var scheduled: LocalDateTime
    /// The zone's offset at `instant`, seconds east of UTC.
    public var utcOffset: Int32
    /// How a transition moved or selected this run.
    public var adjustment: DSTAdjustment

    /// Creates an occurrence.
    public init(instant: Int64, scheduled: LocalDateTime, utcOffset: Int32, adjustment: DSTAdjustment) {
        self.instant = instant
        self.scheduled = scheduled
        self.utcOffset = utcOffset
        self.adjustment = adjustment
    }

    /// The instant in whole seconds since the epoch.
    public var second: Int64 { Civil.floorDiv(instant, 1_000_000) }

    /// The local wall clock at `instant`.
    public var local: LocalDateTime { LocalDateTime(wallSeconds: second + Int64(utcOffset)) }

    /// `2026-03-08 03:30:00 -04:00 (07:30:00Z) DST-gap→shifted`-style text for previews and test messages.
    public var description: String {
        let sign = utcOffset < 0 ? "-" : "+"
        let magnitude = abs(Int(utcOffset))
        let hh = magnitude / 3600, mm = magnitude / 60 % 60
        let offset = "\(sign)\(hh < 10 ? "0" : "")\(hh):\(mm < 10 ? "0" : "")\(mm)"
        let utc = LocalDateTime(wallSeconds: second)
        let mark = adjustment == .none ? "" : " " + adjustment.description
        return "\(local) \(offset) (\(utc)Z)\(mark)"
    }
}
