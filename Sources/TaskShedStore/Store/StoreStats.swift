/// Per-callback counts kept by the store.
public struct StoreCallbackStats: Sendable, Hashable {
    /// The callback name.
    public var callback: String
    /// Scheduled tasks: pending, due and paused.
    public var scheduled: UInt64
    /// Scheduled, unpaused tasks with `runAt <= now`.
    public var due: UInt64
    /// Leased tasks.
    public var leased: UInt64
    /// Dead-lettered tasks.
    public var dead: UInt64

    /// Creates an entry.
    public init(callback: String, scheduled: UInt64, due: UInt64, leased: UInt64, dead: UInt64) {
        self.callback = callback
        self.scheduled = scheduled
        self.due = due
        self.leased = leased
        self.dead = dead
    }
}

/// The store's counts and sizes at one instant.
public struct StoreStats: Sendable, Hashable {
    /// Scheduled, unpaused, `runAt > now`.
    public var pending: UInt64
    /// Scheduled, unpaused, `runAt <= now`.
    public var due: UInt64
    /// Scheduled and paused.
    public var paused: UInt64
    /// Leased.
    public var leased: UInt64
    /// Dead-lettered.
    public var dead: UInt64
    /// Per callback, sorted by callback name (UTF-8 byte order).
    public var callbacks: [StoreCallbackStats]
    /// Earliest `runAt` of an unpaused scheduled task.
    public var earliestRunAt: Int64?
    /// Size of the data file in bytes (with the writable map, LMDB sizes the file to the map: `mapBytes`).
    public var fileBytes: UInt64
    /// Current map size in bytes.
    public var mapBytes: UInt64
    /// Bytes of the map up to its high-water mark.
    public var usedBytes: UInt64

    /// Creates statistics.
    public init(
        pending: UInt64, due: UInt64, paused: UInt64, leased: UInt64, dead: UInt64,
        callbacks: [StoreCallbackStats], earliestRunAt: Int64?, fileBytes: UInt64, mapBytes: UInt64,
        usedBytes: UInt64
    ) {
        self.pending = pending
        self.due = due
        self.paused = paused
        self.leased = leased
        self.dead = dead
        self.callbacks = callbacks
        self.earliestRunAt = earliestRunAt
        self.fileBytes = fileBytes
        self.mapBytes = mapBytes
        self.usedBytes = usedBytes
    }
}
