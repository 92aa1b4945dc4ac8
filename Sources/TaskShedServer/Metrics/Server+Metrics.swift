import TaskShedEventLoop
import TaskShedProtocol

/// Carries a scrape's store read from the pool thread to the loop thread (libuv orders the two: the work
/// returns before its completion runs), hence the unchecked conformance.
private final class MetricsReadBox: @unchecked Sendable {
    var result: StoreReadResult?
}

/// Times a store job's transaction and its flush on the pool thread, for the loop thread (as `MetricsReadBox`).
final class StoreJobTiming: @unchecked Sendable {
    /// The write transaction's duration.
    var commitNanos: UInt64 = 0
    /// The flush's duration, if the job flushed (`StoreJob.flushIfAlone`).
    var flushNanos: UInt64?
}

extension Server {
    /// Makes the metrics text for a `GET_METRICS` or `GET /metrics`: reads the task counts and the store's size on
    /// the thread pool (the same read as `STATS`, which walks every due task and takes ~150 ms beside 1M of them),
    /// then, on the loop thread, sets the gauges and renders the registry.
    ///
    /// Scrapes that come while a read runs wait for it and share its result, so that many scrapers cost one
    /// read at a time; their gauges are then as of that read's start. The read counts among the background
    /// reads (`readsInFlight`): a stopping daemon waits for it before its goodbye, and client reads queue behind
    /// it rather than beside it. While stopping, the read runs on the loop thread.
    /// - Parameter completion: Gets the text (exposition format 0.0.4), on the loop thread; it runs at once when
    ///   the read cannot be put on the pool.
    /// - Important: Loop thread only.
    func scrapeMetrics(_ completion: @escaping ([UInt8]) -> Void) {
        metricsScrapes.append(completion)
        guard !isMetricsReadRunning else { return }
        // The server's part as of now, as for STATS: the store part is read as of the same instant.
        guard let server = serverStatistics(for: .getStats) else { preconditionFailure("no server part for STATS") }
        let now = WallClock.nowMicros()
        let limits = readLimits
        guard let store else {
            metricsReadFinished(nil, server: server, now: now)
            return
        }
        guard !isShuttingDown, let loop else {
            metricsReadFinished(Self.storeRead(.getStats, store: store, server: server, now: now, limits: limits),
                                server: server, now: now)
            return
        }
        isMetricsReadRunning = true
        readsInFlight += 1
        let box = MetricsReadBox()
        do {
            try BackgroundWork.run(on: loop, {
                box.result = Self.storeRead(.getStats, store: store, server: server, now: now, limits: limits)
            }, completion: { [unowned self] in
                self.isMetricsReadRunning = false
                self.readsInFlight -= 1
                self.metricsReadFinished(box.result, server: server, now: now)
                if self.isShuttingDown {
                    self.finishShutdown()
                } else {
                    self.startWaitingReads()
                }
            })
        } catch {
            logger.warning("no thread-pool thread for a metrics read; reading on the loop thread: \(error)")
            isMetricsReadRunning = false
            readsInFlight -= 1
            metricsReadFinished(Self.storeRead(.getStats, store: store, server: server, now: now, limits: limits),
                                server: server, now: now)
        }
    }

    /// Sets the gauges from a finished read and answers every waiting scrape.
    /// - Parameter result: The store's part, or `nil` when there is no store (a daemon that is closing it). A
    ///   failed read leaves the task and store gauges as they were: a passing store error should not make
    ///   their series vanish and come back. The counters and histograms are served either way.
    private func metricsReadFinished(_ result: StoreReadResult?, server: ServerStatistics, now: Int64) {
        switch result {
        case .stats(let storePart)?:
            metrics.updateGauges(from: Self.statistics(storePart, server: server, now: now))
        case .failed(let reply)?:
            logger.debug("metrics: the store's statistics could not be read: \(reply.message)")
        default:
            break
        }
        let text = metrics.exposition()
        let waiting = metricsScrapes
        metricsScrapes.removeAll()
        for completion in waiting { completion(text) }
    }

    /// Answers a `GET_METRICS`: like a background read, the connection's later requests wait for its reply.
    func answerMetricsRequest(requestID: UInt32, on session: ClientSession) {
        session.queuedRequests += 1
        session.readInFlight = true
        scrapeMetrics { [unowned self] text in
            session.readInFlight = false
            session.queuedRequests -= 1
            guard !session.isClosing else { return }
            self.send(Frame(requestID: requestID, message: .metrics(text)), to: session)
        }
    }

    /// Runs a store job's transaction and, when it may, the flush after it, timing both for the metrics.
    /// - Important: Runs where the job runs (a pool thread, or the loop thread without syncing); touches only
    ///   `store`, `arrivals` and the boxes.
    static func runTimed(_ job: StoreJob, on store: ServerStore, arrivals: WriteArrivals?, outcome: StoreJobOutcome,
                         timing: StoreJobTiming) {
        let started = WallClock.monotonicNanos()
        outcome.result = job.run(on: store)
        let committed = WallClock.monotonicNanos()
        timing.commitNanos = committed &- started
        guard let arrivals else { return }
        outcome.flushed = job.flushIfAlone(store, outcome.result, arrivals: arrivals)
        if outcome.flushed { timing.flushNanos = WallClock.monotonicNanos() &- committed }
    }
}
