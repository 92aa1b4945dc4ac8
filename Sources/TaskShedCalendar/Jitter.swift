/// An optional delay added to each run so that many tasks on one schedule do not start together.
///
/// The delay is uniform in `0…maximum` microseconds, and capped so the run never reaches the next occurrence
/// (a run delayed by jitter still happens before the one after it is due) and is never before the scheduled
/// time.
public struct Jitter: Sendable, Hashable {
    /// How the delay is chosen.
    public enum Mode: Sendable, Hashable {
        /// A fresh random delay for each run.
        case random
        /// The same delay for every run of one task, derived from its id with ``StableHash`` (like systemd's
        /// `FixedRandomDelay=`), so previews and tests are reproducible.
        case fixed
    }

    /// The largest delay, microseconds (values below 0 count as 0).
    public var maximum: Int64
    /// How the delay is chosen.
    public var mode: Mode

    /// Creates a jitter of up to `maximum` microseconds.
    public init(maximum: Int64, mode: Mode = .random) {
        self.maximum = maximum
        self.mode = mode
    }

    /// The time to run an occurrence scheduled at `scheduled`, given the rule's next occurrence after it.
    ///
    /// - Parameters:
    ///   - scheduled: The occurrence's instant, µs since the epoch.
    ///   - next: The following occurrence's instant, or `nil` if none; the result stays strictly before it.
    ///   - taskID: The task's id (used by `fixed` only).
    ///   - generator: The random source for `random` (inject a seeded one in tests).
    /// - Returns: `scheduled + d` with `0 <= d <= maximum` and `scheduled + d < next`.
    public func runTime(scheduled: Int64, next: Int64?, taskID: String,
                        using generator: inout some RandomNumberGenerator) -> Int64 {
        var bound = max(0, maximum)
        if let next { bound = min(bound, max(0, next - scheduled - 1)) }
        if bound == 0 { return scheduled }
        let span = UInt64(bound) + 1
        let delay: UInt64
        switch mode {
        case .random:
            delay = UInt64.random(in: 0..<span, using: &generator)
        case .fixed:
            // The high half of hash × span: uniform enough, and monotone in the bound for one id.
            delay = StableHash.hash(taskID).multipliedFullWidth(by: span).high
        }
        return scheduled + Int64(delay)
    }

    /// ``runTime(scheduled:next:taskID:using:)`` with the system's random generator.
    public func runTime(scheduled: Int64, next: Int64?, taskID: String) -> Int64 {
        var generator = SystemRandomNumberGenerator()
        return runTime(scheduled: scheduled, next: next, taskID: taskID, using: &generator)
    }
}
