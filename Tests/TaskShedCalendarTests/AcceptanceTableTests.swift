import Testing
import TaskShedCalendar

/// Cases 1–13 of the acceptance table in scheduling-systems.md §2.5, with their UTC instants and the option
/// variants the table names (case 14, overlap, is the daemon's: `OverlapPolicy` is only a value here).
@Suite struct AcceptanceTableTests {
    @Test func case01NewYorkGapShiftsToTheOffsetBeforeTheGap() throws {
        let rule = try cron("30 2 * * *", "America/New_York")
        let first = try #require(rule.next(after: utc("2026-03-08 05:00")))
        #expect(utcText(first.instant) == "2026-03-08 07:30:00")
        #expect(first.adjustment == .shiftedOutOfGap)
        #expect(first.local.description == "2026-03-08 03:30:00")
        #expect(nextRuns(rule, after: "2026-03-07 08:00", count: 3)
            == ["2026-03-08 07:30:00", "2026-03-09 06:30:00", "2026-03-10 06:30:00"])
        #expect(nextRuns(rule, after: "2026-03-07 08:00", count: 2, dst: DSTPolicy(gap: .skip))
            == ["2026-03-09 06:30:00", "2026-03-10 06:30:00"])
        #expect(nextRuns(rule, after: "2026-03-08 05:00", count: 1, dst: DSTPolicy(gap: .atChange))
            == ["2026-03-08 07:00:00"])
    }

    @Test func case02NewYorkFoldRunsAtTheFirstOccurrence() throws {
        let rule = try cron("30 1 * * *", "America/New_York")
        #expect(nextRuns(rule, after: "2026-11-01 04:00", count: 2) == ["2026-11-01 05:30:00", "2026-11-02 06:30:00"])
        #expect(!rule.matches(utc("2026-11-01 06:30")))
        #expect(rule.next(after: utc("2026-11-01 04:00"))?.adjustment == .firstOfFold)
        #expect(nextRuns(rule, after: "2026-11-01 04:00", count: 1, dst: DSTPolicy(fold: .last))
            == ["2026-11-01 06:30:00"])
        #expect(nextRuns(rule, after: "2026-11-01 04:00", count: 3, dst: DSTPolicy(fold: .both))
            == ["2026-11-01 05:30:00", "2026-11-01 06:30:00", "2026-11-02 06:30:00"])
    }

    @Test func case03BerlinFoldRunsInSummerTime() throws {
        let rule = try cron("30 2 * * *", "Europe/Berlin")
        #expect(nextRuns(rule, after: "2026-10-24 12:00", count: 2) == ["2026-10-25 00:30:00", "2026-10-26 01:30:00"])
        #expect(!rule.matches(utc("2026-10-25 01:30")))
    }

    @Test func case04BerlinGapShiftsToThreeThirtySummerTime() throws {
        let rule = try cron("30 2 * * *", "Europe/Berlin")
        let run = try #require(rule.next(after: utc("2026-03-28 12:00")))
        #expect(utcText(run.instant) == "2026-03-29 01:30:00")
        #expect(run.local.description == "2026-03-29 03:30:00")
        #expect(run.scheduled.description == "2026-03-29 02:30:00")
    }

    @Test func case05LordHoweHalfHourGapShifts() throws {
        let rule = try cron("15 2 * * *", "Australia/Lord_Howe")
        let run = try #require(rule.next(after: utc("2026-10-03 10:00")))
        #expect(utcText(run.instant) == "2026-10-03 15:45:00")
        #expect(run.local.description == "2026-10-04 02:45:00")
        #expect(run.utcOffset == 11 * 3600)
        // systemd skips the day; so does gap: .skip.
        #expect(nextRuns(rule, after: "2026-10-02 10:00", count: 2, dst: DSTPolicy(gap: .skip))
            == ["2026-10-02 15:45:00", "2026-10-04 15:15:00"])
    }

    @Test func case06LordHoweHalfHourFold() throws {
        let rule = try cron("45 1 * * *", "Australia/Lord_Howe")
        #expect(nextRuns(rule, after: "2026-04-04 10:00", count: 1) == ["2026-04-04 14:45:00"])
        #expect(!rule.matches(utc("2026-04-04 15:15")))
        #expect(nextRuns(rule, after: "2026-04-04 10:00", count: 1, dst: DSTPolicy(fold: .last))
            == ["2026-04-04 15:15:00"])
    }

    @Test func case07WildcardKeepsRealSpacingThroughTheFold() throws {
        let rule = try cron("*/15 * * * *", "Australia/Lord_Howe")
        let runs = rule.occurrences(after: utc("2026-04-04 14:00"), count: 6)
        #expect(runs.map { utcText($0.instant) } == [
            "2026-04-04 14:15:00", "2026-04-04 14:30:00", "2026-04-04 14:45:00",
            "2026-04-04 15:00:00", "2026-04-04 15:15:00", "2026-04-04 15:30:00",
        ])
        #expect(runs.map(\.local.description) == [
            "2026-04-05 01:15:00", "2026-04-05 01:30:00", "2026-04-05 01:45:00",
            "2026-04-05 01:30:00", "2026-04-05 01:45:00", "2026-04-05 02:00:00",
        ])
        #expect(runs.map(\.adjustment) == [.none, .firstOfFold, .firstOfFold, .secondOfFold, .secondOfFold, .none])
    }

    @Test func case08WildcardHasNothingForWallTimesThatDoNotExist() throws {
        let rule = try cron("0 * * * *", "Australia/Lord_Howe")
        #expect(nextRuns(rule, after: "2026-10-03 14:00", count: 2) == ["2026-10-03 14:30:00", "2026-10-03 16:00:00"])
        #expect(!rule.matches(utc("2026-10-03 15:30")))
        #expect(rule.previous(before: utc("2026-10-03 16:00")).map { utcText($0.instant) } == "2026-10-03 14:30:00")
    }

    @Test func case09BothPassesOfTheRepeatedHourFire() throws {
        let rule = try cron("30 * * * *", "America/New_York")
        #expect(nextRuns(rule, after: "2026-11-01 04:00", count: 4) == [
            "2026-11-01 04:30:00", "2026-11-01 05:30:00", "2026-11-01 06:30:00", "2026-11-01 07:30:00",
        ])
    }

    @Test func case10ApiaMissingDayYieldsExactlyOneRun() throws {
        let rule = try cron("0 12 * * *", "Pacific/Apia")
        let runs = rule.occurrences(after: utc("2011-12-29 00:00"), count: 3)
        #expect(runs.map { utcText($0.instant) } == ["2011-12-29 22:00:00", "2011-12-30 22:00:00", "2011-12-31 22:00:00"])
        // Dec 30's shifted slot is the same instant as Dec 31 12:00 +14; the real one is reported.
        #expect(runs[1].adjustment == .none)
        #expect(runs[1].scheduled.description == "2011-12-31 12:00:00")
        #expect(rule.previous(before: utc("2011-12-31 22:00")).map { utcText($0.instant) } == "2011-12-30 22:00:00")
        #expect(rule.previous(before: utc("2011-12-30 22:00")).map { utcText($0.instant) } == "2011-12-29 22:00:00")
    }

    @Test func case11ApiaDayThatNeverExisted() throws {
        let rule = try cron("0 9 30 12 *", "Pacific/Apia")
        let shifted = try #require(rule.next(after: utc("2011-01-01 00:00")))
        #expect(utcText(shifted.instant) == "2011-12-30 19:00:00")
        #expect(shifted.adjustment == .shiftedOutOfGap)
        #expect(nextRuns(rule, after: "2011-01-01 00:00", count: 1, dst: DSTPolicy(gap: .skip))
            == ["2012-12-29 19:00:00"])
        #expect(nextRuns(rule, after: "2011-01-01 00:00", count: 1, dst: DSTPolicy(gap: .atChange))
            == ["2011-12-30 10:00:00"])
    }

    @Test func case12ApiaFridayThatNeverExisted() throws {
        let rule = try cron("0 9 * * 5", "Pacific/Apia")
        let shifted = try #require(rule.next(after: utc("2011-12-25 00:00")))
        #expect(utcText(shifted.instant) == "2011-12-30 19:00:00")
        #expect(shifted.local.description == "2011-12-31 09:00:00")
        #expect(nextRuns(rule, after: "2011-12-25 00:00", count: 1, dst: DSTPolicy(gap: .skip))
            == ["2012-01-05 19:00:00"])
    }

    @Test func case13CatchUpNeverFloods() throws {
        let rule = try cron("*/5 * * * *")
        let down = utc("2026-03-07 23:00"), up = utc("2026-03-08 08:00")
        let one = rule.catchUp(lastHandled: down, now: up)
        #expect(one.runNow.map { utcText($0.instant) } == ["2026-03-08 08:00:00"])
        #expect(one.next.map { utcText($0.instant) } == "2026-03-08 08:05:00")
        #expect(one.skippedOutsideWindow == 95 && one.skippedByPolicy == 12 && one.skippedOverMaximum == 0)
        #expect(one.skipped + one.runNow.count == 108)
        let all = rule.catchUp(lastHandled: down, now: up, policy: .all(max: 3))
        #expect(all.runNow.map { utcText($0.instant) }
            == ["2026-03-08 07:50:00", "2026-03-08 07:55:00", "2026-03-08 08:00:00"])
        #expect(all.skippedOverMaximum == 10 && all.skippedOutsideWindow == 95)
        let skip = rule.catchUp(lastHandled: down, now: up, policy: .skip)
        #expect(skip.runNow.isEmpty && skip.skippedByPolicy == 13)
        #expect(skip.next.map { utcText($0.instant) } == "2026-03-08 08:05:00")
    }
}
