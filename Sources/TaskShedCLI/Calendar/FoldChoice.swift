import ArgumentParser
import TaskShedCalendar
import TaskShedProtocol

/// `--fold` of `taskshedctl calendar`: what a fixed-time rule does with a local time that occurs twice.
public enum FoldChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Run at the first occurrence (the default).
    case first
    /// Run at the last occurrence.
    case last
    /// Run at both.
    case both

    /// The protocol's value.
    public var wire: CalendarSchedule.Fold {
        switch self {
        case .first: return .first
        case .last: return .last
        case .both: return .both
        }
    }

    /// The calendar module's policy.
    public var policy: FoldPolicy {
        switch self {
        case .first: return .first
        case .last: return .last
        case .both: return .both
        }
    }
}
