/// The POSIX `TZ` string at the end of a TZif v2+ file (RFC 8536 §3.3), e.g. `EST5EDT,M3.2.0,M11.1.0`: the rule
/// for instants after the file's last explicit transition, which is how tzdata describes the future.
///
/// Offsets are kept as seconds east of UTC (POSIX writes them west-positive; they are negated on parse).
/// Transition times may be negative or exceed 24 h (the RFC 8536 extension, hours -167…167).
struct PosixTimeZone: Sendable, Hashable {
    /// A day-of-year rule: `Jn` (1…365, February 29 never counted), `n` (0…365), or `Mm.w.d`.
    enum DayRule: Sendable, Hashable {
        case julianNoLeap(Int)
        case zeroBased(Int)
        case monthWeekDay(month: Int, week: Int, weekday: Int)

        /// The day number (days since 1970-01-01) this rule names in `year`.
        func day(in year: Int) -> Int64 {
            switch self {
            case .julianNoLeap(let n):
                let jan1 = Civil.days(year: year, month: 1, day: 1)
                let leapShift: Int64 = (Civil.isLeap(year) && n >= 60) ? 1 : 0
                return jan1 + Int64(n - 1) + leapShift
            case .zeroBased(let n):
                return Civil.days(year: year, month: 1, day: 1) + Int64(n)
            case .monthWeekDay(let month, let week, let weekday):
                let first = Civil.days(year: year, month: month, day: 1)
                let firstWeekday = Civil.weekday(days: first)
                var day = 1 + (weekday - firstWeekday + 7) % 7 + (week - 1) * 7
                let length = Civil.daysInMonth(year: year, month: month)
                while day > length { day -= 7 }
                return first + Int64(day - 1)
            }
        }
    }

    /// Standard time's offset east of UTC, seconds.
    var standardOffset: Int32
    /// Daylight time: its offset and the rules (day and local time of day) for its start and end.
    struct Daylight: Sendable, Hashable {
        var offset: Int32
        var start: DayRule
        var startTime: Int32
        var end: DayRule
        var endTime: Int32
    }

    /// Daylight time, or `nil` when the zone has none.
    var daylight: Daylight?

    /// One transition produced by the rule: the instant (UTC seconds) and the offsets either side.
    struct Transition {
        var instant: Int64
        var before: Int32
        var after: Int32
    }

    /// The rule's transitions in `year`, in increasing order (none without daylight time).
    func transitions(in year: Int) -> [Transition] {
        guard let dst = daylight, dst.offset != standardOffset else { return [] }
        // The start time is written in the local time in effect before it (standard), the end in daylight time.
        let start = dst.start.day(in: year) * Civil.secondsPerDay + Int64(dst.startTime) - Int64(standardOffset)
        let end = dst.end.day(in: year) * Civil.secondsPerDay + Int64(dst.endTime) - Int64(dst.offset)
        let a = Transition(instant: start, before: standardOffset, after: dst.offset)
        let b = Transition(instant: end, before: dst.offset, after: standardOffset)
        return start <= end ? [a, b] : [b, a]
    }

    /// Parses a footer; `nil` when it is empty or malformed (the zone then keeps its last explicit offset).
    init?(_ text: String) {
        var scanner = Scanner(Array(text.utf8))
        guard scanner.skipName(), let std = scanner.offset() else { return nil }
        standardOffset = -std
        if scanner.atEnd { daylight = nil; return }
        guard scanner.skipName() else { return nil }
        var dstOffset = standardOffset + 3600
        if !scanner.atEnd, scanner.peek != UInt8(ascii: ",") {
            guard let o = scanner.offset() else { return nil }
            dstOffset = -o
        }
        // POSIX leaves the default rules to the implementation; tzdata always writes them. Use the US rules.
        var start = DayRule.monthWeekDay(month: 3, week: 2, weekday: 0)
        var end = DayRule.monthWeekDay(month: 11, week: 1, weekday: 0)
        var startTime: Int32 = 7200
        var endTime: Int32 = 7200
        if scanner.consume(UInt8(ascii: ",")) {
            guard let s = scanner.dayRule() else { return nil }
            start = s
            if scanner.consume(UInt8(ascii: "/")) { guard let t = scanner.offset() else { return nil }; startTime = t }
            guard scanner.consume(UInt8(ascii: ",")), let e = scanner.dayRule() else { return nil }
            end = e
            if scanner.consume(UInt8(ascii: "/")) { guard let t = scanner.offset() else { return nil }; endTime = t }
        }
        guard scanner.atEnd else { return nil }
        daylight = Daylight(offset: dstOffset, start: start, startTime: startTime, end: end, endTime: endTime)
    }

    /// A byte cursor over the footer text.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[index] }

        mutating func consume(_ byte: UInt8) -> Bool {
            if peek == byte { index += 1; return true }
            return false
        }

        /// A zone abbreviation: `<…>` or three or more letters.
        mutating func skipName() -> Bool {
            if consume(UInt8(ascii: "<")) {
                while let b = peek, b != UInt8(ascii: ">") { index += 1 }
                return consume(UInt8(ascii: ">"))
            }
            let start = index
            while let b = peek, (b >= 65 && b <= 90) || (b >= 97 && b <= 122) { index += 1 }
            return index - start >= 3
        }

        mutating func number() -> Int? {
            var value = 0
            var digits = 0
            while let b = peek, b >= 48, b <= 57 {
                value = value * 10 + Int(b - 48)
                digits += 1
                index += 1
                if digits > 6 { return nil }
            }
            return digits == 0 ? nil : value
        }

        /// `[+-]hh[:mm[:ss]]` as signed seconds (as written, west-positive for offsets).
        mutating func offset() -> Int32? {
            var sign: Int32 = 1
            if consume(UInt8(ascii: "-")) { sign = -1 } else { _ = consume(UInt8(ascii: "+")) }
            guard let h = number(), h <= 167 else { return nil }
            var seconds = h * 3600
            if consume(UInt8(ascii: ":")) {
                guard let m = number(), m < 60 else { return nil }
                seconds += m * 60
                if consume(UInt8(ascii: ":")) {
                    guard let s = number(), s < 60 else { return nil }
                    seconds += s
                }
            }
            return sign * Int32(seconds)
        }

        mutating func dayRule() -> DayRule? {
            if consume(UInt8(ascii: "J")) {
                guard let n = number(), (1...365).contains(n) else { return nil }
                return .julianNoLeap(n)
            }
            if consume(UInt8(ascii: "M")) {
                guard let m = number(), (1...12).contains(m), consume(UInt8(ascii: ".")),
                      let w = number(), (1...5).contains(w), consume(UInt8(ascii: ".")),
                      let d = number(), (0...6).contains(d) else { return nil }
                return .monthWeekDay(month: m, week: w, weekday: d)
            }
            guard let n = number(), (0...365).contains(n) else { return nil }
            return .zeroBased(n)
        }
    }
}
