import Testing
import TaskShedCalendar

/// The canonical text parses back to an equal rule, and parsing is fast enough to redo on every load.
@Suite struct NormalizationTests {
    @Test func randomCronRulesRoundTrip() {
        var generator = SeededGenerator(seed: 5)
        var tried = 0
        for _ in 0..<2000 {
            let random = RandomCron.random(hours: [], using: &generator)
            guard let rule = try? CalendarRule.cron(random.text, timeZone: "America/New_York") else { continue }
            tried += 1
            let again = try? CalendarRule.cron(rule.normalized)
            #expect(again == rule, "\(random.text) → \(rule.normalized)")
            #expect(again?.normalized == rule.normalized)
        }
        #expect(tried > 1500)
    }

    @Test(arguments: [
        "Mon..Fri 09:00 Europe/Berlin", "*-*~01", "Mon *-05~07/1", "*-*-* *:00/15:00", "quarterly",
        "Thu,Fri 2012..2030-*-1,5 11:12:13", "2024/2-02-29", "*-*-* 1..5/2:0/7:3,9", "Sat,Sun 12:00 Asia/Tehran",
    ])
    func systemdRulesRoundTrip(_ text: String) throws {
        let rule = try systemd(text)
        #expect(try systemd(rule.normalized) == rule, "\(text) → \(rule.normalized)")
    }

    @Test func parsingIsDeterministicAndFast() throws {
        let texts = ["CRON_TZ=Europe/Berlin 30 2 * * 1-5", "*/15 9-17 * * MON-FRI", "0 0 L * *",
                     "Mon..Fri *-*-* 09:00:00 America/New_York"]
        let clock = ContinuousClock()
        var rules: [CalendarRule] = []
        let elapsed = try clock.measure {
            for _ in 0..<250 {
                for (i, text) in texts.enumerated() {
                    rules.append(try CalendarRule(text, syntax: i == 3 ? .systemd : .cron))
                }
            }
        }
        #expect(Set(rules).count == texts.count)
        let rule = try cron("30 2 * * *", "America/New_York")
        var cursor = utc("2026-01-01 00:00")
        let nextTime = clock.measure {
            for _ in 0..<1000 { cursor = rule.next(after: cursor)!.instant }
        }
        // A figure for the commit message, not an assertion (debug build, shared machine).
        print("NormalizationTests: parse \(elapsed / 1000) each, next \(nextTime / 1000) each (debug build)")
    }
}
