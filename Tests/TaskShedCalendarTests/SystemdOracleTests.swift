import Testing
import TaskShedCalendar

/// systemd calendar forms checked against `systemd-analyze calendar --iterations=4 --base-time=…` (systemd 252),
/// captured on 2026-12-07; the expected instants are written out, nothing is run at test time.
@Suite struct SystemdOracleTests {
    struct Case: Sendable, CustomStringConvertible {
        var expression: String
        var base: String
        var normalized: String
        var runs: [String]
        var description: String { expression }
    }

    /// Cases where systemd's normalised form and TaskShed's are the same text.
    static let cases: [Case] = [
        Case(expression: "Mon..Fri 09:00", base: "2026-01-01 00:00", normalized: "Mon..Fri *-*-* 09:00:00",
             runs: ["2026-01-01 09:00:00", "2026-01-02 09:00:00", "2026-01-05 09:00:00", "2026-01-06 09:00:00"]),
        Case(expression: "Mon..Fri *-*-* 09:00:00 Europe/Berlin", base: "2026-01-01 00:00",
             normalized: "Mon..Fri *-*-* 09:00:00 Europe/Berlin",
             runs: ["2026-01-01 08:00:00", "2026-01-02 08:00:00", "2026-01-05 08:00:00", "2026-01-06 08:00:00"]),
        Case(expression: "Sat,Sun 10:30", base: "2026-01-01 00:00", normalized: "Sat,Sun *-*-* 10:30:00",
             runs: ["2026-01-03 10:30:00", "2026-01-04 10:30:00", "2026-01-10 10:30:00", "2026-01-11 10:30:00"]),
        Case(expression: "*-*~01", base: "2026-01-01 00:00", normalized: "*-*~01 00:00:00",
             runs: ["2026-01-31 00:00:00", "2026-02-28 00:00:00", "2026-03-31 00:00:00", "2026-04-30 00:00:00"]),
        Case(expression: "*-02~03", base: "2026-01-01 00:00", normalized: "*-02~03 00:00:00",
             runs: ["2026-02-26 00:00:00", "2027-02-26 00:00:00", "2028-02-27 00:00:00", "2029-02-26 00:00:00"]),
        Case(expression: "*-*-01", base: "2026-01-01 00:00", normalized: "*-*-01 00:00:00",
             runs: ["2026-02-01 00:00:00", "2026-03-01 00:00:00", "2026-04-01 00:00:00", "2026-05-01 00:00:00"]),
        Case(expression: "*-*-* *:00/15:00", base: "2026-01-01 00:00", normalized: "*-*-* *:00/15:00",
             runs: ["2026-01-01 00:15:00", "2026-01-01 00:30:00", "2026-01-01 00:45:00", "2026-01-01 01:00:00"]),
        Case(expression: "*-*-* 09:05:03/20", base: "2026-01-01 00:00", normalized: "*-*-* 09:05:03/20",
             runs: ["2026-01-01 09:05:03", "2026-01-01 09:05:23", "2026-01-01 09:05:43", "2026-01-02 09:05:03"]),
        Case(expression: "semiannually", base: "2026-01-01 00:00", normalized: "*-01,07-01 00:00:00",
             runs: ["2026-07-01 00:00:00", "2027-01-01 00:00:00", "2027-07-01 00:00:00", "2028-01-01 00:00:00"]),
        Case(expression: "weekly Europe/Berlin", base: "2026-01-01 00:00",
             normalized: "Mon *-*-* 00:00:00 Europe/Berlin",
             runs: ["2026-01-04 23:00:00", "2026-01-11 23:00:00", "2026-01-18 23:00:00", "2026-01-25 23:00:00"]),
        Case(expression: "hourly", base: "2026-01-01 00:00", normalized: "*-*-* *:00:00",
             runs: ["2026-01-01 01:00:00", "2026-01-01 02:00:00", "2026-01-01 03:00:00", "2026-01-01 04:00:00"]),
        Case(expression: "minutely", base: "2026-01-01 00:00", normalized: "*-*-* *:*:00",
             runs: ["2026-01-01 00:01:00", "2026-01-01 00:02:00", "2026-01-01 00:03:00", "2026-01-01 00:04:00"]),
        Case(expression: "annually", base: "2026-01-01 00:00", normalized: "*-01-01 00:00:00",
             runs: ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00", "2030-01-01 00:00:00"]),
        Case(expression: "daily Asia/Kolkata", base: "2026-01-01 00:00", normalized: "*-*-* 00:00:00 Asia/Kolkata",
             runs: ["2026-01-01 18:30:00", "2026-01-02 18:30:00", "2026-01-03 18:30:00", "2026-01-04 18:30:00"]),
        Case(expression: "2027-*-* 00:00", base: "2026-01-01 00:00", normalized: "2027-*-* 00:00:00",
             runs: ["2027-01-01 00:00:00", "2027-01-02 00:00:00", "2027-01-03 00:00:00", "2027-01-04 00:00:00"]),
        Case(expression: "Mon *-02-29", base: "2026-01-01 00:00", normalized: "Mon *-02-29 00:00:00",
             runs: ["2044-02-29 00:00:00", "2072-02-29 00:00:00", "2112-02-29 00:00:00", "2140-02-29 00:00:00"]),
        Case(expression: "*-01..03/1-05", base: "2026-01-01 00:00", normalized: "*-01..03-05 00:00:00",
             runs: ["2026-01-05 00:00:00", "2026-02-05 00:00:00", "2026-03-05 00:00:00", "2027-01-05 00:00:00"]),
        Case(expression: "Thursday,Friday 2012..2030-*-1,5 11:12:13", base: "2026-01-01 00:00",
             normalized: "Thu,Fri 2012..2030-*-01,05 11:12:13",
             runs: ["2026-01-01 11:12:13", "2026-02-05 11:12:13", "2026-03-05 11:12:13", "2026-05-01 11:12:13"]),
        Case(expression: "Wed, 17:48", base: "2026-01-01 00:00", normalized: "Wed *-*-* 17:48:00",
             runs: ["2026-01-07 17:48:00", "2026-01-14 17:48:00", "2026-01-21 17:48:00", "2026-01-28 17:48:00"]),
        // DST cases where systemd and the default rules agree (fold: first; a whole missing day, wall 12:00).
        Case(expression: "*-*-* 01:30 America/New_York", base: "2026-10-31 00:00",
             normalized: "*-*-* 01:30:00 America/New_York",
             runs: ["2026-10-31 05:30:00", "2026-11-01 05:30:00", "2026-11-02 06:30:00", "2026-11-03 06:30:00"]),
        Case(expression: "*-*-* 12:00:00 Pacific/Apia", base: "2011-12-28 00:00",
             normalized: "*-*-* 12:00:00 Pacific/Apia",
             runs: ["2011-12-28 22:00:00", "2011-12-29 22:00:00", "2011-12-30 22:00:00", "2011-12-31 22:00:00"]),
    ]

    @Test(arguments: cases) func matchesSystemdAnalyze(_ c: Case) throws {
        let rule = try systemd(c.expression)
        #expect(rule.normalized == c.normalized)
        #expect(nextRuns(rule, after: c.base, count: 4) == c.runs)
        #expect(try systemd(rule.normalized) == rule)
    }

    /// Where systemd's normalised text keeps the written structure and TaskShed prints the set canonically
    /// (a progression that runs to the field's top as a step, other lists as runs): the instants are systemd's.
    @Test func canonicalTextDiffersFromSystemdButNotTheInstants() throws {
        let quarterly = try systemd("quarterly")
        #expect(quarterly.normalized == "*-01/3-01 00:00:00")  // systemd: *-01,04,07,10-01 00:00:00
        #expect(nextRuns(quarterly, after: "2026-01-01 00:00", count: 4)
            == ["2026-04-01 00:00:00", "2026-07-01 00:00:00", "2026-10-01 00:00:00", "2027-01-01 00:00:00"])
        let fromEnd = try systemd("*-01~02..07/3")
        #expect(fromEnd.normalized == "*-01~02,05 00:00:00")  // systemd: *-01~02..05/3 00:00:00
        #expect(nextRuns(fromEnd, after: "2026-01-01 00:00", count: 4)
            == ["2026-01-27 00:00:00", "2026-01-30 00:00:00", "2027-01-27 00:00:00", "2027-01-30 00:00:00"])
        let hours = try systemd("*-*-* 1..5/2:00")
        #expect(hours.normalized == "*-*-* 01,03,05:00:00")  // systemd: *-*-* 01..05/2:00:00
        #expect(nextRuns(hours, after: "2026-01-01 00:00", count: 4)
            == ["2026-01-01 01:00:00", "2026-01-01 03:00:00", "2026-01-01 05:00:00", "2026-01-02 01:00:00"])
        #expect(try systemd(hours.normalized) == hours)
        #expect(try systemd(quarterly.normalized) == quarterly)
        #expect(try systemd(fromEnd.normalized) == fromEnd)
    }

    /// systemd accepts a date that can never match and reports "Next elapse: never"; TaskShed refuses it.
    @Test func aDateThatNeverMatchesIsRefusedWhereSystemdSaysNever() {
        // 2012-10-15 was a Monday; systemd 252 normalises this to "Tue..Sat 2012-10-15 01:02:03" and "never".
        #expect(parseError("Wed..Sat,Tue 12-10-15 1:2:3", .systemd)?.code == .neverMatches)
        #expect(parseError("*-02-30", .systemd)?.code == .neverMatches)
        #expect(parseError("2024,2025-02-29", .systemd) == nil)
    }

    @Test func lastMondayOfMayKeepsSystemdsInstants() throws {
        let rule = try systemd("Mon *-05~07/1")
        #expect(rule.normalized == "Mon *-05~01..07 00:00:00")
        #expect(nextRuns(rule, after: "2026-01-01 00:00", count: 4)
            == ["2026-05-25 00:00:00", "2027-05-31 00:00:00", "2028-05-29 00:00:00", "2029-05-28 00:00:00"])
    }

    /// `*-*-~1` is the spelling the issue uses; systemd 252 refuses it (it wants `*-*~1`). TaskShed takes both.
    @Test func tildeAfterADashIsAcceptedAsTheLastDay() throws {
        #expect(try systemd("*-*-~1") == systemd("*-*~1"))
    }

    /// Gap policy `skip` reproduces systemd on fixed-time rules (systemd: `02:30 New York` has no run on
    /// 2026-03-08; `Fri 09:00 Apia` skips the Friday that never existed; Lord Howe 02:15 skips 10-04).
    @Test func gapSkipReproducesSystemd() throws {
        let skip = DSTPolicy(gap: .skip)
        #expect(nextRuns(try systemd("*-*-* 02:30 America/New_York"), after: "2026-03-07 00:00", count: 4, dst: skip)
            == ["2026-03-07 07:30:00", "2026-03-09 06:30:00", "2026-03-10 06:30:00", "2026-03-11 06:30:00"])
        #expect(nextRuns(try systemd("Fri *-*-* 09:00:00 Pacific/Apia"), after: "2011-12-25 00:00", count: 2, dst: skip)
            == ["2012-01-05 19:00:00", "2012-01-12 19:00:00"])
        #expect(nextRuns(try systemd("*-*-* 02:15:00 Australia/Lord_Howe"), after: "2026-10-02 00:00", count: 3,
                         dst: skip)
            == ["2026-10-02 15:45:00", "2026-10-04 15:15:00", "2026-10-05 15:15:00"])
    }

    /// systemd drops the second pass of a repeated hour for wildcard times (05:30Z → 07:00Z); TaskShed keeps
    /// real spacing, by design (issue 19).
    @Test func wildcardTimesKeepTheSecondPassUnlikeSystemd() throws {
        let rule = try systemd("*-*-* *:00/30 America/New_York")
        #expect(nextRuns(rule, after: "2026-11-01 05:00", count: 4)
            == ["2026-11-01 05:30:00", "2026-11-01 06:00:00", "2026-11-01 06:30:00", "2026-11-01 07:00:00"])
    }

    @Test func twoDigitYearsFollowSystemd() throws {
        #expect(try systemd("12-*-* 1:2").normalized == "2012-*-* 01:02:00")
        #expect(try systemd("99-01-01").normalized == "1999-01-01 00:00:00")
        #expect(try systemd("70-01-01").normalized == "1970-01-01 00:00:00")
        #expect(try systemd("2003-03-05 05:40 UTC").normalized == "2003-03-05 05:40:00")
        #expect(try systemd("12-*-* 1:2").next(after: utc("2026-01-01 00:00")) == nil)
    }

    @Test func weekdaysNormaliseLikeSystemd() throws {
        #expect(try systemd("Sat,Thu,Mon..Wed,Sat..Sun").normalized == "Mon..Thu,Sat,Sun *-*-* 00:00:00")
        #expect(try systemd("Wed..Sat,Tue 12-10-16 1:2:3").normalized == "Tue..Sat 2012-10-16 01:02:03")
        #expect(try systemd("monday *-12-* 17:00").normalized == "Mon *-12-* 17:00:00")
        #expect(try systemd("Mon..Sun").normalized == "*-*-* 00:00:00")
        #expect(try systemd("Mon,Fri *-*-3,1,2 *:30:45").normalized == "Mon,Fri *-*-01..03 *:30:45")
        #expect(try systemd("12,14,13,12:20,10,30").normalized == "*-*-* 12..14:10,20,30:00")
        #expect(try systemd("*:2/3").normalized == "*-*-* *:02/3:00")
        #expect(try systemd("10-15").normalized == "*-10-15 00:00:00")
        #expect(try systemd("Wed *-1").normalized == "Wed *-*-01 00:00:00")
    }
}
