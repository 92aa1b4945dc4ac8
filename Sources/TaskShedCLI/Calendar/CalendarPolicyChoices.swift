import ArgumentParser
import TaskShedProtocol

/// `--catch-up` of `taskshedctl add`: what a calendar task does with occurrences missed while the daemon was down
/// or no worker took them.
public enum CatchUpChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Run none of them.
    case skip
    /// Run once, for the latest (the default).
    case one
    /// Run each in the window, at most `--catch-up-max` of them.
    case all

    /// The protocol's value.
    public var wire: CalendarSchedule.CatchUp {
        switch self {
        case .skip: return .skip
        case .one: return .one
        case .all: return .all
        }
    }
}

/// `--overlap` of `taskshedctl add`: what a calendar task does with occurrences due while its previous run still
/// runs.
public enum OverlapChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Skip them, counted (the default).
    case skip
    /// Keep the latest; it runs when the current run ends.
    case queueOne = "queue-one"
    /// Run each, beside the runs still running (each run is its own one-off task, `ID@OCCURRENCE`).
    case allow

    /// The protocol's value.
    public var wire: CalendarSchedule.Overlap {
        switch self {
        case .skip: return .skip
        case .queueOne: return .queueOne
        case .allow: return .allow
        }
    }
}
