import Foundation
import Testing
import TaskShedCalendar

/// Records a failure whose text was built from pieces.
func fail(_ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
    Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
}

/// Random cron rules in zones with odd transitions, checked minute by minute against `ReferenceWindow`: for
/// every minute of each window, `matches`, `next` and `previous` must equal the reference's answers.
///
/// The seed is printed; set `TASKSHED_CALENDAR_SEED` to reproduce a failure.
@Suite struct PropertyTests {
    /// The zones of the issue, each with a year that has the transitions worth testing.
    static let zones: [(String, Int)] = [
        ("UTC", 2026), ("America/New_York", 2026), ("Europe/Berlin", 2026), ("Australia/Lord_Howe", 2026),
        ("Pacific/Apia", 2011), ("Asia/Kolkata", 2026), ("America/Santiago", 2026), ("Asia/Tehran", 2021),
    ]

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["TASKSHED_CALENDAR_SEED"].flatMap { UInt64($0) } ?? 20_261_207
    }

    /// Windows of 6 days around each offset change of `year` (found hourly through Foundation), plus one
    /// window in January; checks cover the middle 4 days, where the reference is complete.
    static func windows(zone: String, year: Int) -> [Int64] {
        let tz = TimeZone(identifier: zone)!
        let jan1 = LocalDateTime(year: year, month: 1, day: 1).wallSeconds
        var starts: [Int64] = [jan1 + 10 * 86_400]
        var previous = tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(jan1)))
        for hour in 1..<(366 * 24) {
            let t = jan1 + Int64(hour) * 3600
            let offset = tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))
            if offset != previous { starts.append(t - 3 * 86_400) }
            previous = offset
        }
        return starts
    }

    @Test(arguments: zones.indices) func engineAgreesWithTheBruteForceReference(_ zoneIndex: Int) throws {
        let (zone, year) = Self.zones[zoneIndex]
        let seed = Self.seed &+ UInt64(zoneIndex)
        print("PropertyTests: zone \(zone) seed \(seed) (TASKSHED_CALENDAR_SEED=\(Self.seed))")
        var generator = SeededGenerator(seed: seed)
        let windows = Self.windows(zone: zone, year: year).map {
            ReferenceWindow(zone: zone, start: $0, minutes: 6 * 1440)
        }
        let hours = Array(Set(windows.flatMap(\.transitionHours))).sorted()
        var checked = 0
        var rulesTried = 0
        var adjustments = Set<DSTAdjustment>()
        // Fixed-time rules at each transition's skipped or repeated wall time, then random ones.
        let pinned = windows.flatMap(\.transitionWallTimes).map { RandomCron.daily(hour: $0.0, minute: $0.1) }
        while rulesTried < pinned.count + 14 {
            let random = rulesTried < pinned.count ? pinned[rulesTried]
                : RandomCron.random(hours: hours, using: &generator)
            guard let rule = try? CalendarRule.cron(random.text, timeZone: zone) else {
                continue  // a never-matching draw (e.g. day 31 of a 30-day month only)
            }
            rulesTried += 1
            var dst = DSTPolicy(gap: GapPolicy.allCases.randomElement(using: &generator)!,
                                fold: FoldPolicy.allCases.randomElement(using: &generator)!)
            // Pinned rules never skip, so each of their gaps yields a run to compare.
            if rulesTried <= pinned.count, dst.gap == .skip { dst.gap = rulesTried % 2 == 0 ? .shift : .atChange }
            for window in windows {
                let expected = window.occurrences(of: random, dst: dst)
                let first = window.start + 86_400, last = window.start + 5 * 86_400
                let context = "\(random.text) in \(zone) \(dst) seed \(seed)"
                var index = 0  // expected[index] is the first occurrence > t
                var minute = first
                while minute <= last {
                    defer { minute += 60 }
                    while index < expected.count, expected[index] <= minute { index += 1 }
                    let isOccurrence = index > 0 && expected[index - 1] == minute
                    let micros = minute * 1_000_000
                    guard rule.matches(micros, dst: dst) == isOccurrence else {
                        fail("matches(\(utcText(micros))) should be \(isOccurrence): \(context)")
                        return
                    }
                    let nextOccurrence = rule.next(after: micros, dst: dst)
                    if let nextOccurrence { adjustments.insert(nextOccurrence.adjustment) }
                    let next = nextOccurrence.map { $0.instant / 1_000_000 }
                    if index < expected.count, expected[index] <= last + 86_400 {
                        guard next == expected[index] else {
                            fail("next(after: \(utcText(micros))) = \(next.map { utcText($0 * 1_000_000) } ?? "nil"), "
                                         + "expected \(utcText(expected[index] * 1_000_000)): \(context)")
                            return
                        }
                    }
                    let before = isOccurrence ? index - 2 : index - 1
                    let previous = rule.previous(before: micros, dst: dst).map { $0.instant / 1_000_000 }
                    if before >= 0, expected[before] >= first - 86_400 {
                        guard previous == expected[before] else {
                            fail("previous(before: \(utcText(micros))) = "
                                         + "\(previous.map { utcText($0 * 1_000_000) } ?? "nil"), expected "
                                         + "\(utcText(expected[before] * 1_000_000)): \(context)")
                            return
                        }
                    }
                    checked += 1
                }
            }
        }
        print("PropertyTests: zone \(zone): \(rulesTried) rules, \(checked) minute checks, adjustments seen: "
              + adjustments.map(\.description).sorted().joined(separator: " "))
        // The draw must reach the DST code paths, or the comparison proves little.
        if !hours.isEmpty {
            #expect(adjustments.contains(.firstOfFold) || adjustments.contains(.secondOfFold), "no fold in \(zone)")
            #expect(adjustments.contains(.shiftedOutOfGap) || adjustments.contains(.atGapTransition),
                    "no gap run in \(zone)")
        }
    }
}
