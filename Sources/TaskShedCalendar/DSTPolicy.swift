/// How a rule treats local times that do not exist or occur twice, per rule.
///
/// Both policies apply to **fixed-time** rules only (hour, minute and second each a single value: Vixie
/// cron's definition). Every other rule (`0 * * * *`, `*/15 …`, `0,30 2 * * *`) fires at every real instant
/// whose wall clock matches: both passes of a repeated hour, nothing for wall times that do not exist.
public struct DSTPolicy: Sendable, Hashable {
    /// The rule for local times in a gap.
    public var gap: GapPolicy
    /// The rule for local times in a fold.
    public var fold: FoldPolicy

    /// Creates a policy; the defaults are RFC 5545's (`shift`, `first`).
    public init(gap: GapPolicy = .shift, fold: FoldPolicy = .first) {
        self.gap = gap
        self.fold = fold
    }

    /// `gap: .shift, fold: .first`.
    public static let `default` = DSTPolicy()
}
