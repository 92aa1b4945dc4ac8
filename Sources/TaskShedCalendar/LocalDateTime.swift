/// A wall-clock date and time with no zone: what a rule names ("02:30 on 2026-03-08"), or what a clock in some
/// zone shows at an instant.
public struct LocalDateTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The year (proleptic Gregorian).
    public var year: Int
    /// The month, 1…12.
    public var month: Int
    /// The day of the month, 1…31.
    public var day: Int
    /// The hour, 0…23.
    public var hour: Int
    /// The minute, 0…59.
    public var minute: Int
    /// The second, 0…59.
    public var second: Int

    /// Creates a wall-clock time from its fields (not validated: a day that does not exist in the month rolls
    /// over when converted to seconds).
    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// The wall time `seconds` after 1970-01-01 00:00:00 on the same wall clock (with `seconds` since the epoch,
    /// the UTC date and time).
    public init(wallSeconds seconds: Int64) {
        let days = Civil.floorDiv(seconds, Civil.secondsPerDay)
        let tod = Int(seconds - days * Civil.secondsPerDay)
        let date = Civil.date(fromDays: days)
        self.init(year: date.year, month: date.month, day: date.day,
                  hour: tod / 3600, minute: tod / 60 % 60, second: tod % 60)
    }

    /// Seconds since 1970-01-01 00:00:00 on the same wall clock (an instant only once a UTC offset is applied).
    public var wallSeconds: Int64 {
        Civil.days(year: year, month: month, day: day) * Civil.secondsPerDay
            + Int64(hour * 3600 + minute * 60 + second)
    }

    /// The weekday, 0 = Sunday … 6 = Saturday.
    public var weekday: Int {
        Civil.weekday(days: Civil.days(year: year, month: month, day: day))
    }

    /// `YYYY-MM-DD hh:mm:ss`.
    public var description: String {
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: Swift.max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
    }

    /// Orders by wall-clock time.
    public static func < (lhs: LocalDateTime, rhs: LocalDateTime) -> Bool {
        lhs.wallSeconds < rhs.wallSeconds
    }
}
