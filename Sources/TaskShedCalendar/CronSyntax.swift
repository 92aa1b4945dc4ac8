/// Vixie cron expressions: parsing into `CalendarFields` and the canonical text form.
///
/// Five fields, `minute hour day-of-month month day-of-week`, each `*`, a value, a range `a-b`, a step
/// (`*/s`, `a-b/s`, and `a/s` meaning `a-max/s`), or a comma list of those; month names `JAN`…`DEC` and day
/// names `SUN`…`SAT` (any case, also in ranges); day-of-week 0…7 with 7 = Sunday; `L` in day-of-month for the
/// month's last day; `@yearly @annually @monthly @weekly @daily @midnight @hourly`; an optional `CRON_TZ=Zone`
/// or `TZ=Zone` prefix. When both day fields are restricted a day matches if either matches; a field that
/// starts with `*` (including `*/2`) counts as unrestricted, exactly as in Vixie cron.
enum CronSyntax {
    /// One field's name, range and names.
    struct Field {
        var name: String
        var low: Int
        var high: Int
        /// The highest value `*` stands for (day-of-week: 6, although 7 is accepted as Sunday).
        var starHigh: Int
        var names: [String]
        var namesStart: Int
        var nameKind: String
    }

    static let minute = Field(name: "minute", low: 0, high: 59, starHigh: 59, names: [], namesStart: 0, nameKind: "")
    static let hour = Field(name: "hour", low: 0, high: 23, starHigh: 23, names: [], namesStart: 0, nameKind: "")
    static let dayOfMonth = Field(name: "day-of-month", low: 1, high: 31, starHigh: 31, names: [], namesStart: 0,
                                  nameKind: "")
    static let month = Field(name: "month", low: 1, high: 12, starHigh: 12,
                             names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                     "DEC"],
                             namesStart: 1, nameKind: "a month name (JAN…DEC)")
    static let dayOfWeek = Field(name: "day-of-week", low: 0, high: 7, starHigh: 6,
                                 names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
                                 namesStart: 0, nameKind: "a day name (SUN…SAT)")

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    static let fieldList = "minute hour day-of-month month day-of-week"

    /// Parses a cron expression into its fields and the zone its prefix names, if any.
    static func parse(_ text: String) throws(CalendarExpressionError) -> (fields: CalendarFields, zone: String?) {
        var words = FieldText.words(text)
        var zone: String?
        if let first = words.first, first.hasPrefix("CRON_TZ=") || first.hasPrefix("TZ=") {
            let name = first.drop(while: { $0 != "=" }).dropFirst()
            guard !name.isEmpty else {
                throw .token(.invalidToken, field: "time zone", token: String(first),
                             "names no zone; write e.g. CRON_TZ=Europe/Berlin")
            }
            zone = String(name)
            words.removeFirst()
        }
        guard let first = words.first else {
            throw CalendarExpressionError(code: .empty, message: "empty expression: a cron expression has 5 fields "
                                          + "(\(fieldList))")
        }
        if first.hasPrefix("@") {
            let name = first.lowercased()
            if name == "@reboot" {
                throw CalendarExpressionError(
                    code: .unsupportedShorthand, token: String(first),
                    message: "\"@reboot\" is not a calendar schedule: it means \"when cron starts\", which is not a "
                        + "time; add a one-off task when the worker starts instead")
            }
            guard let expansion = macros[name] else {
                throw CalendarExpressionError(
                    code: .unknownShorthand, token: String(first),
                    message: "\"\(first)\" is not a cron shorthand; use @yearly, @annually, @monthly, @weekly, "
                        + "@daily, @midnight or @hourly")
            }
            guard words.count == 1 else {
                throw CalendarExpressionError(
                    code: .wrongFieldCount, token: String(words[1]),
                    message: "\"\(first)\" stands for a whole expression; nothing may follow it (found \"\(words[1])\")")
            }
            words = FieldText.words(expansion)
        }
        switch words.count {
        case 5: break
        case 6, 7:
            throw CalendarExpressionError(
                code: .ambiguousFieldCount,
                message: "expression has \(words.count) fields; TaskShed reads cron as exactly 5 (\(fieldList)). "
                    + "\(words.count) fields are ambiguous: Quartz puts seconds first, Temporal puts the year last. "
                    + "For seconds or years use the systemd calendar syntax (e.g. \"*-*-* 09:00:30\")")
        default:
            throw CalendarExpressionError(
                code: .wrongFieldCount,
                message: "expression has \(words.count) field\(words.count == 1 ? "" : "s"); a cron expression has "
                    + "exactly 5 (\(fieldList))")
        }
        let minutes = try parseField(words[0], minute)
        let hours = try parseField(words[1], hour)
        let days = try parseField(words[2], dayOfMonth)
        let months = try parseField(words[3], month)
        let weekdays = try parseField(words[4], dayOfWeek)
        var fromEnd = FieldSet.empty
        if days.last { fromEnd = .single(1) }
        let fields = CalendarFields(
            seconds: .single(0), minutes: minutes.set, hours: hours.set, daysOfMonth: days.set,
            daysFromEnd: fromEnd, months: months.set, weekdays: weekdays.set, years: .any,
            eitherDayField: !days.starred && !weekdays.starred,
            dayOfMonthStarred: days.starred, dayOfWeekStarred: weekdays.starred)
        return (fields, zone)
    }

    /// One field: its set, whether it starts with `*`, and (day-of-month) whether it holds `L`.
    private static func parseField(_ text: Substring, _ field: Field) throws(CalendarExpressionError)
        -> (set: FieldSet, starred: Bool, last: Bool) {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        if items.count > 1, items.contains(where: { $0.hasPrefix("*") }) {
            throw .token(.invalidToken, field: field.name, token: String(text),
                         "combines \"*\" with other values; \"*\" already means every value")
        }
        var set = FieldSet.empty
        var last = false
        for item in items {
            if item.isEmpty {
                throw .token(.invalidToken, field: field.name, token: String(text), "has an empty list item")
            }
            if field.name == dayOfMonth.name, item.uppercased() == "L" {
                last = true
                continue
            }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, !parts[0].isEmpty else {
                throw .token(.invalidToken, field: field.name, token: String(item),
                             "is not a value, range (a-b) or step (*/s, a-b/s)")
            }
            var step = 1
            if parts.count == 2 {
                let span = field.starHigh - field.low
                guard let s = FieldText.number(parts[1]) else {
                    throw .token(.invalidStep, field: field.name, token: String(item),
                                 "has step \"\(parts[1])\", which is not a number")
                }
                guard s >= 1, s <= span else {
                    throw .token(.invalidStep, field: field.name, token: String(item),
                                 "has step \(s); a step must be 1…\(span)")
                }
                step = s
            }
            var low: Int
            var high: Int
            if parts[0] == "*" {
                (low, high) = (field.low, field.starHigh)
            } else {
                let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else {
                    throw .token(.invalidToken, field: field.name, token: String(item), "is not a range (a-b)")
                }
                low = try value(bounds[0], field)
                if bounds.count == 2 {
                    high = try value(bounds[1], field)
                    guard low <= high else {
                        throw .token(.reversedRange, field: field.name, token: String(parts[0]),
                                     "is a reversed range; write the smaller value first")
                    }
                } else {
                    high = parts.count == 2 ? field.starHigh : low
                }
            }
            var values = FieldSet.empty
            values.insert(low, through: high, step: step)
            if field.name == dayOfWeek.name, values.contains(7) {
                values.bits &= ~(1 << 7)
                values.bits |= 1
            }
            set.bits |= values.bits
        }
        return (set, text.hasPrefix("*"), last)
    }

    /// A number or (month, day-of-week) a three-letter name.
    private static func value(_ text: Substring, _ field: Field) throws(CalendarExpressionError) -> Int {
        if let n = FieldText.number(text) {
            guard n >= field.low, n <= field.high else {
                throw .token(.outOfRange, field: field.name, token: String(text),
                             "is out of range \(field.low)…\(field.high)")
            }
            return n
        }
        if let index = field.names.firstIndex(of: text.uppercased()) { return index + field.namesStart }
        let what = field.names.isEmpty ? "is not a number" : "is not a number or \(field.nameKind)"
        throw .token(.invalidToken, field: field.name, token: String(text), what)
    }

    /// The canonical text: see `CalendarRule.normalized`.
    static func format(_ fields: CalendarFields, zone: String?) -> String {
        var days = fields.daysOfMonth.isEmpty
            ? "" : render(fields.daysOfMonth, dayOfMonth, allowStar: fields.dayOfMonthStarred)
        if fields.daysFromEnd.contains(1) { days += days.isEmpty ? "L" : ",L" }
        let text = [
            render(fields.minutes, minute, allowStar: true),
            render(fields.hours, hour, allowStar: true),
            days,
            render(fields.months, month, allowStar: true),
            render(fields.weekdays, dayOfWeek, allowStar: fields.dayOfWeekStarred),
        ].joined(separator: " ")
        return zone.map { "CRON_TZ=\($0) " + text } ?? text
    }

    private static func render(_ set: FieldSet, _ field: Field, allowStar: Bool) -> String {
        let values = set.values
        if allowStar, set == .range(field.low, field.starHigh) { return "*" }
        // A progression that runs to the field's top is written as a step, other lists as runs.
        if let step = FieldText.progressionStep(values), values[values.count - 1] + step > field.starHigh {
            if allowStar, values[0] == field.low { return "*/\(step)" }
            if values.count >= 3 { return "\(values[0])-\(values[values.count - 1])/\(step)" }
        }
        return FieldText.runList(values, separator: "-") { String($0) }
    }
}
