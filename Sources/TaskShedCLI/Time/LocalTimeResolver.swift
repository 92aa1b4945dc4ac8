import Foundation

/// Converts between local civil times of a time zone and absolute instants, with a documented rule for the
/// two daylight-saving edge cases.
///
/// The rule:
/// - A local time that does not exist (it falls in a spring-forward gap, such as 02:30 on the day New York
///   moves from 02:00 EST to 03:00 EDT) is moved forward by the length of the gap: 02:30 becomes 03:30 EDT.
///   Equivalently, it is read with the offset in force before the transition.
/// - A local time that occurs twice (a fall-back overlap, such as 01:30 on the day New York moves from 02:00
///   EDT back to 01:00 EST) means its first occurrence (01:30 EDT).
///
/// Offsets are looked up one day before and one day after the local time, so a zone that changes its offset
/// twice within one day around the given time (no current zone does) resolves with the outer two offsets.
public struct LocalTimeResolver: Sendable {
    /// The zone local times belong to.
    public var timeZone: TimeZone

    /// Creates a resolver for a zone.
    public init(timeZone: TimeZone) {
        self.timeZone = timeZone
    }

    /// The zone's offset from UTC at an instant, in seconds.
    /// - Parameter micros: Microseconds since the epoch.
    /// - Returns: Seconds east of UTC.
    public func offsetSeconds(atMicros micros: Int64) -> Int {
        let seconds = floorDivide(micros, 1_000_000).quotient
        return timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// The instant of a local civil time under the rule above.
    /// - Parameter local: A valid civil time in `timeZone`.
    /// - Returns: Microseconds since the epoch.
    public func instant(of local: CivilDateTime) -> Int64 {
        let naive = local.naiveMicros
        let day: Int64 = 86_400_000_000
        let before = Int64(offsetSeconds(atMicros: naive - day)) * 1_000_000
        let after = Int64(offsetSeconds(atMicros: naive + day)) * 1_000_000
        let candidates = [naive - before, naive - after].filter { candidate in
            Int64(offsetSeconds(atMicros: candidate)) * 1_000_000 == naive - candidate
        }
        if let first = candidates.min() {
            return first
        }
        // No candidate is consistent: the time is in a gap. Reading it with the earlier offset lands after the
        // transition, moved forward by exactly the gap's length.
        return naive - before
    }

    /// The local civil time of an instant.
    /// - Parameter micros: Microseconds since the epoch.
    /// - Returns: The wall-clock time in `timeZone`.
    public func localTime(ofMicros micros: Int64) -> CivilDateTime {
        CivilDateTime.fromNaiveMicros(micros + Int64(offsetSeconds(atMicros: micros)) * 1_000_000)
    }
}
