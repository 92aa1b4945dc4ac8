import TaskShedStore

extension StoreBenchmarks {
    /// How outstanding leases end in the lease-end scenarios.
    public enum LeaseEnd: String, Sendable, CaseIterable {
        /// Leases pass their deadlines a batch at a time (`expireLeases`).
        case expiry
        /// Workers disconnect one at a time (`releaseHolder`).
        case disconnect
    }

    /// Lease ends beside many outstanding leases: `claimAckTasks` due tasks are claimed in batches of
    /// `claimBatch`, each batch with its own deadline (expiry) or its own holder (disconnect); then the batches
    /// end one transaction at a time, oldest first, so that the first ends with every lease still outstanding.
    /// Reports the rate over all ends and the median and slowest single end (what one expiry timer or one
    /// disconnect costs the writer with that many leases held), the heap the leases took, and one `stats`
    /// before the claims (all due) and one after (all leased).
    public static func leaseEnds(_ config: Config, how: LeaseEnd) throws -> BenchResult {
        let path = config.directory + "/lease-ends"
        defer { removeStore(path) }
        let (store, now) = try storeOfDueTasks(config, path: path, order: .random)
        let batches = (config.claimAckTasks + config.claimBatch - 1) / config.claimBatch
        func micros(_ nanos: UInt64) -> String { format(Double(nanos) / 1000, 0) }
        func deadline(_ batch: Int) -> Int64 { now + 60_000_000 + Int64(batch) * 1_000 }
        let statsStart = BenchClock.nanos()
        _ = try store.stats(now: now)
        let statsDue = BenchClock.nanos() - statsStart
        let heapBefore = BenchClock.heapBytesInUse()
        for batch in 0..<batches {
            let claimed = try store.claim(
                callbacks: callbacks, max: config.claimBatch, holder: UInt64(batch + 1),
                leaseDeadline: deadline(batch), now: now)
            precondition(!claimed.isEmpty, "batch \(batch) claimed nothing")
        }
        // The claimed records are gone by now: what the heap gained is the lease table (entries, frontiers,
        // deadline and holder buckets, the heap, and the undo log's kept capacity).
        let leaseBytes = Double(BenchClock.heapBytesInUse() - heapBefore) / Double(config.claimAckTasks)
        let leasedStatsStart = BenchClock.nanos()
        _ = try store.stats(now: now)
        let statsLeased = BenchClock.nanos() - leasedStatsStart
        var ended = 0
        var latencies: [UInt64] = []
        latencies.reserveCapacity(batches)
        let start = BenchClock.nanos()
        let cpuStart = BenchClock.threadCPUNanos()
        for batch in 0..<batches {
            let t = BenchClock.nanos()
            switch how {
            case .expiry: ended += try store.expireLeases(now: deadline(batch)).count
            case .disconnect: ended += try store.releaseHolder(UInt64(batch + 1), reason: "bench", now: now).count
            }
            latencies.append(BenchClock.nanos() - t)
        }
        let elapsed = BenchClock.nanos() - start
        let cpu = BenchClock.threadCPUNanos() - cpuStart
        precondition(ended == config.claimAckTasks, "ended \(ended) of \(config.claimAckTasks) leases")
        let first = latencies[0]
        latencies.sort()
        let name = how == .expiry ? "lease expiry" : "worker disconnect"
        return BenchResult(
            name: "\(name), \(batches) ends of \(config.claimBatch) beside up to \(config.claimAckTasks) leases (\(config.durable ? "durable" : "no-sync"))",
            tasks: ended, nanos: elapsed, cpuNanos: cpu,
            notes: ["per end: first \(micros(first)) µs, p50 \(micros(latencies[latencies.count / 2])) µs, "
                        + "max \(micros(latencies[latencies.count - 1])) µs",
                    "lease table \(format(leaseBytes, 0)) heap bytes per lease",
                    "stats: all \(config.claimAckTasks) due \(micros(statsDue)) µs, all leased \(micros(statsLeased)) µs"])
    }
}
