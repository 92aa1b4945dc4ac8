import Prometheus
import TaskShedProtocol

/// The daemon's Prometheus metrics: counters and histograms fed as things happen, gauges set at each scrape,
/// rendered in the text exposition format 0.0.4 by swift-prometheus's `PrometheusCollectorRegistry`.
///
/// The registry is used directly rather than through swift-metrics' global `MetricsSystem.bootstrap`: the daemon is
/// a library (`Server`), tests run several servers in one process, and a process-wide factory would mix their
/// figures. Each metric object is made once per label set and kept here, so that an observation on the hot path
/// (a delivery) is a dictionary lookup and an atomic add, not a registry lookup under its lock.
///
/// Names follow Prometheus conventions: base units (seconds, bytes), `_total` on counters, `taskshed_` prefix.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `taskshed_runs_total` | counter | `callback`, `outcome` (`RunOutcome`: succeeded, failed, lease_expired, worker_disconnected, released, skipped) |
/// | `taskshed_lease_expiries_total` | counter | `callback` |
/// | `taskshed_dead_letters_total` | counter | `callback` |
/// | `taskshed_retries_total` | counter | `callback` |
/// | `taskshed_redeliveries_total` | counter | `callback` |
/// | `taskshed_run_duration_seconds` | histogram | `callback` |
/// | `taskshed_dispatch_lateness_seconds` | histogram | `callback` |
/// | `taskshed_store_commit_duration_seconds`, `taskshed_store_flush_duration_seconds` | histogram | |
/// | `taskshed_errors_total` | counter | `code` (the protocol's name, `INVALID_ARGUMENT`) |
/// | `taskshed_tasks` | gauge | `callback`, `state` (scheduled, due, leased, dead) |
/// | `taskshed_workers` | gauge | `callback` |
/// | `taskshed_connections`, `taskshed_store_{file,map,used}_bytes` | gauge | |
/// | `taskshed_build_info` | gauge (1) | `version` |
/// | `taskshed_start_time_seconds` | gauge | |
///
/// Callback names are chosen by users, and every distinct label value is a time series in Prometheus: the first
/// `maxCallbackLabels` callbacks seen get their own label value, later ones are counted under
/// `otherCallbackLabel`.
///
/// - Important: Loop thread only, like the server that owns it (the registry itself is thread-safe, but the
///   caches and the callback cap are not).
final class ServerMetrics {
    /// Most distinct `callback` label values; callbacks seen after these are labelled `otherCallbackLabel`.
    static let maxCallbackLabels = 1_000
    /// The `callback` label value of every callback past `maxCallbackLabels`.
    static let otherCallbackLabel = "_other"

    /// Buckets of `taskshed_dispatch_lateness_seconds`: a delivery is normally well under a millisecond late, a
    /// busy daemon or a backlog makes it seconds to minutes.
    static let latenessBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                             2.5, 5, 10, 30, 60]
    /// Buckets of `taskshed_run_duration_seconds`: callbacks range from milliseconds to an hour-long backup.
    static let runDurationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                                300, 900, 3600]
    /// Buckets of the store's commit and flush durations: 0.1 ms in the page cache, tens of ms on a busy disk.
    static let storeBuckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25, 0.5, 1, 2.5]

    /// The states of `taskshed_tasks`, as `STATS` counts them per callback (`scheduled` includes `due`).
    static let taskStates = ["scheduled", "due", "leased", "dead"]

    /// The registry that renders the text (exposed for tests).
    let registry = PrometheusCollectorRegistry()

    private var callbackLabels: [String: String] = [:]
    private var distinctCallbacks = 0

    private var runs: [LabelPair: Counter] = [:]
    private var leaseExpiries: [String: Counter] = [:]
    private var deadLetters: [String: Counter] = [:]
    private var retries: [String: Counter] = [:]
    private var redeliveries: [String: Counter] = [:]
    private var runDurations: [String: ValueHistogram] = [:]
    private var lateness: [String: ValueHistogram] = [:]
    private var errors: [ErrorCode: Counter] = [:]
    private let commitDuration: ValueHistogram
    private let flushDuration: ValueHistogram

    private var taskGauges: [LabelPair: Gauge] = [:]
    private var workerGauges: [String: Gauge] = [:]
    private let connections: Gauge
    private let storeFileBytes: Gauge
    private let storeMapBytes: Gauge
    private let storeUsedBytes: Gauge

    /// Two label values (callback and outcome or state), as a dictionary key.
    private struct LabelPair: Hashable {
        var first: String
        var second: String
    }

    /// Creates the registry with the metrics that exist from the start (build info, start time, the unlabelled
    /// gauges and store histograms), so that a scrape right after start shows them.
    /// - Parameters:
    ///   - version: The daemon's version, the `version` label of `taskshed_build_info`.
    ///   - startedAtMicros: When the daemon started (µs since the epoch).
    init(version: String, startedAtMicros: Int64) {
        registry.makeGauge(descriptor: Self.descriptor("taskshed_build_info",
                                                        "Always 1; the version label is the daemon's version."),
                           labels: [("version", version)]).set(1.0)
        registry.makeGauge(descriptor: Self.descriptor("taskshed_start_time_seconds",
                                                        "When the daemon started, in seconds since the Unix epoch."))
            .set(Double(startedAtMicros) / 1e6)
        commitDuration = registry.makeValueHistogram(
            descriptor: Self.descriptor("taskshed_store_commit_duration_seconds",
                                        "Duration of a store job's write transaction, its commit included."),
            buckets: Self.storeBuckets)
        flushDuration = registry.makeValueHistogram(
            descriptor: Self.descriptor("taskshed_store_flush_duration_seconds",
                                        "Duration of a flush of committed changes to disk (LMDB with sync on)."),
            buckets: Self.storeBuckets)
        connections = registry.makeGauge(descriptor: Self.descriptor("taskshed_connections", "Open client connections."))
        storeFileBytes = registry.makeGauge(descriptor: Self.descriptor(
            "taskshed_store_file_bytes", "Size of the store's data file in bytes (0: a shared datastore)."))
        storeMapBytes = registry.makeGauge(descriptor: Self.descriptor(
            "taskshed_store_map_bytes", "The store's current map size in bytes (0: a shared datastore)."))
        storeUsedBytes = registry.makeGauge(descriptor: Self.descriptor(
            "taskshed_store_used_bytes", "Bytes of the store's map in use (0: a shared datastore)."))
    }

    // MARK: Events

    /// Counts runs that ended (from the store job that recorded them in the run history): `taskshed_runs_total`
    /// by outcome, lease expiries, dead letters and retries, and the duration of succeeded and failed runs.
    /// - Parameter runs: The run-history entries the job wrote, in any order.
    /// - Important: Loop thread only.
    func observeEndedRuns(_ runs: [RunEntry]) {
        for run in runs {
            let callback = callbackLabel(run.callback)
            counter(&self.runs, LabelPair(first: callback, second: Self.outcomeName(run.outcome)),
                    "taskshed_runs_total", [("callback", callback), ("outcome", Self.outcomeName(run.outcome))],
                    "Runs that ended, by callback and outcome.").increment()
            if run.outcome == .leaseExpired {
                counter(&leaseExpiries, callback, "taskshed_lease_expiries_total",
                        "Leases that ran out before the worker answered.").increment()
            }
            switch run.then {
            case .deadLettered:
                counter(&deadLetters, callback, "taskshed_dead_letters_total",
                        "Tasks moved to the dead-letter list after their last attempt.").increment()
            case .retry:
                counter(&retries, callback, "taskshed_retries_total",
                        "Runs after which the task was due again (a retry, or a lease given back).").increment()
            case .finished, .nextRun:
                break
            }
            if run.outcome == .succeeded || run.outcome == .failed, let micros = run.durationMicros {
                histogram(&runDurations, callback, "taskshed_run_duration_seconds", Self.runDurationBuckets,
                          "Duration of runs that succeeded or failed, from delivery to the worker's answer.")
                    .record(Double(micros) / 1e6)
            }
        }
    }

    /// Records one delivery written to a worker: its lateness (first attempts only, as `STATS` lag does: a
    /// retry's due time is its backoff, and its lateness says nothing new) and, for attempts after the first,
    /// a redelivery.
    /// - Parameters:
    ///   - callback: The task's callback.
    ///   - attempt: The delivery's attempt (1 for the first).
    ///   - latenessMicros: Delivery time minus `runAt` (negative, for a task written ahead, counts as 0).
    /// - Important: Loop thread only.
    func observeDelivery(callback: String, attempt: UInt32, latenessMicros: Int64) {
        let label = callbackLabel(callback)
        if attempt <= 1 {
            histogram(&lateness, label, "taskshed_dispatch_lateness_seconds", Self.latenessBuckets,
                      "Delivery time minus due time of first deliveries.")
                .record(Double(max(0, latenessMicros)) / 1e6)
        } else {
            counter(&redeliveries, label, "taskshed_redeliveries_total",
                    "Deliveries of a task after its first attempt (retries, expired or lost leases).").increment()
        }
    }

    /// Records a store job's write transaction and, if it flushed right after its commit, the flush.
    /// - Parameters:
    ///   - commitNanos: The transaction's duration.
    ///   - flushNanos: The flush's duration, if the job flushed.
    func observeStoreJob(commitNanos: UInt64, flushNanos: UInt64?) {
        commitDuration.record(Double(commitNanos) / 1e9)
        if let flushNanos { observeFlush(nanos: flushNanos) }
    }

    /// Records a flush of committed changes to disk.
    /// - Parameter nanos: Its duration.
    func observeFlush(nanos: UInt64) {
        flushDuration.record(Double(nanos) / 1e9)
    }

    /// Counts one `ERROR` frame sent to a client.
    /// - Parameter code: Its code; the label is the protocol's name (`INVALID_ARGUMENT`), a bounded set since
    ///   only the daemon's own codes are sent.
    func countError(_ code: ErrorCode) {
        if let counter = errors[code] {
            counter.increment()
            return
        }
        let counter = registry.makeCounter(
            descriptor: Self.descriptor("taskshed_errors_total", "ERROR frames sent to clients, by protocol error code."),
            labels: [("code", code.name)])
        errors[code] = counter
        counter.increment()
    }

    // MARK: Scrape

    /// Sets the gauges from a `STATS` snapshot (the store's counts with the server's connections and workers,
    /// `Server.statistics`). Gauges of callbacks that are gone are removed, so that a removed callback's series
    /// end instead of staying at their last value.
    /// - Parameter stats: The snapshot.
    func updateGauges(from stats: Stats) {
        connections.set(Double(stats.connections))
        storeFileBytes.set(Double(stats.storeFileBytes))
        storeMapBytes.set(Double(stats.storeMapBytes))
        storeUsedBytes.set(Double(stats.storeUsedBytes))
        // Callbacks past the cap add up under one label value.
        var tasks: [LabelPair: UInt64] = [:]
        var workers: [String: UInt64] = [:]
        for entry in stats.callbacks {
            let label = callbackLabel(entry.callback)
            for (state, value) in zip(Self.taskStates, [entry.scheduled, entry.due, entry.leased, entry.dead]) {
                tasks[LabelPair(first: label, second: state), default: 0] += value
            }
            workers[label, default: 0] += UInt64(entry.workers)
        }
        for (key, gauge) in taskGauges where tasks[key] == nil {
            registry.unregisterGauge(gauge)
            taskGauges[key] = nil
        }
        for (key, value) in tasks {
            gauge(&taskGauges, key, "taskshed_tasks", [("callback", key.first), ("state", key.second)],
                  "Tasks by callback and state, as STATS counts them (scheduled includes due).").set(Double(value))
        }
        for (callback, gauge) in workerGauges where workers[callback] == nil {
            registry.unregisterGauge(gauge)
            workerGauges[callback] = nil
        }
        for (callback, value) in workers {
            gauge(&workerGauges, callback, "taskshed_workers",
                  "Connected workers (subscriptions) serving the callback.").set(Double(value))
        }
    }

    /// The metrics in the text exposition format 0.0.4.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return buffer
    }

    // MARK: Labels

    /// The `callback` label value for a callback: its name for the first `maxCallbackLabels` callbacks seen,
    /// `otherCallbackLabel` for later ones.
    func callbackLabel(_ callback: String) -> String {
        if let label = callbackLabels[callback] { return label }
        let label = distinctCallbacks < Self.maxCallbackLabels ? callback : Self.otherCallbackLabel
        if label == callback {
            distinctCallbacks += 1
            callbackLabels[callback] = label
        }
        // A callback past the cap is not remembered: the map stays bounded whatever the names.
        return label
    }

    /// The `outcome` label value: `RunOutcome`'s case name in snake case, as the history's JSON spells it.
    static func outcomeName(_ outcome: RunOutcome) -> String {
        switch outcome {
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .leaseExpired: return "lease_expired"
        case .workerDisconnected: return "worker_disconnected"
        case .released: return "released"
        case .skipped: return "skipped"
        }
    }

    // MARK: Caches

    /// A descriptor for a full metric name: the names here are written out whole, so that a search of the source
    /// for `taskshed_runs_total` finds where it is made.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func counter(_ cache: inout [String: Counter], _ callback: String, _ name: String,
                         _ help: String) -> Counter {
        if let counter = cache[callback] { return counter }
        let counter = registry.makeCounter(descriptor: Self.descriptor(name, help), labels: [("callback", callback)])
        cache[callback] = counter
        return counter
    }

    private func counter(_ cache: inout [LabelPair: Counter], _ key: LabelPair, _ name: String,
                         _ labels: [(String, String)], _ help: String) -> Counter {
        if let counter = cache[key] { return counter }
        let counter = registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
        cache[key] = counter
        return counter
    }

    private func histogram(_ cache: inout [String: ValueHistogram], _ callback: String, _ name: String,
                           _ buckets: [Double], _ help: String) -> ValueHistogram {
        if let histogram = cache[callback] { return histogram }
        let histogram = registry.makeValueHistogram(descriptor: Self.descriptor(name, help),
                                                    labels: [("callback", callback)], buckets: buckets)
        cache[callback] = histogram
        return histogram
    }

    private func gauge(_ cache: inout [LabelPair: Gauge], _ key: LabelPair, _ name: String,
                       _ labels: [(String, String)], _ help: String) -> Gauge {
        if let gauge = cache[key] { return gauge }
        let gauge = registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
        cache[key] = gauge
        return gauge
    }

    private func gauge(_ cache: inout [String: Gauge], _ callback: String, _ name: String, _ help: String) -> Gauge {
        if let gauge = cache[callback] { return gauge }
        let gauge = registry.makeGauge(descriptor: Self.descriptor(name, help), labels: [("callback", callback)])
        cache[callback] = gauge
        return gauge
    }
}
