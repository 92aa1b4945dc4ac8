import Foundation
import Testing
@testable import TaskShedCalendar

/// The search terminates and is increasing for every zone in tzdata, 1970–2100, and agrees with `matches`
/// and `previous` (sampled so the test stays fast).
@Suite struct SearchBoundTests {
    /// Every zone and link name in the system's `tzdata.zi`.
    static func allZoneNames() -> [String] {
        let text = (try? String(contentsOfFile: ZoneInfo.directory + "/tzdata.zi", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            if fields.first == "Z", fields.count > 1 { return String(fields[1]) }
            if fields.first == "L", fields.count > 2 { return String(fields[2]) }
            return nil
        }.sorted()
    }

    static let rules: [(String, CalendarSyntax)] = [
        ("30 2 * * *", .cron), ("*/15 * * * *", .cron), ("0 0 29 2 *", .cron), ("0 0 L * 5", .cron),
        ("Mon *-*~07/1 00:30:00", .systemd), ("*-*-* 00/7:00:00", .systemd),
    ]

    @Test func everyZoneTerminatesAndAgreesAcross1970To2100() throws {
        let names = Self.allZoneNames()
        #expect(names.count > 500)
        let start = LocalDateTime(year: 1970, month: 1, day: 1).wallSeconds
        let end = LocalDateTime(year: 2100, month: 12, day: 31).wallSeconds
        var generator = SeededGenerator(seed: 19)
        var calls = 0
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for name in names {
                let zone = try ZoneInfo.named(name)
                // Offsets stay within ±26 h, which the wall-time searches rely on only through the zone's
                // own minimum and maximum; a sanity check that the TZif reader read sensible offsets.
                #expect(abs(Int(zone.minimumOffset)) < 26 * 3600 && abs(Int(zone.maximumOffset)) < 26 * 3600)
                let transitions = zone.transitions.filter { $0 >= start && $0 <= end }
                var samples = (0..<4).map { _ in Int64.random(in: start...end, using: &generator) }
                for _ in 0..<min(3, transitions.count) {
                    samples.append(transitions.randomElement(using: &generator)! - 3 * 3600)
                }
                for (text, syntax) in Self.rules {
                    let rule = try CalendarRule(text, syntax: syntax, defaultTimeZone: name)
                    let dst = DSTPolicy(gap: GapPolicy.allCases.randomElement(using: &generator)!,
                                        fold: FoldPolicy.allCases.randomElement(using: &generator)!)
                    for sample in samples {
                        let after = sample * 1_000_000
                        let next = try #require(rule.next(after: after, dst: dst), "\(text) \(name) \(sample)")
                        #expect(next.instant > after)
                        #expect(rule.matches(next.instant, dst: dst), "\(text) in \(name)")
                        // Nothing between `after` and `next`: previous(before: next) is at or before after.
                        if let previous = rule.previous(before: next.instant, dst: dst) {
                            #expect(previous.instant <= after, "\(text) in \(name) after \(utcText(after))")
                        }
                        let second = try #require(rule.next(after: next.instant, dst: dst))
                        #expect(second.instant > next.instant)
                        calls += 4
                    }
                }
            }
        }
        print("SearchBoundTests: \(names.count) zones, \(calls) calls in \(elapsed)")
    }

    /// The never-match check relies on 2000–2027 holding every month shape: each month starting on each
    /// weekday, and February with 28 and with 29 days starting on each weekday.
    @Test func everyMonthShapeOccursIn2000To2027() {
        var shapes = Set<[Int]>()
        for year in 2000...2027 {
            for month in 1...12 {
                let first = Civil.weekday(days: Civil.days(year: year, month: month, day: 1))
                shapes.insert([month, Civil.daysInMonth(year: year, month: month), first])
            }
        }
        #expect(shapes.count == 11 * 7 + 2 * 7)
    }

    /// A rule whose only matches fall in a gap it skips ends at the horizon instead of looping.
    @Test func aRuleThatNeverFiresInItsZoneStopsAtTheHorizon() throws {
        // 02:xx on the second Sunday of March is always in New York's gap (since 2007). systemd syntax, because
        // cron would OR day-of-month and weekday. 02:00/30 is not fixed-time, so it never fires.
        let wildcard = try systemd("Sun *-03-08..14 02:00/30:00", "America/New_York")
        #expect(wildcard.next(after: utc("2010-01-01 00:00")) == nil)
        let fixed = try systemd("Sun *-03-08..14 02:30:00", "America/New_York")
        #expect(fixed.next(after: utc("2010-01-01 00:00"), dst: DSTPolicy(gap: .skip)) == nil)
        #expect(fixed.next(after: utc("2010-01-01 00:00")).map { utcText($0.instant) } == "2010-03-14 07:30:00")
        // A systemd year list ends: nothing after 2030.
        #expect(try systemd("2030-*-* 00:00").next(after: utc("2031-01-01 00:00")) == nil)
        #expect(try systemd("2030-*-* 00:00").previous(before: utc("2031-01-01 00:00")).map { utcText($0.instant) }
            == "2030-12-31 00:00:00")
    }

    /// Instants far outside 1…9999 answer nil rather than overflow.
    @Test func extremeInstantsAnswerNil() throws {
        let rule = try cron("* * * * *", "Europe/Berlin")
        #expect(rule.next(after: .max) == nil)
        #expect(rule.previous(before: .min) == nil)
        #expect(!rule.matches(.max))
        #expect(try cron("* * * * *").next(after: .min).map { utcText($0.instant) } == "0001-01-01 00:00:00")
        // Berlin's local mean time (+00:53:28) puts the first whole local minute at 00:00:32Z.
        #expect(rule.next(after: .min).map { utcText($0.instant) } == "0001-01-01 00:00:32")
    }
}
