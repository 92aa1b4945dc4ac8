/// Protocol-wide constants and the default limits a server announces in `HELLO_OK`.
///
/// The limits table in `proto-spec/PROTOCOL.md` is normative; a server may configure the announced limits
/// (frame size, batch, kwargs) but never above the hard maxima here.
public enum ProtocolLimits {
    /// The protocol versions this module speaks. Version 2 is version 1 plus `GET_DAEMONS`/`DAEMONS`; version 3
    /// is version 2 plus `SUBSCRIBE_AHEAD`/`REVOKE` (delivery ahead of the due time), calendar schedules,
    /// `GET_HISTORY`/`HISTORY` (the run history) and `GET_METRICS`/`METRICS`; a connection uses the highest
    /// version both sides speak (PROTOCOL.md, section 10).
    public static let versions: ClosedRange<UInt16> = 1...3
    /// Bytes of the frame header after the length prefix: type u16, flags u16, request id u32.
    public static let headerBytesAfterLength: Int = 8
    /// Bytes of the whole header including the u32 length prefix.
    public static let headerBytes: Int = 12
    /// Default largest value of the length prefix (64 MiB: a batch of 100,000 tasks fits).
    public static let defaultMaxFrameBytes: UInt32 = 64 << 20
    /// Default most tasks, ids or updates in one request.
    public static let defaultMaxBatch: UInt32 = 100_000
    /// Default largest kwargs object (64 KiB).
    public static let defaultMaxKwargsBytes: UInt32 = 64 << 10
    /// Longest task id, callback name or group name, in UTF-8 bytes.
    public static let maxNameBytes: Int = 255
    /// Longest error message a server stores for a failed task, in UTF-8 bytes (longer ones are truncated).
    public static let maxErrorBytes: Int = 4096
    /// Default number of delivery attempts of a one-off task before it is dead-lettered.
    public static let defaultMaxAttempts: UInt32 = 3

    /// Longest string any field can carry: its `u16` length prefix.
    public static let maxStringBytes: Int = 65_535
    /// Lease length a server uses when neither the worker nor its configuration asks for one (30 s).
    public static let defaultLeaseMicros: Int64 = 30_000_000
    /// Shortest lease a worker may ask for (1 ms).
    public static let minLeaseMicros: Int64 = 1_000
    /// Longest lease a worker may ask for (24 h).
    public static let maxLeaseMicros: Int64 = 86_400_000_000
    /// Earliest instant a server accepts in a request: the Unix epoch.
    public static let minInstantMicros: Int64 = 0
    /// Latest instant a server accepts in a request: 9999-12-31T23:59:59.999999Z.
    public static let maxInstantMicros: Int64 = 253_402_300_799_999_999
    /// Longest interval of a recurring task (100 years of 365 days).
    public static let maxIntervalMicros: Int64 = 3_153_600_000_000_000
    /// Longest opaque cursor a server puts in `TASK_PAGE` (a client never needs to look inside it).
    public static let maxCursorBytes: Int = 1024
    /// Most delivery attempts a task may ask for (`maxAttempts`; 0 means the default).
    public static let maxAttemptsLimit: UInt32 = 1000
    /// Largest frame a server accepts before `HELLO` (a `HELLO` with a 255-byte client name takes 273 bytes):
    /// a connection that has not said who it is cannot make the server buffer more.
    public static let maxHandshakeFrameBytes: UInt32 = 4096
    /// How long a server waits for `HELLO` after accepting a connection, by default (10 s).
    public static let defaultHandshakeTimeoutMicros: Int64 = 10_000_000
}
