import TaskShedProtocol
import Testing
@testable import TaskShedServer

/// The registry on its own: names, types and help lines, the callback label cap, gauges of vanished callbacks.
@Suite struct ServerMetricsTests {
    static func text(_ metrics: ServerMetrics) -> String {
        String(decoding: metrics.exposition(), as: UTF8.self)
    }

    static func run(_ callback: String, _ outcome: RunOutcome, then: RunFollowUp = .finished,
                    durationMicros: Int64 = 250_000) -> RunEntry {
        RunEntry(taskID: "t-\(callback)", callback: callback, attempt: 1, scheduledAt: 1_000_000,
                 deliveredAt: 2_000_000, finishedAt: 2_000_000 + durationMicros, outcome: outcome, then: then)
    }

    @Test func everyMetricHasItsTypeAndHelpLineAndConventionalName() {
        let metrics = ServerMetrics(version: "9.8.7", startedAtMicros: 1_700_000_000_500_000)
        metrics.observeEndedRuns([
            Self.run("mail", .succeeded), Self.run("mail", .failed, then: .retry),
            Self.run("mail", .leaseExpired, then: .deadLettered),
        ])
        metrics.observeDelivery(callback: "mail", attempt: 1, latenessMicros: 1_500)
        metrics.observeDelivery(callback: "mail", attempt: 2, latenessMicros: 0)
        metrics.observeStoreJob(commitNanos: 300_000, flushNanos: 2_000_000)
        metrics.countError(.invalidArgument)
        metrics.updateGauges(from: Stats(
            serverVersion: "9.8.7", serverTime: 0, startedAt: 0, pending: 0, due: 1, paused: 0, leased: 1, dead: 0,
            waitingForWorker: 0, nextWakeup: nil, connections: 3,
            callbacks: [CallbackStats(callback: "mail", scheduled: 2, due: 1, leased: 1, dead: 0, workers: 2)],
            storeFileBytes: 4096, storeMapBytes: 1 << 20, storeUsedBytes: 2048, lag: LagSummary(count: 0, p50: 0, p90: 0, p99: 0, max: 0)))
        let text = Self.text(metrics)
        let expected: [(String, String)] = [
            ("taskshed_runs_total", "counter"), ("taskshed_lease_expiries_total", "counter"),
            ("taskshed_dead_letters_total", "counter"), ("taskshed_retries_total", "counter"),
            ("taskshed_redeliveries_total", "counter"), ("taskshed_errors_total", "counter"),
            ("taskshed_run_duration_seconds", "histogram"), ("taskshed_dispatch_lateness_seconds", "histogram"),
            ("taskshed_store_commit_duration_seconds", "histogram"),
            ("taskshed_store_flush_duration_seconds", "histogram"),
            ("taskshed_tasks", "gauge"), ("taskshed_workers", "gauge"), ("taskshed_connections", "gauge"),
            ("taskshed_store_file_bytes", "gauge"), ("taskshed_store_map_bytes", "gauge"),
            ("taskshed_store_used_bytes", "gauge"), ("taskshed_build_info", "gauge"),
            ("taskshed_start_time_seconds", "gauge"),
        ]
        for (name, type) in expected {
            #expect(text.contains("\n# TYPE \(name) \(type)\n") || text.hasPrefix("# TYPE \(name) \(type)\n")
                    || text.contains("# TYPE \(name) \(type)\n"), "\(name) \(type)")
            #expect(text.contains("# HELP \(name) "), "HELP of \(name)")
        }
        #expect(text.components(separatedBy: "# TYPE ").count - 1 == expected.count, "\(text)")
        for line in [
            #"taskshed_runs_total{callback="mail",outcome="succeeded"} 1"#,
            #"taskshed_runs_total{callback="mail",outcome="failed"} 1"#,
            #"taskshed_runs_total{callback="mail",outcome="lease_expired"} 1"#,
            #"taskshed_lease_expiries_total{callback="mail"} 1"#,
            #"taskshed_dead_letters_total{callback="mail"} 1"#,
            #"taskshed_retries_total{callback="mail"} 1"#,
            #"taskshed_redeliveries_total{callback="mail"} 1"#,
            // Succeeded and failed runs only: the lease-expired run has no duration of its callback.
            #"taskshed_run_duration_seconds_count{callback="mail"} 2"#,
            #"taskshed_run_duration_seconds_bucket{callback="mail",le="0.25"} 2"#,
            // The redelivery (attempt 2) is not a first delivery: one lateness sample, 1.5 ms.
            #"taskshed_dispatch_lateness_seconds_count{callback="mail"} 1"#,
            #"taskshed_dispatch_lateness_seconds_bucket{callback="mail",le="0.001"} 0"#,
            #"taskshed_dispatch_lateness_seconds_bucket{callback="mail",le="0.0025"} 1"#,
            "taskshed_store_commit_duration_seconds_count 1",
            "taskshed_store_flush_duration_seconds_count 1",
            #"taskshed_errors_total{code="INVALID_ARGUMENT"} 1"#,
            #"taskshed_tasks{callback="mail",state="scheduled"} 2.0"#,
            #"taskshed_tasks{callback="mail",state="leased"} 1.0"#,
            #"taskshed_workers{callback="mail"} 2.0"#,
            "taskshed_connections 3.0",
            "taskshed_store_map_bytes 1048576.0",
            #"taskshed_build_info{version="9.8.7"} 1.0"#,
            "taskshed_start_time_seconds 1700000000.5",
        ] {
            #expect(text.contains(line + "\n"), "\(line) in:\n\(text)")
        }
    }

    @Test func callbacksPastTheCapShareTheOtherLabel() {
        let metrics = ServerMetrics(version: "1", startedAtMicros: 0)
        let cap = ServerMetrics.maxCallbackLabels
        for index in 0..<(cap + 5) {
            metrics.observeDelivery(callback: "cb-\(index)", attempt: 1, latenessMicros: 100)
        }
        // A callback admitted before the cap was reached keeps its own label.
        metrics.observeDelivery(callback: "cb-0", attempt: 1, latenessMicros: 100)
        metrics.observeEndedRuns([Self.run("cb-\(cap + 1)", .succeeded), Self.run("cb-1", .succeeded)])
        let text = Self.text(metrics)
        let counts = text.split(separator: "\n").filter { $0.hasPrefix("taskshed_dispatch_lateness_seconds_count{") }
        #expect(counts.count == cap + 1)
        #expect(text.contains(#"taskshed_dispatch_lateness_seconds_count{callback="_other"} 5"# + "\n"))
        #expect(text.contains(#"taskshed_dispatch_lateness_seconds_count{callback="cb-0"} 2"# + "\n"))
        #expect(!text.contains(#"callback="cb-\#(cap)""#))
        #expect(text.contains(#"taskshed_runs_total{callback="_other",outcome="succeeded"} 1"# + "\n"))
        #expect(text.contains(#"taskshed_runs_total{callback="cb-1",outcome="succeeded"} 1"# + "\n"))
        #expect(metrics.callbackLabel("never-seen") == ServerMetrics.otherCallbackLabel)
    }

    @Test func gaugesOfACallbackThatIsGoneAreRemoved() {
        let metrics = ServerMetrics(version: "1", startedAtMicros: 0)
        func stats(_ callbacks: [CallbackStats]) -> Stats {
            Stats(serverVersion: "1", serverTime: 0, startedAt: 0, pending: 0, due: 0, paused: 0, leased: 0, dead: 0,
                  waitingForWorker: 0, nextWakeup: nil, connections: 1, callbacks: callbacks, storeFileBytes: 0,
                  storeMapBytes: 0, storeUsedBytes: 0, lag: LagSummary(count: 0, p50: 0, p90: 0, p99: 0, max: 0))
        }
        metrics.updateGauges(from: stats([
            CallbackStats(callback: "old", scheduled: 1, due: 1, leased: 0, dead: 0, workers: 1),
            CallbackStats(callback: "kept", scheduled: 4, due: 0, leased: 0, dead: 0, workers: 0),
        ]))
        #expect(Self.text(metrics).contains(#"taskshed_tasks{callback="old",state="due"} 1.0"#))
        metrics.updateGauges(from: stats([
            CallbackStats(callback: "kept", scheduled: 5, due: 0, leased: 0, dead: 0, workers: 0),
        ]))
        let text = Self.text(metrics)
        #expect(!text.contains(#"callback="old""#), "\(text)")
        #expect(text.contains(#"taskshed_tasks{callback="kept",state="scheduled"} 5.0"#))
    }
}
