import Testing
import TaskShedCalendar

/// Every kind of refusal, with its exact text for a representative set.
@Suite struct ErrorMessageTests {
    struct Case: Sendable, CustomStringConvertible {
        var expression: String
        var syntax: CalendarSyntax
        var code: CalendarExpressionError.Code
        var message: String
        var description: String { expression }
    }

    static let cases: [Case] = [
        Case(expression: "", syntax: .cron, code: .empty,
             message: "empty expression: a cron expression has 5 fields (minute hour day-of-month month day-of-week)"),
        Case(expression: "0 0 32 * *", syntax: .cron, code: .outOfRange,
             message: "day-of-month: \"32\" is out of range 1…31"),
        Case(expression: "60 * * * *", syntax: .cron, code: .outOfRange, message: "minute: \"60\" is out of range 0…59"),
        Case(expression: "0 24 * * *", syntax: .cron, code: .outOfRange, message: "hour: \"24\" is out of range 0…23"),
        Case(expression: "0 0 * 13 *", syntax: .cron, code: .outOfRange, message: "month: \"13\" is out of range 1…12"),
        Case(expression: "0 0 * * 8", syntax: .cron, code: .outOfRange,
             message: "day-of-week: \"8\" is out of range 0…7"),
        Case(expression: "0 0 * FOO *", syntax: .cron, code: .invalidToken,
             message: "month: \"FOO\" is not a number or a month name (JAN…DEC)"),
        Case(expression: "0 0 * * MONDAY", syntax: .cron, code: .invalidToken,
             message: "day-of-week: \"MONDAY\" is not a number or a day name (SUN…SAT)"),
        Case(expression: "x 0 * * *", syntax: .cron, code: .invalidToken, message: "minute: \"x\" is not a number"),
        Case(expression: "0 5-1 * * *", syntax: .cron, code: .reversedRange,
             message: "hour: \"5-1\" is a reversed range; write the smaller value first"),
        Case(expression: "0 0 * * FRI-MON", syntax: .cron, code: .reversedRange,
             message: "day-of-week: \"FRI-MON\" is a reversed range; write the smaller value first"),
        Case(expression: "*/0 * * * *", syntax: .cron, code: .invalidStep,
             message: "minute: \"*/0\" has step 0; a step must be 1…59"),
        Case(expression: "*/x * * * *", syntax: .cron, code: .invalidStep,
             message: "minute: \"*/x\" has step \"x\", which is not a number"),
        Case(expression: "1,,2 * * * *", syntax: .cron, code: .invalidToken,
             message: "minute: \"1,,2\" has an empty list item"),
        Case(expression: "*,5 * * * *", syntax: .cron, code: .invalidToken,
             message: "minute: \"*,5\" combines \"*\" with other values; \"*\" already means every value"),
        Case(expression: "0 0 * * * *", syntax: .cron, code: .ambiguousFieldCount,
             message: "expression has 6 fields; TaskShed reads cron as exactly 5 (minute hour day-of-month month "
                + "day-of-week). 6 fields are ambiguous: Quartz puts seconds first, Temporal puts the year last. "
                + "For seconds or years use the systemd calendar syntax (e.g. \"*-*-* 09:00:30\")"),
        Case(expression: "0 0 * * * * 2030", syntax: .cron, code: .ambiguousFieldCount,
             message: "expression has 7 fields; TaskShed reads cron as exactly 5 (minute hour day-of-month month "
                + "day-of-week). 7 fields are ambiguous: Quartz puts seconds first, Temporal puts the year last. "
                + "For seconds or years use the systemd calendar syntax (e.g. \"*-*-* 09:00:30\")"),
        Case(expression: "0 0 *", syntax: .cron, code: .wrongFieldCount,
             message: "expression has 3 fields; a cron expression has exactly 5 (minute hour day-of-month month "
                + "day-of-week)"),
        Case(expression: "@reboot", syntax: .cron, code: .unsupportedShorthand,
             message: "\"@reboot\" is not a calendar schedule: it means \"when cron starts\", which is not a time; "
                + "add a one-off task when the worker starts instead"),
        Case(expression: "@every 5m", syntax: .cron, code: .unknownShorthand,
             message: "\"@every\" is not a cron shorthand; use @yearly, @annually, @monthly, @weekly, @daily, "
                + "@midnight or @hourly"),
        Case(expression: "0 0 30 2 *", syntax: .cron, code: .neverMatches,
             message: "\"0 0 30 2 *\" never matches: no date satisfies its day, month and weekday fields together"),
        Case(expression: "0 0 31 4,6,9,11 *", syntax: .cron, code: .neverMatches,
             message: "\"0 0 31 4,6,9,11 *\" never matches: no date satisfies its day, month and weekday fields "
                + "together"),
        Case(expression: "CRON_TZ= 0 0 * * *", syntax: .cron, code: .invalidToken,
             message: "time zone: \"CRON_TZ=\" names no zone; write e.g. CRON_TZ=Europe/Berlin"),
        Case(expression: "CRON_TZ=Mars/Olympus 0 0 * * *", syntax: .cron, code: .unknownTimeZone,
             message: "time zone: \"Mars/Olympus\" is not a zone in the system tzdata (/usr/share/zoneinfo)"),
        Case(expression: "CRON_TZ=../../etc/passwd 0 0 * * *", syntax: .cron, code: .unknownTimeZone,
             message: "time zone: \"../../etc/passwd\" is not a zone in the system tzdata (/usr/share/zoneinfo)"),
        Case(expression: "CRON_TZ=zone.tab 0 0 * * *", syntax: .cron, code: .unknownTimeZone,
             message: "time zone: \"zone.tab\" is not a zone in the system tzdata (/usr/share/zoneinfo)"),
        // systemd
        Case(expression: "*-02-30", syntax: .systemd, code: .neverMatches,
             message: "\"*-02-30\" never matches: no date satisfies its day, month, year and weekday fields together"),
        Case(expression: "*-*-* 24:00", syntax: .systemd, code: .outOfRange, message: "hour: \"24\" is out of range 0…23"),
        Case(expression: "*-*-* 0:0:60", syntax: .systemd, code: .outOfRange,
             message: "second: \"60\" is out of range 0…59"),
        Case(expression: "*-13-1", syntax: .systemd, code: .outOfRange, message: "month: \"13\" is out of range 1…12"),
        Case(expression: "*-*-~32", syntax: .systemd, code: .outOfRange, message: "day: \"32\" is out of range 1…31"),
        Case(expression: "1969-*-*", syntax: .systemd, code: .outOfRange,
             message: "year: \"1969\" is out of range 1970…2199"),
        Case(expression: "Fri..Mon", syntax: .systemd, code: .reversedRange,
             message: "weekday: \"Fri..Mon\" is a reversed range; weeks run Mon..Sun"),
        Case(expression: "Thur 09:00", syntax: .systemd, code: .invalidToken,
             message: "weekday: \"Thur\" is not a weekday (Mon…Sun, or Monday…Sunday)"),
        Case(expression: "*-*-* 5..1:00", syntax: .systemd, code: .reversedRange,
             message: "hour: \"5..1\" is a reversed range; write the smaller value first"),
        Case(expression: "*:*/15", syntax: .systemd, code: .invalidToken,
             message: "minute: \"*/15\" combines \"*\" with a list, range or step, which systemd does not allow; "
                + "write e.g. \"00/15\" for every 15 from 0"),
        Case(expression: "*-*-* 00:00:00.5", syntax: .systemd, code: .fractionalSeconds,
             message: "second: \"00.5\" has a fraction; TaskShed schedules whole seconds"),
        Case(expression: "*-*-* 00:00:00/0", syntax: .systemd, code: .invalidStep,
             message: "second: \"00/0\" has step \"0\"; a step must be a whole number of at least 1"),
        Case(expression: "*-*-* 1:2:3:4", syntax: .systemd, code: .invalidToken,
             message: "time: \"1:2:3:4\" is not a time; write h:m or h:m:s"),
        Case(expression: "*-*-*-* 0:0", syntax: .systemd, code: .invalidToken,
             message: "date: \"*-*-*-*\" is not a date; write Y-M-D or M-D, with ~ before the day to count from the "
                + "month's end"),
        Case(expression: "*-*-* 02:30 Bogus/Zone", syntax: .systemd, code: .unknownTimeZone,
             message: "time zone: \"Bogus/Zone\" is not a zone in the system tzdata (/usr/share/zoneinfo)"),
        Case(expression: "09:00 UTC extra", syntax: .systemd, code: .invalidToken,
             message: "expression: \"extra\" is not a weekday list, date, time or time zone in this position; systemd "
                + "calendar events are [weekdays] [date] [time] [time zone], e.g. \"Mon..Fri *-*-* 09:00:00 "
                + "Europe/Berlin\""),
        Case(expression: "  ", syntax: .systemd, code: .empty,
             message: "empty expression: systemd calendar events are [weekdays] [date] [time] [time zone], e.g. "
                + "\"Mon..Fri *-*-* 09:00:00 Europe/Berlin\""),
    ]

    @Test(arguments: cases) func refusedWithItsMessage(_ c: Case) throws {
        let error = try #require(parseError(c.expression, c.syntax))
        #expect(error.code == c.code)
        #expect(error.message == c.message)
        #expect(error.description == c.message)
    }

    @Test func errorsNameTheFieldAndToken() throws {
        let error = try #require(parseError("0 0 32 * *", .cron))
        #expect(error.field == "day-of-month")
        #expect(error.token == "32")
        let zone = try #require(parseError("30 2 * * *", .cron, zone: "Europe/Berlinn"))
        #expect(zone.code == .unknownTimeZone && zone.token == "Europe/Berlinn")
    }

    @Test func theDefaultZoneIsValidatedToo() {
        #expect(parseError("daily", .systemd, zone: "Nowhere") != nil)
        #expect(parseError("daily", .systemd, zone: "UTC") == nil)
    }
}
