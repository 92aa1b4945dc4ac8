import TaskShedProtocol
import TaskShedStore

/// Where the time of one durable single-task add goes inside the store, opened as the daemon opens it
/// (`durable`, `deferMetaSync`, the writable map): the commit, which flushes the changed data pages before it
/// writes its meta page, then the flush of that meta page (`sync()`), each timed on its own, with the bytes
/// each wrote to the disk (`/proc/self/io` `write_bytes`), beside a commit that flushes nothing and the
/// machine's `fdatasync` floor. LMDB must have the data pages on disk before the meta page that points to
/// them, so the two flushes cannot merge.
public enum SingleAddProfile {
    /// One part of the add.
    public struct Part: Sendable {
        /// What was timed.
        public var name: String
        /// Durations in microseconds.
        public var micros: LagDistribution
        /// Mean bytes of pages dirtied per add by this part (`nil` where not measured): what the flushes write.
        public var bytesWritten: Double?
    }

    /// Times `count` adds of one task each in fresh stores under `directory`.
    /// - Parameters:
    ///   - directory: Where the stores and the `fdatasync` probe go (the disk being measured).
    ///   - count: Adds per store.
    /// - Returns: The parts: commit without flushing, commit with the data flush, meta flush, the two
    ///   together, and the `fdatasync` floor.
    /// - Throws: `StoreError` or `BenchError`.
    public static func measure(directory: String, count: Int) throws -> [Part] {
        let floor = try MachineFacts.fdatasyncMicros(directory: directory)
        let unflushed = try timedAdds(directory: directory + "/profile-nosync", count: count, durable: false)
        let durable = try timedAdds(directory: directory + "/profile-durable", count: count, durable: true)
        return [
            Part(name: "commit, nothing flushed (MDB_NOSYNC)", micros: unflushed.commit, bytesWritten: nil),
            Part(name: "commit, data pages flushed", micros: durable.commit, bytesWritten: durable.commitBytes),
            // The meta page is dirtied by the commit, after its data pages were flushed: counted there.
            Part(name: "meta page flushed (sync)", micros: durable.sync, bytesWritten: nil),
            Part(name: "commit + meta flush", micros: durable.total, bytesWritten: nil),
            Part(name: "fdatasync floor (4 KiB overwrite)", micros: floor, bytesWritten: nil),
        ]
    }

    /// The parts as report lines.
    /// - Parameter parts: From `measure`.
    /// - Returns: One line per part.
    public static func lines(_ parts: [Part]) -> [String] {
        parts.map { part in
            var line = "\(part.name): " + AddBenchmark.percentileText(part.micros)
            if let bytes = part.bytesWritten {
                line += ", \(format(bytes / 1024, 1)) KiB of pages dirtied per add"
            }
            return line
        }
    }

    private struct Timings {
        var commit: LagDistribution
        var sync: LagDistribution
        var total: LagDistribution
        var commitBytes: Double
    }

    private static func timedAdds(directory: String, count: Int, durable: Bool) throws -> Timings {
        StoreBenchmarks.removeStore(directory)
        defer { StoreBenchmarks.removeStore(directory) }
        // The daemon's options (`Server.openStore`); its default initial map.
        let options = StoreOptions(durable: durable, deferMetaSync: durable)
        let store = try LMDBTaskStore(directory: directory, options: options)
        defer { store.close() }
        var random = SplitMix64(seed: 3)
        let specs = (0..<count).map { _ in AddBenchmark.pendingSpec(random: &random) }
        var commits: [Double] = []
        var syncs: [Double] = []
        var totals: [Double] = []
        var commitBytes: Int64 = 0
        for spec in specs {
            let written = ProcFacts.writtenBytes()
            let start = BenchClock.nanos()
            _ = try store.add([spec], onConflict: .replace, now: BenchClock.wallMicros())
            let committed = BenchClock.nanos()
            // Read between the two timed parts: a /proc read is not part of either.
            commitBytes += ProcFacts.writtenBytes() - written
            let syncStart = BenchClock.nanos()
            if durable { try store.sync() }
            let synced = BenchClock.nanos()
            commits.append(Double(committed - start) / 1000)
            syncs.append(Double(synced - syncStart) / 1000)
            totals.append(Double(committed - start + synced - syncStart) / 1000)
        }
        return Timings(commit: LagDistribution(micros: commits), sync: LagDistribution(micros: syncs),
                       total: LagDistribution(micros: totals), commitBytes: Double(commitBytes) / Double(count))
    }
}
