extension CalendarRule {
    /// One hour in microseconds: the default catch-up window.
    public static let defaultCatchUpWindow: Int64 = 3_600_000_000

    /// How many missed occurrences outside the window are counted one by one before the count is reported as
    /// a lower bound (a secondly rule down for a year would otherwise take seconds to count).
    public static let catchUpCountLimit = 100_000

    /// Decides what to run after downtime. Pure: the daemon applies the plan and records the counts.
    ///
    /// The missed occurrences are those in `(lastHandled, now]`. Those before `now - window` are skipped
    /// (outside the window); of the rest, `skip` runs none, `one` runs the latest, `all(max: n)` runs the latest
    /// `n` (oldest first). Case 13 of the acceptance table: `*/5 * * * *`, down 2026-03-07 23:00Z → 08:00Z,
    /// misses 108 occurrences, 13 of them in the default hour; `one` runs 1, `all(max: 3)` 3, `skip` 0, and
    /// `next` is 08:05Z in every case.
    ///
    /// - Parameters:
    ///   - lastHandled: The last occurrence already run or skipped (µs since the epoch).
    ///   - now: The current time (µs since the epoch).
    ///   - window: How far back missed occurrences still run, µs (default one hour; negative counts as 0).
    ///   - policy: `skip`, `one` (default) or `all(max:)` (a maximum below 0 counts as 0).
    ///   - dst: The gap and fold policies.
    /// - Returns: The plan.
    public func catchUp(lastHandled: Int64, now: Int64, window: Int64 = defaultCatchUpWindow,
                        policy: CatchUpPolicy = .one, dst: DSTPolicy = .default) -> CatchUpPlan {
        let windowStart = now - max(0, window)
        var outside = 0
        var exact = true
        var cursor = lastHandled
        // Count (only) the occurrences in (lastHandled, windowStart).
        while let o = next(after: cursor, dst: dst), o.instant < windowStart, o.instant <= now {
            if outside == Self.catchUpCountLimit {
                exact = false
                break
            }
            outside += 1
            cursor = o.instant
        }
        // The window's occurrences, [max(windowStart, lastHandled + 1), now].
        var inWindow: [Occurrence] = []
        cursor = max(lastHandled, windowStart - 1)
        let keep: Int
        switch policy {
        case .skip: keep = 0
        case .one: keep = 1
        case .all(let maximum): keep = max(0, maximum)
        }
        var seen = 0
        while let o = next(after: cursor, dst: dst), o.instant <= now {
            seen += 1
            inWindow.append(o)
            // Only the latest `keep` are run: drop the oldest as newer ones arrive, so memory stays bounded.
            if inWindow.count > max(keep, 1) { inWindow.removeFirst() }
            cursor = o.instant
        }
        let run = keep == 0 ? [] : Array(inWindow.suffix(keep))
        var byPolicy = 0
        var overMaximum = 0
        switch policy {
        case .skip: byPolicy = seen
        case .one: byPolicy = max(0, seen - 1)
        case .all: overMaximum = seen - run.count
        }
        return CatchUpPlan(runNow: run, skippedOutsideWindow: outside, skippedOutsideWindowIsExact: exact,
                           skippedByPolicy: byPolicy, skippedOverMaximum: overMaximum,
                           next: next(after: now, dst: dst))
    }
}
