import ArgumentParser
import Foundation
import TaskShedCalendar
import Testing

@testable import TaskShedCLI

/// `taskshedctl calendar` through its parsing and formatting functions, with a fixed start and zone.
@Suite("Calendar preview")
struct CalendarPreviewTests {
    let context = TimeContext(nowMicros: utc(2026, 3, 7), timeZone: zone("America/New_York"))

    func command(_ arguments: [String]) throws -> CalendarCommand {
        let parsed = try TaskShedCtl.parseAsRoot(["calendar"] + arguments)
        return try #require(parsed as? CalendarCommand, "parsed as \(type(of: parsed))")
    }

    func preview(_ arguments: [String]) throws -> CalendarPreview {
        try command(arguments).makePreview(context: context)
    }

    /// The error a command line fails with, from the argument parser or from the preview.
    func failure(_ arguments: [String]) -> (status: Int32, message: String)? {
        do {
            _ = try command(arguments).makePreview(context: context)
            return nil
        } catch let error as CLIError {
            return (error.status.rawValue, error.message)
        } catch {
            return (TaskShedCtl.exitCode(for: error).rawValue, TaskShedCtl.message(for: error))
        }
    }

    @Test func springForwardShiftsTheMissingLocalTimeAndMarksIt() throws {
        let p = try preview(["30 2 * * *", "--from", "2026-03-07T00:00:00Z", "-n", "3"])
        #expect(p.rule.syntax == .cron)
        #expect(p.occurrences.map(\.instant) == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)])
        #expect(p.occurrences.map(\.adjustment) == [.none, .shiftedOutOfGap, .none])
        #expect(p.text == """
              Original form: 30 2 * * *
            Normalized form: CRON_TZ=America/New_York 30 2 * * *
                  Time zone: America/New_York
                       From: Fri 2026-03-06 19:00:00 -05:00  2026-03-07 00:00:00 UTC
                Next elapse: Sat 2026-03-07 02:30:00 -05:00  2026-03-07 07:30:00 UTC
                 From start: 7h 30m later
                   Iter. #2: Sun 2026-03-08 03:30:00 -04:00  2026-03-08 07:30:00 UTC  DST-gap→shifted (02:30:00 does not exist)
                   Iter. #3: Mon 2026-03-09 02:30:00 -04:00  2026-03-09 06:30:00 UTC

            """)
    }

    @Test func gapSkipOmitsTheDayAndAtChangeRunsAtTheTransition() throws {
        let skip = try preview(["30 2 * * *", "--from", "2026-03-07T00:00Z", "-n", "3", "--gap", "skip"])
        #expect(skip.occurrences.map(\.instant) == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)])
        let change = try preview(["30 2 * * *", "--from", "2026-03-08T00:00Z", "-n", "1", "--gap", "at-change"])
        #expect(change.occurrences.map(\.instant) == [utc(2026, 3, 8, 7)])
        #expect(change.text.contains("Sun 2026-03-08 03:00:00 -04:00  2026-03-08 07:00:00 UTC  DST-gap→at change"))
    }

    @Test func fallBackRunsOnceAtTheFirstPassByDefault() throws {
        let first = try preview(["30 1 * * *", "--from", "2026-10-31T12:00Z", "-n", "2"])
        #expect(first.occurrences.map(\.instant) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)])
        #expect(first.occurrences.map(\.adjustment) == [.firstOfFold, .none])
        #expect(first.text.contains("Next elapse: Sun 2026-11-01 01:30:00 -04:00  2026-11-01 05:30:00 UTC  fold→first\n"))
        let last = try preview(["30 1 * * *", "--from", "2026-10-31T12:00Z", "-n", "1", "--fold", "last"])
        #expect(last.occurrences.map(\.instant) == [utc(2026, 11, 1, 6, 30)])
        let both = try preview(["30 1 * * *", "--from", "2026-10-31T12:00Z", "-n", "3", "--fold", "both"])
        #expect(both.occurrences.map(\.instant) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30), utc(2026, 11, 2, 6, 30)])
        #expect(both.occurrences.map(\.adjustment) == [.firstOfFold, .secondOfFold, .none])
    }

    @Test func systemdFormWithItsOwnZoneWinsOverTz() throws {
        // Berlin moves to CEST on Sunday 2026-03-29, between Friday's and Monday's runs.
        let p = try preview(["Mon..Fri 09:00 Europe/Berlin", "--tz", "America/New_York", "--from", "2026-03-27T00:00Z", "-n", "3"])
        #expect(p.rule.syntax == .systemd)
        #expect(p.rule.normalized == "Mon..Fri *-*-* 09:00:00 Europe/Berlin")
        #expect(p.rule.timeZoneIdentifier == "Europe/Berlin")
        #expect(p.occurrences.map(\.instant) == [utc(2026, 3, 27, 8), utc(2026, 3, 30, 7), utc(2026, 3, 31, 7)])
        #expect(p.text.contains("   Iter. #2: Mon 2026-03-30 09:00:00 +02:00  2026-03-30 07:00:00 UTC\n"))
    }

    @Test func localFromTimesAreReadInThePreviewZone() throws {
        let p = try preview(["0 9 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-10 08:59", "-n", "1"])
        #expect(p.fromMicros == utc(2026, 3, 10, 7, 59))
        #expect(p.occurrences.map(\.instant) == [utc(2026, 3, 10, 8)])
    }

    @Test func defaultsAreNowTheLocalZoneAndTenOccurrences() throws {
        let p = try preview(["@hourly"])
        #expect(p.fromMicros == context.nowMicros)
        #expect(p.fromIsNow)
        #expect(p.rule.timeZoneIdentifier == "America/New_York")
        #expect(p.occurrences.count == 10)
        #expect(p.text.contains("       From now: 1h left\n"))
    }

    @Test(arguments: [
        ("30 2 * * *", CalendarSyntax.cron), ("@daily", .cron), ("CRON_TZ=Europe/Berlin 0 3 * * 0", .cron),
        ("TZ=UTC 0 3 * * 0", .cron), ("Mon..Fri 09:00", .systemd), ("daily", .systemd),
        ("*-*-* 02:30:00 Europe/Berlin", .systemd), ("0 0 1 1 * 2026", .systemd),
    ])
    func autoDetectionFollowsTheStatedRule(expression: String, syntax: CalendarSyntax) {
        #expect(CalendarSyntaxChoice.detect(expression) == syntax)
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let p = try preview(["30 2 * * *", "--from", "2026-03-08T00:00Z", "-n", "2", "--json"])
        let text = try command(["30 2 * * *", "--from", "2026-03-08T00:00Z", "-n", "2", "--json"]).output(context: context)
        #expect(text == p.json.render() + "\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["original"] as? String == "30 2 * * *")
        #expect(object["normalized"] as? String == "CRON_TZ=America/New_York 30 2 * * *")
        #expect(object["time_zone"] as? String == "America/New_York")
        #expect(object["from_us"] as? Int64 == utc(2026, 3, 8))
        let occurrences = try #require(object["occurrences"] as? [[String: Any]])
        #expect(occurrences.count == 2)
        #expect(occurrences[0]["local"] as? String == "2026-03-08T03:30:00-04:00")
        #expect(occurrences[0]["utc"] as? String == "2026-03-08T07:30:00.000000Z")
        #expect(occurrences[0]["offset"] as? String == "-04:00")
        #expect(occurrences[0]["instant_us"] as? Int64 == utc(2026, 3, 8, 7, 30))
        #expect(occurrences[0]["scheduled"] as? String == "2026-03-08 02:30:00")
        #expect(occurrences[0]["adjustment"] as? String == "gap-shifted")
        #expect(occurrences[1]["adjustment"] is NSNull)
    }

    @Test func aRuleWithNoFurtherOccurrenceSaysSo() throws {
        let p = try preview(["2020-01-01 00:00:00", "--from", "2026-03-07T00:00Z"])
        #expect(p.occurrences.isEmpty)
        #expect(p.text.hasSuffix("    Next elapse: never (no occurrence within 400 years after the start)\n"))
        #expect(p.json.render(indent: nil).hasSuffix(#""occurrences":[]}"#))
    }

    @Test func aBadFieldTokenNamesTheFieldAndTheToken() throws {
        let error = try #require(failure(["61 2 * * *"]))
        #expect(error.status == ExitStatus.usage.rawValue)
        #expect(error.message.hasPrefix("invalid cron expression '61 2 * * *': minute: \"61\""))
        let systemd = try #require(failure(["Mon..Fry 09:00"]))
        #expect(systemd.status == 64)
        #expect(systemd.message.contains("\"Fry\"") || systemd.message.contains("Mon..Fry"))
    }

    @Test func aSixFieldCronLineGetsCronsMessageUnderAuto() throws {
        let error = try #require(failure(["0 0 1 1 * 2026"]))
        #expect(error.status == 64)
        #expect(error.message.hasPrefix("invalid cron expression '0 0 1 1 * 2026': expression has 6 fields"))
    }

    @Test func anUnknownZoneIsBlamedOnWhereItCameFrom() throws {
        let option = try #require(failure(["30 2 * * *", "--tz", "Mars/Olympus"]))
        #expect(option.status == 64)
        #expect(option.message.hasPrefix("--tz: time zone: \"Mars/Olympus\""))
        let inExpression = try #require(failure(["CRON_TZ=Mars/Olympus 30 2 * * *"]))
        #expect(inExpression.status == 64)
        #expect(inExpression.message.hasPrefix("invalid cron expression 'CRON_TZ=Mars/Olympus 30 2 * * *': time zone:"))
    }

    @Test(arguments: [
        (["30 2 * * *", "-n", "0"], "--count must be between 1 and 1000, not 0"),
        (["30 2 * * *", "--count", "1001"], "--count must be between 1 and 1000, not 1001"),
        (["30 2 * * *", "--gap", "later"], "later"),
        (["30 2 * * *", "--fold", "second"], "second"),
        (["30 2 * * *", "--syntax", "quartz"], "quartz"),
        (["30 2 * * *", "--from", "tomorrow"], "--from: invalid time 'tomorrow'"),
    ])
    func badOptionValuesAreUsageErrors(arguments: [String], message: String) throws {
        let error = try #require(failure(arguments))
        #expect(error.status == ExitStatus.usage.rawValue)
        #expect(error.message.contains(message), "\(error.message)")
    }
}

/// The built `taskshedctl calendar` binary: standard output and exit status.
@Suite("Calendar preview end to end")
struct CalendarPreviewEndToEndTests {
    @Test func theBinaryPrintsAPreviewAndRefusesABadExpression() async throws {
        let good = try await CLIProcess.run(
            ["calendar", "30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T00:00Z", "-n", "2"])
        #expect(good.status == 0, "\(good)")
        #expect(good.stdout.hasPrefix("  Original form: 30 2 * * *\nNormalized form: CRON_TZ=America/New_York 30 2 * * *\n"))
        #expect(good.stdout.hasSuffix(
            "   Iter. #2: Sun 2026-03-08 03:30:00 -04:00  2026-03-08 07:30:00 UTC  DST-gap→shifted (02:30:00 does not exist)\n"))
        #expect(good.stderr.isEmpty)

        let bad = try await CLIProcess.run(["calendar", "30 25 * * *", "--tz", "UTC"])
        #expect(bad.status == 64, "\(bad)")
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.hasPrefix("taskshedctl: invalid cron expression '30 25 * * *': hour: \"25\""), "\(bad)")
    }
}
