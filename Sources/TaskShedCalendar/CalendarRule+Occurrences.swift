/// The occurrence functions: one pure function family of (rule, zone, DST policy, instant).
///
/// ## Instants
/// Microseconds since the Unix epoch, UTC, as every run time in TaskShed (`TaskSpec.runAt`). Occurrences fall
/// on whole seconds; `next(after:)` is strictly after its argument, `previous(before:)` strictly before.
///
/// ## The occurrence set
/// For each local date the date fields allow and each time of day the time fields allow (a *wall time*):
/// - **Fixed-time rules** (hour, minute and second each a single value): the wall time's real instant if it
///   has one; in a fold the `FoldPolicy` picks (default the first); in a gap the `GapPolicy` decides (default
///   `shift`: the wall time read with the offset in effect before the gap; `skip`; `atChange`: the
///   transition instant). Days that never existed (Pacific/Apia 2011-12-30) are gaps like any other.
/// - **Other rules**: every real instant whose wall clock shows a matching wall time (both passes of a
///   repeated hour; nothing for wall times that do not exist).
/// The rule's occurrences are the *set* of those instants, so one instant is never produced twice (Apia's
/// shifted 2011-12-30 12:00 and the real 2011-12-31 12:00 are the same 22:00Z, one run) and `next` is strictly
/// increasing. `next`, `previous` and `matches` are all defined on this one set, so they agree (the
/// croniter#258 property).
///
/// ## The search bound
/// The date pattern of every rule repeats with the Gregorian cycle (146 097 days, a whole number of weeks),
/// and parsing proved it matches at least one date, so a matching wall time exists in every window of 400
/// years. The searches therefore look at most `searchHorizon` (400 years and 2 days) ahead or back and then
/// answer `nil`; they step month by month through the date pattern and segment by segment through the zone's
/// offsets, so every call terminates, for every zone and instant. `nil` within the horizon means the rule
/// really has no occurrence there: its years ended (systemd year lists), or every matching wall time falls in a
/// gap that the rule does not run in (e.g. `0,30 2 8-14 3 0` in New York since 2007). Instants outside the
/// years 1…9999 are not searched.
extension CalendarRule {
    /// How far `next` and `previous` search: one 400-year Gregorian cycle plus two days, in seconds.
    public static let searchHorizon: Int64 = (146_097 + 2) * Civil.secondsPerDay
    /// The first second searched: 0001-01-01 00:00:00 UTC.
    static let firstSecond: Int64 = Civil.days(year: 1, month: 1, day: 1) * Civil.secondsPerDay
    /// The last second searched: 9999-12-31 23:59:59 UTC.
    static let lastSecond: Int64 = Civil.days(year: 10_000, month: 1, day: 1) * Civil.secondsPerDay - 1

    /// The first occurrence strictly after `instant`.
    ///
    /// - Parameters:
    ///   - instant: Microseconds since the epoch, UTC.
    ///   - dst: The gap and fold policies (they matter for fixed-time rules only).
    /// - Returns: The occurrence, or `nil` when there is none within ``searchHorizon``.
    public func next(after instant: Int64, dst: DSTPolicy = .default) -> Occurrence? {
        let start = Civil.floorDiv(instant, 1_000_000) + 1
        guard start <= Self.lastSecond else { return nil }
        let from = max(start, Self.firstSecond)
        return fields.isFixedTime ? nextFixed(atOrAfter: from, dst: dst) : nextWildcard(atOrAfter: from)
    }

    /// The last occurrence strictly before `instant`.
    ///
    /// - Parameters:
    ///   - instant: Microseconds since the epoch, UTC.
    ///   - dst: The gap and fold policies.
    /// - Returns: The occurrence, or `nil` when there is none within ``searchHorizon``.
    public func previous(before instant: Int64, dst: DSTPolicy = .default) -> Occurrence? {
        let end = Civil.ceilDiv(instant, 1_000_000) - 1
        guard end >= Self.firstSecond else { return nil }
        let from = min(end, Self.lastSecond)
        return fields.isFixedTime ? previousFixed(atOrBefore: from, dst: dst) : previousWildcard(atOrBefore: from)
    }

    /// Whether `instant` (microseconds since the epoch) is an occurrence.
    public func matches(_ instant: Int64, dst: DSTPolicy = .default) -> Bool {
        let t = Civil.floorDiv(instant, 1_000_000)
        guard t * 1_000_000 == instant, t >= Self.firstSecond, t <= Self.lastSecond else { return false }
        guard fields.isFixedTime else {
            return fields.matches(wall: t + Int64(timeZone.utcOffset(atSecond: t)))
        }
        let tod = Int64(fields.hours.min * 3600 + fields.minutes.min * 60 + fields.seconds.min)
        var day = Civil.ceilDiv(t + Int64(timeZone.minimumOffset) - tod, Civil.secondsPerDay)
        while day * Civil.secondsPerDay + tod <= t + Int64(timeZone.maximumOffset) {
            let wall = day * Civil.secondsPerDay + tod
            if fields.matches(wall: wall), fixedCandidates(wall: wall, dst: dst).contains(where: { $0.0 == t }) {
                return true
            }
            day += 1
        }
        return false
    }

    /// The first `count` occurrences strictly after `instant`, increasing (fewer if the horizon ends them).
    public func occurrences(after instant: Int64, count: Int, dst: DSTPolicy = .default) -> [Occurrence] {
        var out: [Occurrence] = []
        var cursor = instant
        while out.count < count, let o = next(after: cursor, dst: dst) {
            out.append(o)
            cursor = o.instant
        }
        return out
    }

    // MARK: - Rules that are not fixed-time: walk the zone's constant-offset segments.

    private func nextWildcard(atOrAfter start: Int64) -> Occurrence? {
        let limit = min(start + Self.searchHorizon, Self.lastSecond)
        var t = start
        while t <= limit {
            let segment = timeZone.segment(containing: t)
            let offset = Int64(segment.offset)
            let last = segment.end == .max ? limit : min(segment.end - 1, limit)
            if let wall = fields.nextWall(atOrAfter: t + offset, notAfter: last + offset) {
                return wildcardOccurrence(wall: wall, segment: segment)
            }
            if segment.end == .max { return nil }
            t = segment.end
        }
        return nil
    }

    private func previousWildcard(atOrBefore end: Int64) -> Occurrence? {
        let limit = max(end - Self.searchHorizon, Self.firstSecond)
        var t = end
        while t >= limit {
            let segment = timeZone.segment(containing: t)
            let offset = Int64(segment.offset)
            let first = segment.start == .min ? limit : max(segment.start, limit)
            if let wall = fields.previousWall(atOrBefore: t + offset, notBefore: first + offset) {
                return wildcardOccurrence(wall: wall, segment: segment)
            }
            if segment.start == .min { return nil }
            t = segment.start - 1
        }
        return nil
    }

    /// An occurrence at `wall` in `segment`, marked when that wall time occurs twice (a preview shows it).
    private func wildcardOccurrence(wall: Int64, segment: ZoneInfo.Segment) -> Occurrence {
        let instant = wall - Int64(segment.offset)
        let spread = Int64(timeZone.maximumOffset) - Int64(timeZone.minimumOffset)
        var adjustment = DSTAdjustment.none
        // Only near a transition can the same wall time belong to another segment too.
        let nearStart = segment.start != .min && instant - segment.start <= spread
        let nearEnd = segment.end != .max && segment.end - instant <= spread
        if nearStart || nearEnd,
           case .instants(let all) = timeZone.resolve(wall: wall), all.count > 1 {
            adjustment = all.first == instant ? .firstOfFold : .secondOfFold
        }
        return Occurrence(instant: instant * 1_000_000, scheduled: LocalDateTime(wallSeconds: wall),
                          utcOffset: segment.offset, adjustment: adjustment)
    }

    // MARK: - Fixed-time rules: one wall time per matching day, resolved with the policies.

    /// The instants (seconds) that the wall time `wall` yields under `dst`.
    func fixedCandidates(wall: Int64, dst: DSTPolicy) -> [(Int64, DSTAdjustment)] {
        switch timeZone.resolve(wall: wall) {
        case .instants(let all):
            guard let first = all.first, let last = all.last else { return [] }
            if all.count == 1 { return [(first, .none)] }
            switch dst.fold {
            case .first: return [(first, .firstOfFold)]
            case .last: return [(last, .secondOfFold)]
            case .both: return all.enumerated().map { ($0.element, $0.offset == 0 ? .firstOfFold : .secondOfFold) }
            }
        case .gap(let transition, let before, _):
            switch dst.gap {
            case .shift: return [(wall - Int64(before), .shiftedOutOfGap)]
            case .skip: return []
            case .atChange: return [(transition, .atGapTransition)]
            }
        }
    }

    /// Whether candidate `c` should replace `best`: earlier (or later, going back), or the same instant
    /// reached without a DST adjustment.
    private func prefer(_ c: (Int64, DSTAdjustment), over best: (Int64, DSTAdjustment, Int64)?,
                        forward: Bool) -> Bool {
        guard let best else { return true }
        if c.0 == best.0 { return best.1 != .none && c.1 == .none }
        return forward ? c.0 < best.0 : c.0 > best.0
    }

    private func nextFixed(atOrAfter start: Int64, dst: DSTPolicy) -> Occurrence? {
        let minOffset = Int64(timeZone.minimumOffset), maxOffset = Int64(timeZone.maximumOffset)
        // Any candidate >= start comes from a wall time >= start + minOffset, and a wall time w yields nothing
        // before w - maxOffset: so walk matching days from there and stop once w - maxOffset passes the best.
        let limit = min(start + Self.searchHorizon, Self.lastSecond) + maxOffset
        var cursor = start + minOffset
        var best: (Int64, DSTAdjustment, Int64)?
        while let wall = fields.nextWall(atOrAfter: cursor, notAfter: limit) {
            if let best, wall - maxOffset > best.0 { break }
            for c in fixedCandidates(wall: wall, dst: dst) where c.0 >= start && prefer(c, over: best, forward: true) {
                best = (c.0, c.1, wall)
            }
            cursor = wall + 1
        }
        return best.map(fixedOccurrence)
    }

    private func previousFixed(atOrBefore end: Int64, dst: DSTPolicy) -> Occurrence? {
        let minOffset = Int64(timeZone.minimumOffset), maxOffset = Int64(timeZone.maximumOffset)
        let limit = max(end - Self.searchHorizon, Self.firstSecond) + minOffset
        var cursor = end + maxOffset
        var best: (Int64, DSTAdjustment, Int64)?
        while let wall = fields.previousWall(atOrBefore: cursor, notBefore: limit) {
            if let best, wall - minOffset < best.0 { break }
            for c in fixedCandidates(wall: wall, dst: dst) where c.0 <= end && prefer(c, over: best, forward: false) {
                best = (c.0, c.1, wall)
            }
            cursor = wall - 1
        }
        return best.map(fixedOccurrence)
    }

    private func fixedOccurrence(_ c: (Int64, DSTAdjustment, Int64)) -> Occurrence {
        Occurrence(instant: c.0 * 1_000_000, scheduled: LocalDateTime(wallSeconds: c.2),
                   utcOffset: timeZone.utcOffset(atSecond: c.0), adjustment: c.1)
    }
}
