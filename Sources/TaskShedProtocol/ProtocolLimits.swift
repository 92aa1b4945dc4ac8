/// Protocol-wide constants and the default limits a server announces in `HELLO_OK`.
///
/// The limits table in `proto-spec/PROTOCOL.md` is normative; a server may configure the announced limits
/// (frame size, batch, kwargs) but never above the hard maxima here.
public enum ProtocolLimits {
    /// The only protocol version this module speaks.
    public static let version: UInt16 = 1
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
}
