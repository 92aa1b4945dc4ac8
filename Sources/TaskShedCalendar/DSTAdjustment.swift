/// Whether, and how, a time zone transition affected one occurrence (for previews, which mark these).
public enum DSTAdjustment: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The wall time named by the rule occurs exactly once; the run is at it.
    case none
    /// The wall time was in a gap; the run was moved by `GapPolicy.shift` (offset before the gap).
    case shiftedOutOfGap
    /// The wall time was in a gap; the run is at the transition (`GapPolicy.atChange`).
    case atGapTransition
    /// The wall time occurs twice; this run is at the first occurrence (`FoldPolicy.first` or `.both`, or the
    /// first pass of a wildcard rule).
    case firstOfFold
    /// The wall time occurs twice; this run is at the second occurrence (`FoldPolicy.last` or `.both`, or the
    /// second pass of a wildcard rule).
    case secondOfFold

    /// A short label for previews: `DST-gap→shifted`, `DST-gap→at change`, `fold→first`, `fold→second`, or
    /// the empty string.
    public var description: String {
        switch self {
        case .none: return ""
        case .shiftedOutOfGap: return "DST-gap→shifted"
        case .atGapTransition: return "DST-gap→at change"
        case .firstOfFold: return "fold→first"
        case .secondOfFold: return "fold→second"
        }
    }
}
