/// The per-callback run counters and dispatch-lateness histograms of one `GET_METRICS` text, for `taskshedctl
/// top`'s rates and percentiles between two refreshes.
///
/// The daemon writes the text with swift-prometheus; this reads back only the samples `top` shows, in the text
/// format's sample-line syntax (`name{label="value",…} number`): `taskshed_runs_total{callback,outcome}` and
/// `taskshed_dispatch_lateness_seconds_bucket{callback,le}`. Lines it does not know are skipped, so that new
/// metrics never break it.
public struct RunFigures: Sendable, Equatable {
    /// One callback's counters.
    public struct Callback: Sendable, Equatable {
        /// Runs ended, of every outcome.
        public var runs: Double = 0
        /// Runs that failed, expired or lost their worker.
        public var failures: Double = 0
        /// Cumulative lateness bucket counts by upper bound (seconds; `+Inf` last).
        public var lateness: [(upperBound: Double, count: Double)] = []

        /// Equal counters and buckets.
        public static func == (a: Callback, b: Callback) -> Bool {
            a.runs == b.runs && a.failures == b.failures
                && a.lateness.map(\.upperBound) == b.lateness.map(\.upperBound)
                && a.lateness.map(\.count) == b.lateness.map(\.count)
        }
    }

    /// By callback label.
    public var callbacks: [String: Callback] = [:]

    /// The outcomes `RunOutcome.isFailure` counts, by their label values.
    static let failureOutcomes: Set<String> = ["failed", "lease_expired", "worker_disconnected"]

    /// Reads `text` (the Prometheus text exposition format).
    public init(text: String) {
        for line in text.split(separator: "\n") where line.first != "#" {
            guard let sample = Self.sample(line) else { continue }
            switch sample.name {
            case "taskshed_runs_total":
                guard let callback = sample.labels["callback"] else { continue }
                callbacks[callback, default: Callback()].runs += sample.value
                if let outcome = sample.labels["outcome"], Self.failureOutcomes.contains(outcome) {
                    callbacks[callback, default: Callback()].failures += sample.value
                }
            case "taskshed_dispatch_lateness_seconds_bucket":
                guard let callback = sample.labels["callback"], let le = sample.labels["le"],
                      let bound = le == "+Inf" ? Double.infinity : Double(le)
                else { continue }
                callbacks[callback, default: Callback()].lateness.append((bound, sample.value))
            default:
                continue
            }
        }
        for key in callbacks.keys { callbacks[key]?.lateness.sort { $0.upperBound < $1.upperBound } }
    }

    /// One sample line's name, labels and value; `nil` for a line that is not one.
    static func sample(_ line: Substring) -> (name: String, labels: [String: String], value: Double)? {
        var rest = line[...]
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
        let name = String(rest[..<nameEnd])
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while let equals = rest.firstIndex(of: "=") {
                let key = String(rest[..<equals]).trimmingLeading(",")
                rest = rest[rest.index(after: equals)...]
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var escaped = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(c == "n" ? "\n" : c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        break
                    } else {
                        value.append(c)
                    }
                }
                labels[key] = value
                if rest.first == "," { rest = rest.dropFirst() }
                if rest.first == "}" { break }
            }
            guard rest.first == "}" else { return nil }
            rest = rest.dropFirst()
        }
        let fields = rest.split(separator: " ")
        guard let first = fields.first, let value = Double(first) else { return nil }
        return (name, labels, value)
    }

    /// Per second since `previous`, over `seconds`: runs, failures, and the lateness p50 and p99 (seconds) of
    /// the runs in between, interpolated within their buckets as Prometheus's `histogram_quantile` does; `nil`
    /// fields where nothing ran.
    public func rates(of callback: String, since previous: RunFigures, seconds: Double)
        -> (runs: Double, failures: Double, p50: Double?, p99: Double?)?
    {
        guard seconds > 0, let now = callbacks[callback] else { return nil }
        let before = previous.callbacks[callback] ?? Callback()
        let runs = max(0, now.runs - before.runs) / seconds
        let failures = max(0, now.failures - before.failures) / seconds
        let earlier = Dictionary(before.lateness.map { ($0.upperBound, $0.count) }, uniquingKeysWith: { a, _ in a })
        let delta = now.lateness.map { ($0.upperBound, max(0, $0.count - (earlier[$0.upperBound] ?? 0))) }
        return (runs, failures, Self.quantile(0.5, delta), Self.quantile(0.99, delta))
    }

    /// The `q` quantile of cumulative buckets, `nil` when they count nothing. In the `+Inf` bucket: the highest
    /// finite bound.
    static func quantile(_ q: Double, _ buckets: [(Double, Double)]) -> Double? {
        guard let total = buckets.last?.1, total > 0 else { return nil }
        let rank = q * total
        var lowerBound = 0.0
        var lowerCount = 0.0
        for (bound, count) in buckets {
            if count >= rank {
                guard bound.isFinite else { return lowerBound }
                let inBucket = count - lowerCount
                return inBucket <= 0 ? bound : lowerBound + (bound - lowerBound) * (rank - lowerCount) / inBucket
            }
            lowerBound = bound
            lowerCount = count
        }
        return lowerBound
    }
}

extension String {
    /// Without leading `character`s.
    fileprivate func trimmingLeading(_ character: Character) -> String {
        String(drop { $0 == character })
    }
}
