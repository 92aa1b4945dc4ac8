/// A task as a client asks to create it (the fields of the original's `add_task`).
///
/// Times are microseconds since the Unix epoch, UTC. Validation (lengths, JSON object, interval > 0) happens
/// in the server; the codec only checks that the bytes are well formed.
public struct TaskSpec: Sendable, Hashable {
    /// The task's unique id, or `nil` to let the server generate one (15 characters of `-0-9A-Z_a-z`, starting
    /// with `V` until 2109; taskshedd puts the task's first run time in milliseconds first, so that generated ids
    /// sort by when the tasks fall due and the store keeps their records in that order).
    public var id: String?
    /// The callback name a worker looks up in its callback map.
    public var callback: String
    /// The first execution time, or `nil` for "now" by the server's clock.
    public var runAt: Int64?
    /// Once or recurring.
    public var schedule: Schedule
    /// Keyword arguments: the UTF-8 bytes of a JSON object. Empty means `{}`.
    public var kwargs: [UInt8]
    /// Optional group for bulk operations.
    public var group: String?
    /// Created paused: it never runs until resumed.
    public var paused: Bool
    /// Recurring only: after falling behind, run once and jump past now (`true`) or once per missed interval.
    public var coalesce: Bool
    /// Delivery attempts before a failing one-off task is dead-lettered; 0 means the server's default (3).
    public var maxAttempts: UInt32

    /// Creates a task specification; defaults follow the original (`once`, `{}`, not paused, coalesce).
    public init(
        id: String? = nil,
        callback: String,
        runAt: Int64? = nil,
        schedule: Schedule = .once,
        kwargs: [UInt8] = [],
        group: String? = nil,
        paused: Bool = false,
        coalesce: Bool = true,
        maxAttempts: UInt32 = 0
    ) {
        self.id = id
        self.callback = callback
        self.runAt = runAt
        self.schedule = schedule
        self.kwargs = kwargs
        self.group = group
        self.paused = paused
        self.coalesce = coalesce
        self.maxAttempts = maxAttempts
    }
}
