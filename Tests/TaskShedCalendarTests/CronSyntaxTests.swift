import Testing
import TaskShedCalendar

/// Vixie cron forms: what each one matches, as UTC instants.
@Suite struct CronSyntaxTests {
    @Test func leapDayWaitsForTheNextLeapYear() throws {
        let rule = try cron("0 0 29 2 *")
        #expect(nextRuns(rule, after: "2025-03-01 00:00", count: 3)
            == ["2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00"])
        // 2100 is not a leap year: 2096 → 2104.
        #expect(nextRuns(rule, after: "2096-03-01 00:00", count: 1) == ["2104-02-29 00:00:00"])
        #expect(rule.previous(before: utc("2028-02-29 00:00")).map { utcText($0.instant) } == "2024-02-29 00:00:00")
    }

    @Test func weekdaysAtNine() throws {
        let rule = try cron("0 9 * * MON-FRI", "America/New_York")
        // Fri 2026-03-06, then Mon 03-09 (EDT since 03-08: 13:00Z).
        #expect(nextRuns(rule, after: "2026-03-06 00:00", count: 3)
            == ["2026-03-06 14:00:00", "2026-03-09 13:00:00", "2026-03-10 13:00:00"])
        #expect(try cron("0 9 * * 1-5") == rule.withUTC())
    }

    @Test func lastDayOfTheMonth() throws {
        let rule = try cron("30 23 L * *")
        #expect(nextRuns(rule, after: "2026-01-31 23:30", count: 4) == [
            "2026-02-28 23:30:00", "2026-03-31 23:30:00", "2026-04-30 23:30:00", "2026-05-31 23:30:00",
        ])
        #expect(nextRuns(try cron("0 0 L 2 *"), after: "2027-03-01 00:00", count: 1) == ["2028-02-29 00:00:00"])
        #expect(nextRuns(try cron("0 0 1,15,L * *"), after: "2026-04-01 00:00", count: 3)
            == ["2026-04-15 00:00:00", "2026-04-30 00:00:00", "2026-05-01 00:00:00"])
    }

    /// Vixie: when both day fields are restricted a day matches if either does; a field starting with `*`
    /// (even `*/2`) counts as unrestricted, so then both must match.
    @Test func vixieDayFieldRule() throws {
        // The 13th or any Friday: Fri 2026-02-06, 02-13 (both), 02-20, 02-27, 03-06, Fri 03-13 …
        #expect(nextRuns(try cron("0 0 13 * 5"), after: "2026-02-01 00:00", count: 5) == [
            "2026-02-06 00:00:00", "2026-02-13 00:00:00", "2026-02-20 00:00:00", "2026-02-27 00:00:00",
            "2026-03-06 00:00:00",
        ])
        // Day-of-month */2 starts with *, so it is ANDed: odd days that are Mondays.
        #expect(nextRuns(try cron("0 0 */2 * MON"), after: "2026-02-01 00:00", count: 3)
            == ["2026-02-09 00:00:00", "2026-02-23 00:00:00", "2026-03-09 00:00:00"])
        // 1-31 does not start with *: ORed with Monday, so every day.
        #expect(nextRuns(try cron("0 0 1-31 * MON"), after: "2026-02-01 00:00", count: 2)
            == ["2026-02-02 00:00:00", "2026-02-03 00:00:00"])
        // L or Sunday.
        #expect(nextRuns(try cron("0 0 L * 0"), after: "2026-02-22 00:00", count: 2)
            == ["2026-02-28 00:00:00", "2026-03-01 00:00:00"])
    }

    @Test func cronTZPrefixSetsTheZone() throws {
        let rule = try cron("CRON_TZ=Europe/Berlin 30 2 * * *")
        #expect(rule.timeZoneIdentifier == "Europe/Berlin")
        #expect(nextRuns(rule, after: "2026-07-01 00:00", count: 1) == ["2026-07-01 00:30:00"])
        #expect(try cron("TZ=Europe/Berlin 30 2 * * *") == rule)
        // The prefix wins over the default zone.
        #expect(try cron("CRON_TZ=Europe/Berlin 30 2 * * *", "Asia/Tehran") == rule)
        #expect(try cron("30 2 * * *", "Europe/Berlin") == rule)
        #expect(rule.normalized == "CRON_TZ=Europe/Berlin 30 2 * * *")
    }

    @Test func macrosExpand() throws {
        #expect(try cron("@yearly").normalized == "0 0 1 1 *")
        #expect(try cron("@annually") == cron("0 0 1 1 *"))
        #expect(try cron("@monthly").normalized == "0 0 1 * *")
        #expect(try cron("@weekly").normalized == "0 0 * * 0")
        #expect(try cron("@daily") == cron("0 0 * * *"))
        #expect(try cron("@midnight") == cron("0 0 * * *"))
        #expect(try cron("@HOURLY").normalized == "0 * * * *")
        #expect(try cron("CRON_TZ=Asia/Kolkata @daily").normalized == "CRON_TZ=Asia/Kolkata 0 0 * * *")
    }

    @Test func namesStepsAndSundaySeven() throws {
        #expect(try cron("0 0 * jan-mar,Dec sun,7").normalized == "0 0 * 1-3,12 0")
        #expect(try cron("0 0 * * 5-7").normalized == "0 0 * * 0,5,6")
        #expect(try cron("*/15 */6 * * *").normalized == "*/15 */6 * * *")
        #expect(try cron("5/15 1-10/3 * * *").normalized == "5-50/15 1,4,7,10 * * *")
        #expect(try cron("0-59 0-23 * 1-12 *").normalized == "* * * * *")
        #expect(try cron("0 0 1-31 * 0-6").normalized == "0 0 1-31 * 0-6")
        #expect(nextRuns(try cron("5/15 * * * *"), after: "2026-01-01 00:00", count: 4)
            == ["2026-01-01 00:05:00", "2026-01-01 00:20:00", "2026-01-01 00:35:00", "2026-01-01 00:50:00"])
    }

    @Test func fixedTimeIsVixiesDefinition() throws {
        #expect(try cron("30 2 * * *").isFixedTime)
        #expect(try cron("30 2-2 * * 1-5").isFixedTime)
        #expect(try !cron("0,30 2 * * *").isFixedTime)
        #expect(try !cron("30 * * * *").isFixedTime)
        #expect(try systemd("Mon 09:00:00").isFixedTime)
        #expect(try !systemd("09:00:00/30").isFixedTime)
    }
}

extension CalendarRule {
    /// The same expression in UTC (for comparing rules that differ only in zone).
    func withUTC() throws -> CalendarRule {
        try CalendarRule(normalized.split(separator: " ").drop(while: { $0.hasPrefix("CRON_TZ=") })
                            .joined(separator: " "), syntax: syntax)
    }
}
