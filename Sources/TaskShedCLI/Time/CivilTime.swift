/// Calendar arithmetic on the proleptic Gregorian calendar, independent of any time zone.
///
/// Foundation's `Calendar` would do this too, but its answers for nonexistent or repeated local times are not
/// specified; the CLI needs an exact, documented rule (see `LocalTimeResolver`), so it works on plain numbers.
public struct CivilDateTime: Sendable, Hashable, CustomStringConvertible {
    /// Year (1...9999).
    public var year: Int
    /// Month (1...12).
    public var month: Int
    /// Day of the month (1...31).
    public var day: Int
    /// Hour (0...23).
    public var hour: Int
    /// Minute (0...59).
    public var minute: Int
    /// Second (0...59).
    public var second: Int
    /// Microseconds within the second (0...999_999).
    public var microsecond: Int

    /// Creates a civil date and time; the values are taken as given (see `isValid`).
    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, microsecond: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.microsecond = microsecond
    }

    /// Whether every field is in range, including the day for the month and year.
    public var isValid: Bool {
        guard (1...9999).contains(year), (1...12).contains(month) else { return false }
        return (1...CivilDateTime.daysInMonth(year: year, month: month)).contains(day)
            && (0...23).contains(hour) && (0...59).contains(minute) && (0...59).contains(second)
            && (0...999_999).contains(microsecond)
    }

    /// Number of days in a month of the Gregorian calendar.
    /// - Parameters:
    ///   - year: The year (leap years follow the Gregorian rule).
    ///   - month: The month, 1...12.
    /// - Returns: 28...31.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2:
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            return leap ? 29 : 28
        case 4, 6, 9, 11:
            return 30
        default:
            return 31
        }
    }

    /// Days since 1970-01-01 of a civil date (negative before it).
    ///
    /// The era-based day count of the proleptic Gregorian calendar: years are shifted to start in March so that
    /// the leap day falls at the end of the shifted year.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = month > 2 ? month - 3 : month + 9
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The civil date of a day count since 1970-01-01 (the inverse of `daysFromCivil`).
    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    /// Microseconds since the epoch if this civil time were UTC (or, for a local time, the "naive" value that
    /// a zone's offset is then subtracted from).
    public var naiveMicros: Int64 {
        let days = Int64(CivilDateTime.daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return seconds * 1_000_000 + Int64(microsecond)
    }

    /// The civil time of a naive microsecond count (the inverse of `naiveMicros`).
    /// - Parameter micros: Microseconds since 1970-01-01T00:00:00 in some fixed frame (UTC, or local).
    /// - Returns: The civil date and time.
    public static func fromNaiveMicros(_ micros: Int64) -> CivilDateTime {
        let (seconds, micro) = floorDivide(micros, 1_000_000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        let date = civilFromDays(Int(days))
        let sod = Int(secondOfDay)
        return CivilDateTime(
            year: date.year, month: date.month, day: date.day, hour: sod / 3600, minute: (sod % 3600) / 60,
            second: sod % 60, microsecond: Int(micro))
    }

    /// The same time of day on the next calendar day.
    public var nextDay: CivilDateTime {
        let next = CivilDateTime.civilFromDays(CivilDateTime.daysFromCivil(year: year, month: month, day: day) + 1)
        var copy = self
        copy.year = next.year
        copy.month = next.month
        copy.day = next.day
        return copy
    }

    /// `YYYY-MM-DD HH:MM:SS`.
    public var description: String {
        "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
    }
}

/// Division rounding toward negative infinity, with a remainder in `0..<divisor`.
func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
    var q = value / divisor
    var r = value % divisor
    if r < 0 {
        q -= 1
        r += divisor
    }
    return (q, r)
}

/// Zero-pads a non-negative number to `width` digits.
func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
