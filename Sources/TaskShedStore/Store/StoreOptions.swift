import TaskShedProtocol

/// How failed one-off tasks are retried: exponential backoff with jitter.
///
/// The delay before attempt `n + 1` (after `n` failed attempts) is
/// `min(baseMicros * 2^(n-1), maxMicros) * f`, with `f` drawn uniformly from `minJitter...1.0`.
public struct RetryPolicy: Sendable, Hashable {
    /// Delay after the first failure, before jitter (default 1 s).
    public var baseMicros: Int64
    /// Largest delay before jitter (default 5 min).
    public var maxMicros: Int64
    /// Lower end of the jitter factor, in 0...1 (default 0.5; 1.0 disables jitter).
    public var minJitter: Double

    /// Creates a policy.
    public init(baseMicros: Int64 = 1_000_000, maxMicros: Int64 = 300_000_000, minJitter: Double = 0.5) {
        self.baseMicros = baseMicros
        self.maxMicros = maxMicros
        self.minJitter = min(max(minJitter, 0), 1)
    }

    /// The delay before the next attempt after `attempt` failed attempts (`attempt >= 1`), for a jitter draw
    /// `unit` in 0...1.
    public func delay(afterAttempt attempt: UInt32, unit: Double) -> Int64 {
        let shift = Int64(max(attempt, 1) - 1)
        var raw = maxMicros
        if shift < 62 {
            let (scaled, overflow) = baseMicros.multipliedReportingOverflow(by: Int64(1) << shift)
            if !overflow { raw = min(scaled, maxMicros) }
        }
        let factor = minJitter + (1 - minJitter) * min(max(unit, 0), 1)
        return Int64((Double(raw) * factor).rounded())
    }
}

/// Settings for opening an `LMDBTaskStore`.
public struct StoreOptions: Sendable, Hashable {
    /// Map size when a store is created (default 64 MiB). The map doubles when full, up to `maxMapBytes`.
    public var initialMapBytes: Int
    /// Largest map size writes may grow to (default 8 GiB), and so the largest the data file gets. Past it
    /// (less its reserve, `reserveBytes`), requests that add data fail with `storeFull`.
    public var maxMapBytes: Int
    /// The end of the store's room kept for the requests that finish or remove tasks (default 64 MiB; at most
    /// a quarter of the room).
    ///
    /// The room is `maxMapBytes`, or less when the disk cannot give the data file that much. LMDB copies every
    /// page it changes, deletions included, so a store filled to its last page could not remove a task or
    /// finish a delivery. Requests that add data (ADD, PAUSE, RESUME, UPDATE_RUN_TIMES, RETRY_DEAD) therefore
    /// fail with `storeFull` once the pages in the store's trees would pass the room less this reserve; the
    /// others (claims, acks, fails, touches, releases, lease ends, removals, purges) may use the reserve. A
    /// single removal still needs as many free pages as it changes: one of thousands of tasks scattered over
    /// the store may not fit in the reserve, where the same tasks removed a few hundred at a time do.
    public var reserveBytes: Int
    /// `true` (default): every commit is durable (fsync). `false` opens with `MDB_NOSYNC`: much faster, but a
    /// system crash (not a process crash) may lose recent commits, or corrupt the store, because the kernel may
    /// write the meta page before the pages it points to (with or without `writeMap`).
    public var durable: Bool
    /// With `durable`, flush each commit's data pages before its meta page is written, but not the meta page
    /// itself (`MDB_NOMETASYNC`); `sync()` then makes everything committed so far durable (default `false`).
    ///
    /// For a caller that batches its own durability points (the daemon flushes once per group commit, off its
    /// event loop, before it replies): a commit costs one flush instead of two, and because a meta page is
    /// never written before the pages it points to are on disk, a system crash can lose the commits since the
    /// last `sync()` but never corrupt the store. `durable == false` (`MDB_NOSYNC`) gives no such ordering: a
    /// system crash (not a process crash) may then corrupt the store.
    public var deferMetaSync: Bool
    /// Open with `MDB_NORDAHEAD` (default `true`): cold random reads of a store larger than memory fault in
    /// one page instead of a read-ahead window, so opening a 10-million-task store takes milliseconds.
    public var noReadAhead: Bool
    /// Write through a writable map (`MDB_WRITEMAP`, default `true`): a commit changes the pages in place
    /// instead of copying each changed page to the heap and writing it with `pwrite`, which on this kernel
    /// costs ~2.7 µs per random 4 KiB page. Claim + ack with random run times runs about twice as fast
    /// (BENCHMARKS.md 3.9), and the heap no longer keeps LMDB's page buffers after a large batch.
    ///
    /// The data file is then as large as the map, and its blocks are allocated up front (`posix_fallocate`) so
    /// that a full disk is an error when the map grows, never a `SIGBUS` when a page is first written. Where
    /// that allocation fails (a full disk), the store opens or continues without the writable map; on a
    /// copy-on-write filesystem (btrfs, ZFS, bcachefs), where allocated blocks do not cover overwrites, it never
    /// uses it. It also leaves it when the store becomes full, because the per-request isolation of a full
    /// store needs nested transactions, which LMDB refuses with a writable map. Turn it off for a store much
    /// larger than memory: writing a page that is not in memory then reads it from disk first.
    public var writeMap: Bool = true
    /// Largest kwargs object in bytes (default `ProtocolLimits.defaultMaxKwargsBytes`).
    public var maxKwargsBytes: Int
    /// Whether `add` checks that kwargs are a JSON object (`JSONObjectValidator`). On by default; a caller
    /// that has already checked every task with that same function (the daemon does, to answer with the
    /// field's name before a request is queued) turns it off rather than parse each task's kwargs twice.
    public var checksKwargsJSON = true
    /// Retry backoff for failed one-off tasks.
    public var retry: RetryPolicy
    /// How much run history the store keeps (default `HistoryLimits.standard`).
    public var history = HistoryLimits.standard
    /// Create the directory (mode 0700) if it does not exist (default `true`).
    public var createDirectory: Bool

    /// Creates options; the defaults are documented on each property.
    public init(
        initialMapBytes: Int = 64 << 20,
        maxMapBytes: Int = 8 << 30,
        reserveBytes: Int = 64 << 20,
        durable: Bool = true,
        deferMetaSync: Bool = false,
        noReadAhead: Bool = true,
        maxKwargsBytes: Int = Int(ProtocolLimits.defaultMaxKwargsBytes),
        retry: RetryPolicy = RetryPolicy(),
        createDirectory: Bool = true
    ) {
        self.initialMapBytes = initialMapBytes
        self.maxMapBytes = maxMapBytes
        self.reserveBytes = reserveBytes
        self.durable = durable
        self.deferMetaSync = deferMetaSync
        self.noReadAhead = noReadAhead
        self.maxKwargsBytes = maxKwargsBytes
        self.retry = retry
        self.createDirectory = createDirectory
    }
}
