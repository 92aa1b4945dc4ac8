/// The parsed fields of a rule, common to both syntaxes: the sets of seconds, minutes, hours, days, months,
/// weekdays and years it allows, and how the two day fields combine.
///
/// Matching is pure wall-clock arithmetic (no zone): a wall time is seconds on the local clock since
/// 1970-01-01 00:00. The zone enters only in `CalendarRule+Occurrences.swift`.
struct CalendarFields: Sendable, Hashable {
    /// Seconds 0…59 (cron: always {0}).
    var seconds: FieldSet
    /// Minutes 0…59.
    var minutes: FieldSet
    /// Hours 0…23.
    var hours: FieldSet
    /// Days of the month counted from the start, 1…31.
    var daysOfMonth: FieldSet
    /// Days counted from the month's end, 1 = the last day (cron `L`, systemd `~`).
    var daysFromEnd: FieldSet
    /// Months 1…12.
    var months: FieldSet
    /// Weekdays 0 = Sunday … 6 = Saturday.
    var weekdays: FieldSet
    /// Years (systemd only; cron allows every year).
    var years: YearSet
    /// Vixie's rule: when both day fields are restricted a day matches if either does (otherwise both must).
    var eitherDayField: Bool
    /// Cron only: the day-of-month field was written starting with `*` (kept so the text form round-trips).
    var dayOfMonthStarred: Bool
    /// Cron only: the day-of-week field was written starting with `*`.
    var dayOfWeekStarred: Bool

    /// A fixed-time rule names one time of day: hour, minute and second each a single value (Vixie's definition,
    /// extended to systemd's seconds). Only these get the gap and fold policies.
    var isFixedTime: Bool {
        hours.count == 1 && minutes.count == 1 && seconds.count == 1
    }

    /// The days of `month` in `year` that match, as bits 1…31.
    ///
    /// O(1): the weekday pattern is the 7-bit weekday set rotated to the month's first weekday and repeated.
    func dayMask(year: Int, month: Int) -> UInt64 {
        let length = Civil.daysInMonth(year: year, month: month)
        let lengthMask: UInt64 = ((1 << UInt64(length + 1)) - 1) & ~1
        var dom = daysOfMonth.bits & lengthMask
        var fromEnd = daysFromEnd.bits
        while fromEnd != 0 {
            let k = fromEnd.trailingZeroBitCount
            if k <= length { dom |= 1 << UInt64(length - k + 1) }
            fromEnd &= fromEnd - 1
        }
        let first = Civil.weekday(days: Civil.days(year: year, month: month, day: 1))
        let week = weekdays.bits & 0x7F
        let rotated = ((week >> UInt64(first)) | (week << UInt64(7 - first))) & 0x7F
        let dow = ((rotated | rotated << 7 | rotated << 14 | rotated << 21 | rotated << 28) << 1) & lengthMask
        return eitherDayField ? (dom | dow) & lengthMask : dom & dow
    }

    /// Whether some day of some year satisfies the date fields: a bounded search, done at parse.
    ///
    /// Without a year list the answer depends only on each allowed month's shape (its length and the weekday
    /// of its 1st). The 28 years 2000…2027 hold every shape: each month starting on each weekday, and
    /// Februaries of 28 and of 29 days each starting on each weekday (the test `everyMonthShapeOccursIn2000To2027`
    /// checks this), so trying those years' masks (at most 12 × 28, O(1) each) decides it; and since every shape
    /// recurs in every 400-year Gregorian cycle, a rule that passes matches in every such cycle, which is what
    /// bounds the occurrence search. With a year list (systemd, at most 230 years) every allowed (year, month)
    /// is tried.
    func matchesSomeDay() -> Bool {
        if let list = years.years {
            for year in list {
                for month in months.values where dayMask(year: year, month: month) != 0 { return true }
            }
            return false
        }
        // 2000…2027 is one 28-year solar cycle with no skipped leap year: leap years advance the weekday by 5
        // (coprime to 7), so the 7 leap Februaries start on 7 different weekdays, and so do the others.
        for month in months.values {
            for year in 2000...2027 where dayMask(year: year, month: month) != 0 { return true }
        }
        return false
    }

    /// Whether the wall time `wall` matches every field.
    func matches(wall: Int64) -> Bool {
        let day = Civil.floorDiv(wall, Civil.secondsPerDay)
        let tod = Int(wall - day * Civil.secondsPerDay)
        guard hours.contains(tod / 3600), minutes.contains(tod / 60 % 60), seconds.contains(tod % 60) else {
            return false
        }
        let date = Civil.date(fromDays: day)
        return years.contains(date.year) && months.contains(date.month)
            && dayMask(year: date.year, month: date.month) & (1 << UInt64(date.day)) != 0
    }

    /// The earliest matching time of day `>= tod` (seconds since midnight), or `nil`.
    func nextTime(atOrAfter tod: Int) -> Int? {
        let h = tod / 3600, m = tod / 60 % 60, s = tod % 60
        if hours.contains(h) {
            if minutes.contains(m), let ns = seconds.next(atOrAfter: s) { return h * 3600 + m * 60 + ns }
            if let nm = minutes.next(atOrAfter: m + 1) { return h * 3600 + nm * 60 + seconds.min }
        }
        if let nh = hours.next(atOrAfter: h + 1) { return nh * 3600 + minutes.min * 60 + seconds.min }
        return nil
    }

    /// The latest matching time of day `<= tod`, or `nil`.
    func previousTime(atOrBefore tod: Int) -> Int? {
        let h = tod / 3600, m = tod / 60 % 60, s = tod % 60
        if hours.contains(h) {
            if minutes.contains(m), let ps = seconds.previous(atOrBefore: s) { return h * 3600 + m * 60 + ps }
            if let pm = minutes.previous(atOrBefore: m - 1) { return h * 3600 + pm * 60 + seconds.max }
        }
        if let ph = hours.previous(atOrBefore: h - 1) { return ph * 3600 + minutes.max * 60 + seconds.max }
        return nil
    }

    /// The earliest matching wall time in `[wall, limit]`, or `nil`.
    ///
    /// Walks month by month (an unmatched month or year costs one step), so it takes at most one step per month
    /// up to `limit`.
    func nextWall(atOrAfter wall: Int64, notAfter limit: Int64) -> Int64? {
        var day = Civil.floorDiv(wall, Civil.secondsPerDay)
        var tod = Int(wall - day * Civil.secondsPerDay)
        var (year, month, dayOfMonth) = Civil.date(fromDays: day)
        while true {
            if Civil.days(year: year, month: month, day: 1) * Civil.secondsPerDay > limit { return nil }
            if !years.contains(year) {
                guard let next = years.next(atOrAfter: year + 1) else { return nil }
                (year, month, dayOfMonth, tod) = (next, 1, 1, 0)
                continue
            }
            if !months.contains(month) {
                if let next = months.next(atOrAfter: month + 1) {
                    (month, dayOfMonth, tod) = (next, 1, 0)
                } else {
                    (year, month, dayOfMonth, tod) = (year + 1, 1, 1, 0)
                }
                continue
            }
            var mask = dayMask(year: year, month: month) & ~((1 << UInt64(dayOfMonth)) - 1)
            while mask != 0 {
                let d = mask.trailingZeroBitCount
                if let time = nextTime(atOrAfter: d == dayOfMonth ? tod : 0) {
                    day = Civil.days(year: year, month: month, day: d)
                    let found = day * Civil.secondsPerDay + Int64(time)
                    return found <= limit ? found : nil
                }
                mask &= mask - 1
            }
            if month == 12 { (year, month) = (year + 1, 1) } else { month += 1 }
            (dayOfMonth, tod) = (1, 0)
        }
    }

    /// The latest matching wall time in `[limit, wall]`, or `nil`.
    func previousWall(atOrBefore wall: Int64, notBefore limit: Int64) -> Int64? {
        let day = Civil.floorDiv(wall, Civil.secondsPerDay)
        var tod = Int(wall - day * Civil.secondsPerDay)
        var (year, month, dayOfMonth) = Civil.date(fromDays: day)
        while true {
            let monthEnd = Civil.days(year: year, month: month, day: Civil.daysInMonth(year: year, month: month))
            if (monthEnd + 1) * Civil.secondsPerDay <= limit { return nil }
            if !years.contains(year) {
                guard let previous = years.previous(atOrBefore: year - 1) else { return nil }
                (year, month, dayOfMonth, tod) = (previous, 12, 31, 86_399)
                continue
            }
            if !months.contains(month) {
                if let previous = months.previous(atOrBefore: month - 1) {
                    month = previous
                } else {
                    (year, month) = (year - 1, 12)
                }
                (dayOfMonth, tod) = (Civil.daysInMonth(year: year, month: month), 86_399)
                continue
            }
            var mask = dayMask(year: year, month: month) & ((1 << UInt64(dayOfMonth + 1)) - 1)
            while mask != 0 {
                let d = 63 - mask.leadingZeroBitCount
                if let time = previousTime(atOrBefore: d == dayOfMonth ? tod : 86_399) {
                    let found = Civil.days(year: year, month: month, day: d) * Civil.secondsPerDay + Int64(time)
                    return found >= limit ? found : nil
                }
                mask &= ~(1 << UInt64(d))
            }
            if month == 1 { (year, month) = (year - 1, 12) } else { month -= 1 }
            (dayOfMonth, tod) = (Civil.daysInMonth(year: year, month: month), 86_399)
        }
    }
}
