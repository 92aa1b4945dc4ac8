/// Writes frames.
///
/// ```
///  0               4       6       8               12
/// +---------------+-------+-------+---------------+------------------+
/// | length u32    | type  | flags | request_id    | payload          |
/// |               | u16   | u16=0 | u32           | (length − 8)     |
/// +---------------+-------+-------+---------------+------------------+
///   length counts every byte after itself: 8 header bytes + the payload.
/// ```
///
/// - Important: Stateless; callable from any thread. The encoder does not enforce the peer's maximum frame
///   size: compare the appended byte count with the `maxFrameBytes` from `HELLO_OK` (+ 4) when batches are
///   large.
public enum FrameEncoder {
    /// Appends one frame to `buffer`.
    /// - Parameters:
    ///   - frame: The frame.
    ///   - buffer: The bytes to append to (existing bytes are kept, so many frames can share one write).
    ///   - version: The connection's protocol version (the latest by default), for the layouts that differ.
    public static func encode(_ frame: Frame, into buffer: inout [UInt8],
                              version: UInt16 = ProtocolLimits.versions.upperBound) {
        var writer = ByteWriter()
        writer.version = version
        swap(&writer.bytes, &buffer)  // moves the storage in and out: no copy
        let start = writer.count
        writer.writeU32(0)
        writer.writeU16(frame.message.type.rawValue)
        writer.writeU16(0)
        writer.writeU32(frame.requestID)
        frame.message.encodePayload(to: &writer)
        writer.patchU32(UInt32(truncatingIfNeeded: writer.count - start - 4), at: start)
        swap(&writer.bytes, &buffer)
    }

    /// Encodes one frame.
    /// - Parameter frame: The frame.
    /// - Returns: Its bytes.
    public static func encode(_ frame: Frame) -> [UInt8] {
        var bytes: [UInt8] = []
        encode(frame, into: &bytes)
        return bytes
    }
}
