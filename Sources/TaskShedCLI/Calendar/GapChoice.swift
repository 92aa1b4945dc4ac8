import ArgumentParser
import TaskShedCalendar
import TaskShedProtocol

/// `--gap` of `taskshedctl calendar`: what a fixed-time rule does with a local time that a DST change skips.
public enum GapChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Run at the time read with the offset before the gap (RFC 5545; the default).
    case shift
    /// Do not run that day.
    case skip
    /// Run at the transition instant.
    case atChange = "at-change"

    /// The protocol's value.
    public var wire: CalendarSchedule.Gap {
        switch self {
        case .shift: return .shift
        case .skip: return .skip
        case .atChange: return .atChange
        }
    }

    /// The calendar module's policy.
    public var policy: GapPolicy {
        switch self {
        case .shift: return .shift
        case .skip: return .skip
        case .atChange: return .atChange
        }
    }
}
