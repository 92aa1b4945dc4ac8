/// systemd calendar events (`man systemd.time`, systemd 252): parsing into `CalendarFields` and the normalised
/// text `systemd-analyze calendar` prints.
///
/// `[weekdays] [date] [time] [zone]`: weekdays `Mon..Fri`, `Sat,Sun` (short or full English names, any case);
/// date `Y-M-D` or `M-D`, with `~` before the day to count from the month's end (`*-02~03`, `*-*~01`; the
/// spelling `*-*-~1` is accepted too); time `h:m[:s]`; each component `*`, a value, `a..b`, `v/r` (v, v+r, … up
/// to the field's maximum; after `~`, toward the month's end), `a..b/r`, or a comma list of those; an IANA zone
/// or `UTC` last; or one of the shorthands `minutely hourly daily weekly monthly yearly annually quarterly
/// semiannually` (optionally followed by a zone). A missing date means every day, a missing time 00:00:00, a
/// missing second :00. Years are 1970…2199 (two-digit years: 70…99 → 19xx, 00…69 → 20xx), as in systemd.
/// Refused although systemd accepts them: fractional seconds (TaskShed schedules whole seconds) and local time
/// zone abbreviations such as `CET` that are not tzdata file names.
enum SystemdCalendarSyntax {
    static let shorthands: [String: String] = [
        "minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
        "monthly": "*-*-01 00:00:00", "weekly": "Mon *-*-* 00:00:00", "yearly": "*-01-01 00:00:00",
        "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
        "semiannually": "*-01,07-01 00:00:00",
    ]

    /// Weekday names in ISO order (Monday first), short then full.
    static let weekdayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    static let fullWeekdayNames = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    /// One numeric component's name and range.
    struct Component {
        var name: String
        var low: Int
        var high: Int
    }

    static let year = Component(name: "year", low: 1970, high: 2199)
    static let month = Component(name: "month", low: 1, high: 12)
    static let day = Component(name: "day", low: 1, high: 31)
    static let hour = Component(name: "hour", low: 0, high: 23)
    static let minute = Component(name: "minute", low: 0, high: 59)
    static let second = Component(name: "second", low: 0, high: 59)

    static let shape = "systemd calendar events are [weekdays] [date] [time] [time zone], e.g. "
        + "\"Mon..Fri *-*-* 09:00:00 Europe/Berlin\""

    /// Parses a calendar event into its fields and the zone it names, if any.
    static func parse(_ text: String) throws(CalendarExpressionError) -> (fields: CalendarFields, zone: String?) {
        var words = FieldText.words(text)
        guard let first = words.first else {
            throw CalendarExpressionError(code: .empty, message: "empty expression: \(shape)")
        }
        if let expansion = shorthands[first.lowercased()] {
            words = FieldText.words(expansion) + words.dropFirst()
        }
        var index = 0
        var weekdays = FieldSet.range(0, 6)
        var sawWeekdays = false
        if let w = words.first, w.first?.isLetter == true, words.count > 1 || !w.contains("/") {
            // "Wed, 17:48" is allowed: a list may end in a comma before the next word.
            let list = w.hasSuffix(",") ? w.dropLast() : w
            weekdays = try parseWeekdays(list)
            sawWeekdays = true
            index = 1
        }
        var dateWord: Substring?
        var timeWord: Substring?
        var zone: String?
        if index < words.count, let c = words[index].first, c == "*" || c.isNumber, !words[index].contains(":") {
            dateWord = words[index]
            index += 1
        }
        if index < words.count, let c = words[index].first, c == "*" || c.isNumber, words[index].contains(":") {
            timeWord = words[index]
            index += 1
        }
        if index < words.count, words[index].first?.isLetter == true {
            zone = String(words[index])
            index += 1
        }
        if index < words.count {
            throw .token(.invalidToken, field: "expression", token: String(words[index]),
                         "is not a weekday list, date, time or time zone in this position; \(shape)")
        }
        guard sawWeekdays || dateWord != nil || timeWord != nil else {
            throw .token(.invalidToken, field: "expression", token: text.trimmingWhitespace,
                         "names no weekday, date or time; \(shape)")
        }
        var fields = CalendarFields(
            seconds: .single(0), minutes: .single(0), hours: .single(0), daysOfMonth: .range(1, 31),
            daysFromEnd: .empty, months: .range(1, 12), weekdays: weekdays, years: .any,
            eitherDayField: false, dayOfMonthStarred: false, dayOfWeekStarred: false)
        if let dateWord { try parseDate(dateWord, into: &fields) }
        if let timeWord { try parseTime(timeWord, into: &fields) }
        return (fields, zone)
    }

    private static func parseWeekdays(_ text: Substring) throws(CalendarExpressionError) -> FieldSet {
        var set = FieldSet.empty
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = FieldText.splitRange(item)
            guard !item.isEmpty, bounds.count <= 2 else {
                throw .token(.invalidToken, field: "weekday", token: String(text),
                             "is not a weekday list (e.g. Mon..Fri or Sat,Sun)")
            }
            let low = try weekday(bounds[0])
            var high = low
            if bounds.count == 2 { high = try weekday(bounds[1]) }
            guard low <= high else {
                throw .token(.reversedRange, field: "weekday", token: String(item),
                             "is a reversed range; weeks run Mon..Sun")
            }
            for iso in low...high { set.bits |= 1 << UInt64(iso % 7) }
        }
        return set
    }

    /// An ISO weekday number, Monday = 1 … Sunday = 7.
    private static func weekday(_ name: Substring) throws(CalendarExpressionError) -> Int {
        let lower = name.lowercased()
        if let i = weekdayNames.firstIndex(of: lower) ?? fullWeekdayNames.firstIndex(of: lower) { return i + 1 }
        throw .token(.invalidToken, field: "weekday", token: String(name),
                     "is not a weekday (Mon…Sun, or Monday…Sunday)")
    }

    private static func parseDate(_ word: Substring, into fields: inout CalendarFields) throws(CalendarExpressionError) {
        var left = word
        var dayText: Substring
        var fromEnd = false
        if let tilde = word.firstIndex(of: "~") {
            fromEnd = true
            left = word[..<tilde]
            dayText = word[word.index(after: tilde)...]
            if left.hasSuffix("-") { left = left.dropLast() }
            guard !left.isEmpty else {
                throw .token(.invalidToken, field: "date", token: String(word), "has no month before \"~\"")
            }
        } else {
            let parts = word.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3, let last = parts.last else {
                throw .token(.invalidToken, field: "date", token: String(word),
                             "is not a date; write Y-M-D or M-D, with ~ before the day to count from the month's end")
            }
            dayText = last
            left = word[..<word.index(word.endIndex, offsetBy: -(last.count + 1))]
        }
        let head = left.split(separator: "-", omittingEmptySubsequences: false)
        guard head.count == 1 || head.count == 2 else {
            throw .token(.invalidToken, field: "date", token: String(word),
                         "is not a date; write Y-M-D or M-D, with ~ before the day to count from the month's end")
        }
        if head.count == 2 {
            if head[0] != "*" {
                var years = FieldSet.empty
                let values = try parseComponent(head[0], year, yearDigits: true, set: &years)
                fields.years = YearSet(years: values)
            }
        }
        _ = try parseComponent(head[head.count - 1], month, set: &fields.months)
        if fromEnd {
            fields.daysOfMonth = .empty
            _ = try parseComponent(dayText, day, towardEnd: true, set: &fields.daysFromEnd)
        } else {
            _ = try parseComponent(dayText, day, set: &fields.daysOfMonth)
        }
    }

    private static func parseTime(_ word: Substring, into fields: inout CalendarFields) throws(CalendarExpressionError) {
        let parts = word.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else {
            throw .token(.invalidToken, field: "time", token: String(word), "is not a time; write h:m or h:m:s")
        }
        _ = try parseComponent(parts[0], hour, set: &fields.hours)
        _ = try parseComponent(parts[1], minute, set: &fields.minutes)
        if parts.count == 3 { _ = try parseComponent(parts[2], second, set: &fields.seconds) }
    }

    /// Parses one component into `set` (years, which do not fit 64 bits, are returned as a sorted list instead).
    ///
    /// `towardEnd`: after `~`, `v/r` means v, v-r, … down to 1 (systemd: `~07/1` is the last seven days).
    private static func parseComponent(_ text: Substring, _ component: Component, yearDigits: Bool = false,
                                       towardEnd: Bool = false,
                                       set: inout FieldSet) throws(CalendarExpressionError) -> [Int]? {
        var all: [Int] = []
        if text == "*" {
            set = .range(component.low, component.high)
            return nil
        }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else {
                throw .token(.invalidToken, field: component.name, token: String(text), "has an empty list item")
            }
            if item.hasPrefix("*") {
                throw .token(.invalidToken, field: component.name, token: String(item),
                             "combines \"*\" with a list, range or step, which systemd does not allow; write e.g. "
                                + "\"00/15\" for every 15 from 0")
            }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw .token(.invalidToken, field: component.name, token: String(item), "has more than one \"/\"")
            }
            let bounds = FieldText.splitRange(parts[0])
            guard bounds.count <= 2 else {
                throw .token(.invalidToken, field: component.name, token: String(item), "has more than one \"..\"")
            }
            let low = try value(bounds[0], component, yearDigits: yearDigits)
            var high = low
            if bounds.count == 2 { high = try value(bounds[1], component, yearDigits: yearDigits) }
            guard low <= high else {
                throw .token(.reversedRange, field: component.name, token: String(parts[0]),
                             "is a reversed range; write the smaller value first")
            }
            var step = 1
            if parts.count == 2 {
                if component.name == second.name, parts[1].contains(".") {
                    throw .token(.fractionalSeconds, field: component.name, token: String(item),
                                 "has a fraction; TaskShed schedules whole seconds")
                }
                guard let s = FieldText.number(parts[1]), s >= 1 else {
                    throw .token(.invalidStep, field: component.name, token: String(item),
                                 "has step \"\(parts[1])\"; a step must be a whole number of at least 1")
                }
                step = s
                if bounds.count == 1 { high = towardEnd ? low : component.high }
            }
            if towardEnd, parts.count == 2, bounds.count == 1 {
                var v = low
                while v >= component.low { all.append(v); v -= step }
            } else {
                var v = low
                while v <= high { all.append(v); v += step }
            }
        }
        let sorted = Array(Set(all)).sorted()
        if component.high < 64 {
            set = .empty
            for v in sorted { set.bits |= 1 << UInt64(v) }
        }
        return sorted
    }

    private static func value(_ text: Substring, _ component: Component,
                              yearDigits: Bool) throws(CalendarExpressionError) -> Int {
        if component.name == second.name, text.contains(".") {
            throw .token(.fractionalSeconds, field: component.name, token: String(text),
                         "has a fraction; TaskShed schedules whole seconds")
        }
        guard var n = FieldText.number(text) else {
            throw .token(.invalidToken, field: component.name, token: String(text), "is not a number")
        }
        if yearDigits, text.count <= 2 { n += n >= 70 ? 1900 : 2000 }
        guard n >= component.low, n <= component.high else {
            throw .token(.outOfRange, field: component.name, token: String(text),
                         "is out of range \(component.low)…\(component.high)")
        }
        return n
    }

    /// The normalised text: see `CalendarRule.normalized`.
    static func format(_ fields: CalendarFields, zone: String?) -> String {
        var words: [String] = []
        if fields.weekdays != .range(0, 6) {
            let iso = fields.weekdays.values.map { $0 == 0 ? 7 : $0 }.sorted()
            let names = ["", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            words.append(FieldText.runList(iso, separator: "..") { names[$0] })
        }
        let years = fields.years.years.map { render($0, year, width: 4) } ?? "*"
        let months = render(fields.months.values, month, width: 2)
        if fields.daysFromEnd.isEmpty {
            words.append("\(years)-\(months)-\(render(fields.daysOfMonth.values, day, width: 2))")
        } else {
            words.append("\(years)-\(months)~\(render(fields.daysFromEnd.values, day, width: 2, steps: .ranges))")
        }
        words.append([
            render(fields.hours.values, hour, width: 2),
            render(fields.minutes.values, minute, width: 2),
            render(fields.seconds.values, second, width: 2),
        ].joined(separator: ":"))
        if let zone { words.append(zone) }
        return words.joined(separator: " ")
    }

    /// Whether `v/r` may be used (not after `~`, where it would mean counting toward the month's end).
    enum StepForm { case any, ranges }

    private static func render(_ values: [Int], _ component: Component, width: Int, steps: StepForm = .any) -> String {
        if values.count == component.high - component.low + 1 { return "*" }
        // A progression that runs to the field's top is written `v/r`, as systemd's own shorthands read; other
        // lists as runs, as systemd prints them.
        if steps == .any, values.count >= 3, let step = FieldText.progressionStep(values),
           values[values.count - 1] + step > component.high {
            return "\(FieldText.padded(values[0], width))/\(step)"
        }
        return FieldText.runList(values, separator: "..") { FieldText.padded($0, width) }
    }
}
