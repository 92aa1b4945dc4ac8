/// Exact percentiles of a set of lags (or any durations), from a sorted copy of every sample.
///
/// The benchmarks collect at most a few hundred thousand samples, so keeping them all and sorting once is both
/// simpler and more exact than a histogram. Percentiles use the nearest-rank definition: the p-th percentile
/// is the smallest sample such that at least p % of the samples are less than or equal to it.
public struct LagDistribution: Sendable, Hashable {
    /// The samples in ascending order, in microseconds.
    public let sortedMicros: [Double]

    /// Creates a distribution from unsorted samples.
    /// - Parameter micros: Samples in microseconds (negative values are kept: an early wake-up is a finding).
    public init(micros: [Double]) {
        sortedMicros = micros.sorted()
    }

    /// Number of samples.
    public var count: Int { sortedMicros.count }

    /// The nearest-rank percentile.
    /// - Parameter p: The percentile, 0 < p ≤ 100.
    /// - Returns: The sample at that rank, or `nil` when there are no samples.
    public func percentile(_ p: Double) -> Double? {
        guard !sortedMicros.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(sortedMicros.count)).rounded(.up))
        return sortedMicros[Swift.min(Swift.max(rank, 1), sortedMicros.count) - 1]
    }

    /// The smallest sample, or `nil` when empty.
    public var min: Double? { sortedMicros.first }
    /// The largest sample, or `nil` when empty.
    public var max: Double? { sortedMicros.last }

    /// The arithmetic mean, or `nil` when empty.
    public var mean: Double? {
        sortedMicros.isEmpty ? nil : sortedMicros.reduce(0, +) / Double(sortedMicros.count)
    }

    /// The percentiles every lag report prints, in this order.
    public static let reportedPercentiles: [(label: String, p: Double)] = [
        ("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9),
    ]

    /// The reported figures as (label, µs) pairs: the percentiles of `reportedPercentiles`, then max.
    /// - Returns: An empty list when there are no samples.
    public func summary() -> [(label: String, micros: Double)] {
        guard let max else { return [] }
        return Self.reportedPercentiles.compactMap { entry in percentile(entry.p).map { (entry.label, $0) } }
            + [("max", max)]
    }
}
