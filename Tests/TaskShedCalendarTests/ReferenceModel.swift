import Foundation
import TaskShedCalendar

/// A random cron expression with the sets it stands for, built side by side so the reference never parses.
struct RandomCron: CustomStringConvertible {
    var text: String
    var minutes: Set<Int>
    var hours: Set<Int>
    var days: Set<Int>
    var lastDay: Bool
    var months: Set<Int>
    var weekdays: Set<Int>
    var daysStarred: Bool
    var weekdaysStarred: Bool

    var description: String { text }
    var isFixedTime: Bool { minutes.count == 1 && hours.count == 1 }

    /// One field: text and set; `bias` values are picked half the time (to land on DST transitions).
    static func field<G: RandomNumberGenerator>(_ low: Int, _ high: Int, bias: [Int], starWeight: Int,
                                                names: [String] = [], using g: inout G)
        -> (String, Set<Int>, Bool) {
        func value() -> Int {
            Int.random(in: 0..<2, using: &g) == 0 && !bias.isEmpty ? bias.randomElement(using: &g)!
                : Int.random(in: low...high, using: &g)
        }
        func show(_ v: Int) -> String {
            !names.isEmpty && Int.random(in: 0..<3, using: &g) == 0 ? names[v - low] : String(v)
        }
        let roll = Int.random(in: 0..<100, using: &g)
        if roll < starWeight { return ("*", Set(low...high), true) }
        switch roll % 6 {
        case 0:
            let k = Int.random(in: 2...max(2, (high - low) / 2), using: &g)
            return ("*/\(k)", Set(stride(from: low, through: high, by: k)), true)
        case 1, 2:
            let v = value()
            return (show(v), [v], false)
        case 3:
            let a = value(), b = Int.random(in: a...min(high, a + 6), using: &g)
            return ("\(show(a))-\(show(b))", Set(a...b), false)
        case 4:
            let a = value(), k = Int.random(in: 2...5, using: &g)
            let b = Int.random(in: a...high, using: &g)
            return ("\(a)-\(b)/\(k)", Set(stride(from: a, through: b, by: k)), false)
        default:
            let vs = Set((0..<Int.random(in: 2...3, using: &g)).map { _ in value() })
            return (vs.sorted().map(String.init).joined(separator: ","), vs, false)
        }
    }

    /// A random rule; `hours` are the local hours around the zone's transitions, which fixed-time rules favour.
    /// `m h * * *`: a fixed-time rule every day.
    static func daily(hour: Int, minute: Int) -> RandomCron {
        RandomCron(text: "\(minute) \(hour) * * *", minutes: [minute], hours: [hour], days: Set(1...31),
                   lastDay: false, months: Set(1...12), weekdays: Set(0...6), daysStarred: true,
                   weekdaysStarred: true)
    }

    static func random<G: RandomNumberGenerator>(hours transitionHours: [Int], using g: inout G) -> RandomCron {
        let fixed = Int.random(in: 0..<100, using: &g) < 50
        let hourBias = transitionHours.isEmpty ? [0, 1, 2, 3, 23] : transitionHours
        var minute = field(0, 59, bias: [0, 15, 30, 45], starWeight: 10, using: &g)
        var hour = field(0, 23, bias: hourBias, starWeight: 30, using: &g)
        if fixed {
            let m = [0, 15, 30, 45, Int.random(in: 0...59, using: &g)].randomElement(using: &g)!
            let h = Int.random(in: 0..<4, using: &g) == 0 ? Int.random(in: 0...23, using: &g)
                : hourBias.randomElement(using: &g)!
            minute = (String(m), [m], false)
            hour = (String(h), [h], false)
        }
        var day = field(1, 31, bias: [1, 15, 28, 29, 30, 31], starWeight: fixed ? 85 : 70, using: &g)
        var lastDay = false
        if !day.2, Int.random(in: 0..<4, using: &g) == 0 {
            day.0 += ",L"
            lastDay = true
        }
        let month = field(1, 12, bias: [3, 4, 9, 10, 11, 12], starWeight: 85,
                          names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
                          using: &g)
        let weekday = field(0, 6, bias: [0, 5, 6], starWeight: fixed ? 80 : 65,
                            names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], using: &g)
        return RandomCron(text: [minute.0, hour.0, day.0, month.0, weekday.0].joined(separator: " "),
                          minutes: minute.1, hours: hour.1, days: day.1, lastDay: lastDay, months: month.1,
                          weekdays: weekday.1, daysStarred: day.2, weekdaysStarred: weekday.2)
    }

    /// Whether a wall clock matches, by Vixie's rules applied directly to its fields.
    func matches(_ wall: LocalDateTime) -> Bool {
        guard minutes.contains(wall.minute), hours.contains(wall.hour), months.contains(wall.month),
              wall.second == 0 else { return false }
        let length = [31, (wall.year % 4 == 0 && (wall.year % 100 != 0 || wall.year % 400 == 0)) ? 29 : 28,
                      31, 30, 31, 30, 31, 31, 30, 31, 30, 31][wall.month - 1]
        let dom = days.contains(wall.day) || (lastDay && wall.day == length)
        let dow = weekdays.contains(wall.weekday)
        return daysStarred || weekdaysStarred ? dom && dow : dom || dow
    }
}

/// The brute-force reference: every UTC minute of a window, its offset from Foundation's `TimeZone` (ICU's
/// copy of tzdata, independent of the engine's TZif reader), then the stated DST rules applied to the wall
/// clock.
struct ReferenceWindow {
    /// First minute, UTC seconds.
    var start: Int64
    /// The offset at each minute.
    var offsets: [Int32]

    init(zone: String, start: Int64, minutes: Int) {
        let tz = TimeZone(identifier: zone)!
        self.start = start
        offsets = (0..<minutes).map {
            Int32(tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(start + Int64($0) * 60))))
        }
    }

    /// The local hours on either side of each offset change in the window.
    var transitionHours: [Int] {
        var hours = Set<Int>()
        for i in 1..<offsets.count where offsets[i] != offsets[i - 1] {
            let before = Int((wall(i - 1) % 86_400) / 3600), after = Int((wall(i) % 86_400) / 3600)
            hours.formUnion([before, (before + 1) % 24, after, (after + 23) % 24])
        }
        return hours.sorted()
    }

    /// For each offset change, a wall time (hour, minute) that the change skips or repeats: the minute after
    /// the clock's last reading before the change (in a gap) or its first reading after it (in a fold).
    var transitionWallTimes: [(Int, Int)] {
        (1..<offsets.count).filter { offsets[$0] != offsets[$0 - 1] }.map { i in
            let w = offsets[i] > offsets[i - 1] ? wall(i - 1) + 60 : wall(i)
            let tod = Int(((w % 86_400) + 86_400) % 86_400)
            return (tod / 3600, tod / 60 % 60)
        }
    }

    func instant(_ i: Int) -> Int64 { start + Int64(i) * 60 }
    func wall(_ i: Int) -> Int64 { instant(i) + Int64(offsets[i]) }

    /// The occurrence instants (seconds) inside the window, increasing.
    func occurrences(of rule: RandomCron, dst: DSTPolicy) -> [Int64] {
        if !rule.isFixedTime {
            return offsets.indices.filter { rule.matches(LocalDateTime(wallSeconds: wall($0))) }.map(instant)
        }
        var byWall: [Int64: [Int64]] = [:]
        for i in offsets.indices { byWall[wall(i), default: []].append(instant(i)) }
        let tod = Int64(rule.hours.first! * 3600 + rule.minutes.first! * 60)
        var out = Set<Int64>()
        let firstDay = wall(0) / 86_400 - 1, lastDay = wall(offsets.count - 1) / 86_400 + 1
        for day in firstDay...lastDay {
            let w = day * 86_400 + tod
            guard rule.matches(LocalDateTime(wallSeconds: w)) else { continue }
            if let real = byWall[w] {
                switch dst.fold {
                case .first: out.insert(real.min()!)
                case .last: out.insert(real.max()!)
                case .both: out.formUnion(real)
                }
                continue
            }
            // A gap: the minute before the clock jumps over w.
            for i in 0..<(offsets.count - 1) where wall(i) < w && wall(i + 1) > w {
                switch dst.gap {
                case .shift: out.insert(w - Int64(offsets[i]))
                case .skip: break
                case .atChange: out.insert(instant(i + 1))
                }
            }
        }
        return out.sorted()
    }
}
