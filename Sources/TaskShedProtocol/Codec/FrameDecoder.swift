/// An incremental frame decoder: bytes in, then `next()` returns a frame, `nil` ("need more bytes") or a
/// typed error.
///
/// The decoder keeps a buffer and a read index; its only states are "waiting for the header" (fewer than 12
/// bytes of the current frame buffered) and "waiting for the body" (header checked, `4 + length` bytes not yet
/// buffered), both recomputed from the 12 bytes at the read index on each call, which costs less than keeping
/// them. Checks happen as soon as the bytes they need are present, so a frame decodes identically whether it
/// arrives byte by byte, whole, or concatenated with others:
///
/// - 4 bytes: `length < 8` → `MALFORMED_FRAME`, `length > maxFrameBytes` → `FRAME_TOO_LARGE` (both fatal; the
///   length is rejected before any buffer is sized for it: the decoder only ever holds bytes it was given).
/// - 12 bytes: nonzero `flags` → `MALFORMED_FRAME` (fatal).
/// - `4 + length` bytes: the frame is consumed; an unknown type (or, for a decoder `accepting: .requests`, a
///   reply or push type) → `UNKNOWN_MESSAGE_TYPE` without reading the payload; a payload that does not match
///   its type's layout (including trailing bytes) → `MALFORMED_MESSAGE`. Both are not fatal.
///
/// After a fatal error every later `next()` throws the same error.
///
/// - Important: A value type with no shared state; one decoder per connection, used from one thread.
public struct FrameDecoder: Sendable {
    /// Which message types a decoder decodes.
    public enum AcceptedTypes: Sendable, Hashable {
        /// Every type of this version (clients, which read replies and pushes; tools).
        case all
        /// Requests only (a server): a client must not send a reply or push type at all, so such a frame is
        /// `UNKNOWN_MESSAGE_TYPE` by its type, whatever its payload holds (PROTOCOL.md section 2).
        case requests
    }

    /// The largest accepted value of the length prefix. A server raises it once the handshake is done (frames
    /// before `HELLO` are kept small); a frame whose length was already accepted is not checked again.
    public var maxFrameBytes: UInt32
    /// Which types are decoded; the others are `UNKNOWN_MESSAGE_TYPE`.
    public let acceptedTypes: AcceptedTypes
    /// The protocol version of the connection: types introduced by a later version are `UNKNOWN_MESSAGE_TYPE`,
    /// as for a peer that never heard of them. Before the handshake, the highest version this module speaks; a
    /// server sets the negotiated one after `HELLO`.
    public var version: UInt16 = ProtocolLimits.versions.upperBound

    /// Buffered bytes; `buffer[readIndex...]` are not yet consumed.
    var buffer: [UInt8] = []
    var readIndex = 0
    var fatalFailure: ProtocolError?

    /// Consumed bytes are dropped when at least this many accumulate (and they are over half the buffer),
    /// so a long pipelined stream does not keep shifting memory for every frame.
    static let compactionThreshold = 64 << 10
    /// An empty buffer larger than this is released rather than kept for reuse.
    static let retainedCapacity = 1 << 20

    /// Creates a decoder.
    /// - Parameters:
    ///   - maxFrameBytes: The largest accepted length prefix (announced in `HELLO_OK`).
    ///   - acceptedTypes: `.requests` for a server's decoder; `.all` (the default) decodes every type.
    public init(maxFrameBytes: UInt32 = ProtocolLimits.defaultMaxFrameBytes, accepting acceptedTypes: AcceptedTypes = .all) {
        self.maxFrameBytes = maxFrameBytes
        self.acceptedTypes = acceptedTypes
    }

    /// Bytes received but not yet consumed by `next()`.
    public var bufferedByteCount: Int { buffer.count - readIndex + largeReceived }

    /// Whether a fatal error has ended this stream.
    public var hasFailed: Bool { fatalFailure != nil }

    /// Adds received bytes.
    /// - Parameter bytes: The bytes (copied).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if largeTotal > 0 {
            let taken = min(bytes.count, largeTotal - largeReceived)
            if taken > 0 {
                largeChunks.append(Array(UnsafeRawBufferPointer(rebasing: bytes[0..<taken])))
                largeReceived += taken
            }
            if taken == bytes.count { return }
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[taken...]))
            return
        }
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes.
    /// - Parameter bytes: The bytes (copied).
    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        Array(bytes).withUnsafeBytes { append($0) }
    }

    /// Frames at least this long are gathered chunk by chunk as they arrive (`largeChunks`), not in the
    /// contiguous buffer: growing that by doubling would copy a 64 MiB frame's bytes again and again on the
    /// receiving thread, 32 MiB at once for the last step. The chunks are joined when the frame is decoded,
    /// which for a server happens off its loop (`takeFrame(ifAtLeast:)`).
    public static let largeFrameBytes = 1 << 20

    /// The chunks of the large frame being received (its first bytes included), while `largeTotal > 0`; bytes
    /// after it go to `buffer`, which is empty when the large frame begins.
    var largeChunks: [[UInt8]] = []
    /// The large frame's size (length prefix included), or 0 when none is being received.
    var largeTotal = 0
    /// Bytes of it received so far.
    var largeReceived = 0

    /// Moves the frame at the read index into `largeChunks` when it is large and incomplete (its header was
    /// checked by `next()`).
    private mutating func gatherLargeFrame(total: Int) {
        guard total >= Self.largeFrameBytes, largeTotal == 0 else { return }
        largeChunks = [Array(buffer[readIndex...])]
        largeReceived = buffer.count - readIndex
        largeTotal = total
        buffer = []
        readIndex = 0
    }

    /// The gathered large frame, joined, once complete; the decoder goes back to its contiguous buffer.
    private mutating func takeLargeFrame() -> [UInt8]? {
        guard largeTotal > 0, largeReceived == largeTotal else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(largeTotal)
        for chunk in largeChunks { bytes.append(contentsOf: chunk) }
        largeChunks = []
        largeTotal = 0
        largeReceived = 0
        return bytes
    }

    /// A whole frame taken out of the decoder, not yet decoded (see `takeFrame(ifAtLeast:)`).
    public struct RawFrame: Sendable {
        /// The frame's bytes, in one buffer or in the chunks they arrived in.
        let chunks: [[UInt8]]
        /// The frame's offset in `chunks[0]` when it is one buffer holding more bytes than the frame.
        let start: Int
        /// The frame's size in bytes, length prefix included.
        public let byteCount: Int
        /// The types its decoder accepts.
        let acceptedTypes: AcceptedTypes
        /// Its decoder's protocol version.
        let version: UInt16

        /// Decodes the payload (joining the chunks first), with the same results and errors as
        /// `FrameDecoder.next()` would have given.
        /// - Throws: `ProtocolError` (`.unknownMessageType`, `.malformedMessage`, never fatal).
        public func decode() throws(ProtocolError) -> Frame {
            if chunks.count == 1 {
                return try FrameDecoder.decodeBody(chunks[0], start: start, total: byteCount, acceptedTypes: acceptedTypes,
                                                   version: version)
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(byteCount)
            for chunk in chunks { bytes.append(contentsOf: chunk) }
            return try FrameDecoder.decodeBody(bytes, start: 0, total: byteCount, acceptedTypes: acceptedTypes,
                                               version: version)
        }
    }

    /// Takes the next frame out of the decoder, undecoded, when it is complete, its header passes the checks
    /// of `next()`, and it is at least `minimumBytes` long; otherwise changes nothing and returns `nil`. A
    /// server decodes such a frame on another thread: decoding 100,000 tasks takes tens of milliseconds.
    /// - Parameter minimumBytes: The smallest frame (length prefix included) to take.
    /// - Returns: The frame, or `nil`.
    public mutating func takeFrame(ifAtLeast minimumBytes: Int) -> RawFrame? {
        guard fatalFailure == nil else { return nil }
        if largeTotal > 0 {
            guard largeReceived == largeTotal, largeTotal >= minimumBytes else { return nil }
            let frame = RawFrame(chunks: largeChunks, start: 0, byteCount: largeTotal, acceptedTypes: acceptedTypes,
                                 version: version)
            largeChunks = []
            largeTotal = 0
            largeReceived = 0
            return frame
        }
        guard buffer.count - readIndex >= ProtocolLimits.headerBytes else { return nil }
        let length = loadU32(at: readIndex)
        let total = 4 + Int(length)
        guard total >= minimumBytes, length >= UInt32(ProtocolLimits.headerBytesAfterLength), length <= maxFrameBytes,
              loadU16(at: readIndex + 6) == 0, buffer.count - readIndex >= total
        else { return nil }
        // The frame's bytes are copied once (at most `largeFrameBytes`: larger frames are gathered in chunks).
        let frame = RawFrame(chunks: [Array(buffer[readIndex..<(readIndex + total)])], start: 0, byteCount: total,
                             acceptedTypes: acceptedTypes, version: version)
        readIndex += total
        return frame
    }

    private mutating func compact() {
        if readIndex == 0 { return }
        if readIndex == buffer.count {
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            readIndex = 0
        } else if readIndex >= Self.compactionThreshold && readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }

    @inline(__always)
    private func loadU32(at position: Int) -> UInt32 {
        buffer.withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt32.self)) }
    }

    @inline(__always)
    private func loadU16(at position: Int) -> UInt16 {
        buffer.withUnsafeBytes { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt16.self)) }
    }

    /// Decodes the next frame.
    /// - Returns: A frame, or `nil` when more bytes are needed.
    /// - Throws: `ProtocolError`. When `isFatal` (`.malformedFrame`, `.frameTooLarge`) the stream cannot
    ///   continue and the connection must close; otherwise (`.unknownMessageType`, `.malformedMessage`) the bad
    ///   frame was consumed and `next()` can be called again.
    public mutating func next() throws(ProtocolError) -> Frame? {
        if let fatalFailure { throw fatalFailure }
        if largeTotal > 0 {
            guard let bytes = takeLargeFrame() else { return nil }
            return try Self.decodeBody(bytes, start: 0, total: bytes.count, acceptedTypes: acceptedTypes,
                                       version: version)
        }
        let start = readIndex
        let available = buffer.count - start
        guard available >= 4 else { return nil }
        let length = loadU32(at: start)
        if length < UInt32(ProtocolLimits.headerBytesAfterLength) {
            return try fail(
                ProtocolError(
                    code: .malformedFrame, offset: 0,
                    message: "length \(length) is below the minimum 8 (type, flags and request id follow it)",
                    isFatal: true))
        }
        if length > maxFrameBytes {
            return try fail(
                ProtocolError(
                    code: .frameTooLarge, offset: 0,
                    message: "length \(length) exceeds the maximum frame size \(maxFrameBytes)", isFatal: true))
        }
        guard available >= ProtocolLimits.headerBytes else { return nil }
        let rawType = loadU16(at: start + 4)
        let flags = loadU16(at: start + 6)
        let requestID = loadU32(at: start + 8)
        if flags != 0 {
            return try fail(
                ProtocolError(
                    code: .malformedFrame, requestID: requestID, messageType: rawType, offset: 6,
                    message: "reserved flags must be 0, got 0x" + String(flags, radix: 16), isFatal: true))
        }
        let total = 4 + Int(length)
        guard available >= total else {
            gatherLargeFrame(total: total)
            return nil
        }
        readIndex = start + total
        return try Self.decodeBody(buffer, start: start, total: total, acceptedTypes: acceptedTypes, version: version)
    }

    /// Decodes a whole frame whose header was checked: its type and payload.
    static func decodeBody(_ buffer: [UInt8], start: Int, total: Int, acceptedTypes: AcceptedTypes, version: UInt16)
        throws(ProtocolError) -> Frame
    {
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            buffer.withUnsafeBytes { T(bigEndian: $0.loadUnaligned(fromByteOffset: start + offset, as: T.self)) }
        }
        let rawType = load(4, UInt16.self)
        let requestID = load(8, UInt32.self)
        guard let type = MessageType(rawValue: rawType) else {
            throw ProtocolError(
                code: .unknownMessageType, requestID: requestID, messageType: rawType, offset: 4,
                message: "unknown message type 0x" + String(rawType, radix: 16) + " (frame of \(total) bytes skipped)")
        }
        if type.sinceVersion > version {
            throw ProtocolError(
                code: .unknownMessageType, requestID: requestID, messageType: rawType, offset: 4,
                message: "\(type.name) (0x" + String(rawType, radix: 16) + ") needs protocol version "
                    + "\(type.sinceVersion); this connection speaks \(version) (frame of \(total) bytes skipped)")
        }
        if acceptedTypes == .requests && !type.isRequest {
            throw ProtocolError(
                code: .unknownMessageType, requestID: requestID, messageType: rawType, offset: 4,
                message: "\(type.name) (0x" + String(rawType, radix: 16)
                    + ") is a server-to-client type, not a request (frame of \(total) bytes skipped)")
        }
        do {
            var reader = ByteReader(
                storage: buffer, range: (start + ProtocolLimits.headerBytes)..<(start + total), base: start)
            reader.version = version
            let message = try Message.decodePayload(type, from: &reader)
            try reader.expectEnd()
            return Frame(requestID: requestID, message: message)
        } catch {
            var failure = error
            failure.requestID = requestID
            failure.messageType = rawType
            failure.isFatal = false
            failure.message = "\(type.name): " + failure.message
            throw failure
        }
    }

    private mutating func fail(_ error: ProtocolError) throws(ProtocolError) -> Frame? {
        fatalFailure = error
        throw error
    }
}
