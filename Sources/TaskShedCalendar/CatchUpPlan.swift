/// The outcome of ``CalendarRule/catchUp(lastHandled:now:window:policy:dst:)``: what to run now, what was
/// skipped and why, and when the rule fires next.
public struct CatchUpPlan: Sendable, Hashable {
    /// The missed occurrences to run now, oldest first (empty for `skip`, at most one for `one`).
    public var runNow: [Occurrence]
    /// Missed occurrences older than the window (never run, counted). Exact up to `countLimit`, see
    /// `skippedOutsideWindowIsExact`.
    public var skippedOutsideWindow: Int
    /// Whether `skippedOutsideWindow` is exact; `false` when counting stopped at the plan's count limit.
    public var skippedOutsideWindowIsExact: Bool
    /// Missed occurrences in the window that the policy chose not to run (`skip`: all; `one`: all but one).
    public var skippedByPolicy: Int
    /// Missed occurrences in the window beyond `all(max:)`'s maximum (the oldest ones).
    public var skippedOverMaximum: Int
    /// The first occurrence strictly after now: the next regular run.
    public var next: Occurrence?

    /// Creates a plan.
    public init(runNow: [Occurrence], skippedOutsideWindow: Int, skippedOutsideWindowIsExact: Bool,
                skippedByPolicy: Int, skippedOverMaximum: Int, next: Occurrence?) {
        self.runNow = runNow
        self.skippedOutsideWindow = skippedOutsideWindow
        self.skippedOutsideWindowIsExact = skippedOutsideWindowIsExact
        self.skippedByPolicy = skippedByPolicy
        self.skippedOverMaximum = skippedOverMaximum
        self.next = next
    }

    /// All skipped occurrences together.
    public var skipped: Int { skippedOutsideWindow + skippedByPolicy + skippedOverMaximum }
}
