/// Renders lag runs as the `lag` scenario's table, each run's percentiles also as a ratio to the floor's.
public enum LagTable {
    /// Builds the table.
    /// - Parameters:
    ///   - title: The scenario name (`lag`, `floor`).
    ///   - runs: The runs, the floor first.
    ///   - floor: The floor run the ratios divide by (usually `runs[0]`), or `nil` for no ratios.
    ///   - notes: Lines under the table (method, targets).
    ///   - parameters: Scenario parameters for the JSON (`count`, `seconds`, …).
    /// - Returns: The table.
    public static func make(title: String = "lag", runs: [LagRun], floor: LagRun?, notes: [String] = [],
                            parameters: [(String, BenchJSON)] = []) -> BenchTable {
        let labels = LagDistribution.reportedPercentiles.map(\.label) + ["max"]
        var columns = ["lag (µs)", "tasks", "recv", "dup", "miss"] + labels
        if floor != nil { columns += ["p50/floor", "p99/floor"] }
        var rows: [[String]] = []
        var jsonRuns: [BenchJSON] = []
        for run in runs {
            let summary = run.lag.summary()
            var row = [run.name, "\(run.expected)", "\(run.lag.count)", "\(run.duplicates)", "\(run.missing)"]
            row += labels.map { label in summary.first { $0.label == label }.map { formatDecimal($0.micros, digits: 1) } ?? "-" }
            var ratios: [(String, BenchJSON)] = []
            if let floor {
                for label in ["p50", "p99"] {
                    let mine = summary.first { $0.label == label }?.micros
                    let theirs = floor.lag.summary().first { $0.label == label }?.micros
                    if let mine, let theirs, theirs > 0 {
                        row.append(formatDecimal(mine / theirs, digits: 2) + "x")
                        ratios.append((label, .number(mine / theirs)))
                    } else {
                        row.append("-")
                    }
                }
            }
            rows.append(row)
            for component in run.components {
                let parts = component.distribution.summary()
                var componentRow = ["  " + component.name, "", "\(component.distribution.count)", "", ""]
                componentRow += labels.map { label in
                    parts.first { $0.label == label }.map { formatDecimal($0.micros, digits: 1) } ?? "-"
                }
                if floor != nil { componentRow += ["", ""] }
                rows.append(componentRow)
            }
            if (run.daemonReported["count"] ?? 0) > 0 {
                var reportedRow = ["  daemon's own view (push − run_at)", "",
                                   formatDecimal(run.daemonReported["count"] ?? 0, digits: 0), "", ""]
                reportedRow += labels.map { label in
                    run.daemonReported[label].map { formatDecimal($0, digits: 0) } ?? "-"
                }
                if floor != nil { reportedRow += ["", ""] }
                rows.append(reportedRow)
            }
            jsonRuns.append(.object([
                ("name", .string(run.name)),
                ("tasks", .integer(Int64(run.expected))),
                ("received", .integer(Int64(run.lag.count))),
                ("duplicates", .integer(Int64(run.duplicates))),
                ("missing", .integer(Int64(run.missing))),
                ("lag_us", distributionJSON(run.lag)),
                ("ratio_to_floor", .object(ratios)),
                ("daemon_reported_us", .object(["count", "p50", "p90", "p99", "max"].compactMap { key in
                    run.daemonReported[key].map { (key, BenchJSON.number($0)) }
                })),
                ("components", .array(run.components.map {
                    .object([("name", .string($0.name)), ("lag_us", distributionJSON($0.distribution))])
                })),
            ]))
        }
        return BenchTable(title: title, columns: columns, rows: rows, notes: notes,
                          json: .object([("scenario", .string(title.hasPrefix("lag") ? "lag" : title))] + parameters
                              + [("runs", .array(jsonRuns))]))
    }

    /// The reported percentiles and max of a distribution as a JSON object (µs).
    /// - Parameter distribution: The samples.
    /// - Returns: `{"p50": …, "p90": …, "p99": …, "p99.9": …, "max": …, "min": …, "mean": …}`.
    public static func distributionJSON(_ distribution: LagDistribution) -> BenchJSON {
        var pairs = distribution.summary().map { ($0.label, BenchJSON.number($0.micros)) }
        pairs.append(("min", distribution.min.map { .number($0) } ?? .null))
        pairs.append(("mean", distribution.mean.map { .number($0) } ?? .null))
        return .object(pairs)
    }
}
