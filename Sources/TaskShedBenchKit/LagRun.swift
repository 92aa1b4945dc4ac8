/// A named distribution of lags, e.g. the timer part or the socket hop of the floor.
public struct NamedDistribution: Sendable, Hashable {
    /// What the samples measure.
    public var name: String
    /// The samples.
    public var distribution: LagDistribution

    /// Creates one.
    /// - Parameters:
    ///   - name: What the samples measure.
    ///   - distribution: The samples.
    public init(name: String, distribution: LagDistribution) {
        self.name = name
        self.distribution = distribution
    }
}

/// The outcome of one lag measurement (the floor, or the daemon with one kind of worker).
public struct LagRun: Sendable, Hashable {
    /// Row name in the report, e.g. `floor (timerfd + Unix socket)`.
    public var name: String
    /// Deadlines scheduled.
    public var expected: Int
    /// For each deadline received at least once: first receive time − due time.
    public var lag: LagDistribution
    /// Deliveries beyond the first of the same deadline.
    public var duplicates: Int
    /// Deadlines never received.
    public var missing: Int
    /// Parts of the lag measured on the way (timer wake-up, socket hop, frame-to-callback).
    public var components: [NamedDistribution]
    /// The daemon's own lag summary for the run (`STATS.lag`: push time − run_at, µs), keyed `p50`, `p90`,
    /// `p99`, `max`, `count`; empty for the floor.
    public var daemonReported: [String: Double] = [:]

    /// Creates a result.
    /// - Parameters:
    ///   - name: Row name.
    ///   - expected: Deadlines scheduled.
    ///   - lag: The end-to-end lags.
    ///   - duplicates: Extra deliveries.
    ///   - missing: Deadlines never received.
    ///   - components: Named partial lags.
    public init(name: String, expected: Int, lag: LagDistribution, duplicates: Int, missing: Int,
                components: [NamedDistribution] = []) {
        self.name = name
        self.expected = expected
        self.lag = lag
        self.duplicates = duplicates
        self.missing = missing
        self.components = components
    }

    /// Builds a result from per-deadline receive records.
    /// - Parameters:
    ///   - name: Row name.
    ///   - expected: Deadlines scheduled (indices `0..<expected`).
    ///   - records: `(index, lag µs)` for every delivery received, in arrival order; an index outside
    ///     `0..<expected` counts as a duplicate-free stray and is ignored.
    ///   - components: Named partial lags.
    /// - Returns: The result, with first-arrival lags only.
    public static func from(name: String, expected: Int, records: [(index: Int, micros: Double)],
                            components: [NamedDistribution] = []) -> LagRun {
        var seen = [Bool](repeating: false, count: expected)
        var lags: [Double] = []
        lags.reserveCapacity(expected)
        var duplicates = 0
        for record in records where record.index >= 0 && record.index < expected {
            if seen[record.index] {
                duplicates += 1
            } else {
                seen[record.index] = true
                lags.append(record.micros)
            }
        }
        return LagRun(name: name, expected: expected, lag: LagDistribution(micros: lags), duplicates: duplicates,
                      missing: expected - lags.count, components: components)
    }
}
