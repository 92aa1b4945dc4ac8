import TaskShedProtocol

/// The most recent delivery lags (delivery time minus `runAt`, µs) in a fixed ring, summarised on demand for
/// `STATS`.
///
/// A ring rather than a histogram since start: operators ask "how late are tasks now", and the ring forgets an
/// old burst. Recording is O(1) and allocation-free; summarising sorts a copy (only on `GET_STATS`).
struct LagRecorder {
    private var samples: [Int64]
    private var next = 0
    private var filled = 0

    /// Creates a recorder keeping the last `capacity` samples.
    init(capacity: Int = 4096) {
        samples = [Int64](repeating: 0, count: max(1, capacity))
    }

    /// Records one delivery's lag (negative lags, from a task delivered early by a stepped clock, count as 0).
    mutating func record(_ lagMicros: Int64) {
        samples[next] = max(0, lagMicros)
        next = (next + 1) % samples.count
        filled = min(filled + 1, samples.count)
    }

    /// Percentiles of the samples in the ring (all zero when empty).
    func summary() -> LagSummary {
        guard filled > 0 else { return LagSummary(count: 0, p50: 0, p90: 0, p99: 0, max: 0) }
        let sorted = samples[0..<filled].sorted()
        func percentile(_ p: Double) -> Int64 {
            // Nearest-rank: the smallest sample with at least p of the samples at or below it.
            let rank = Int((p * Double(filled)).rounded(.up))
            return sorted[min(max(rank, 1), filled) - 1]
        }
        return LagSummary(count: UInt64(filled), p50: percentile(0.50), p90: percentile(0.90),
                          p99: percentile(0.99), max: sorted[filled - 1])
    }
}
