/// Appends protocol primitives to a byte array, big-endian, in the notation of `proto-spec/PROTOCOL.md`
/// ("Primitives").
///
/// ```
/// u8 u16 u32 u64   unsigned, big-endian          i64       two's complement, big-endian
/// bool             u8 0 or 1                      string    u16 byte length + UTF-8 bytes
/// bytes            u32 length + raw bytes         opt<T>    u8 0 (absent) | u8 1 then T
/// list<T>          u32 count + count × T
/// ```
/// The store reuses it to encode its values, so it is public.
///
/// - Important: A value type with no shared state; use one writer per thread.
public struct ByteWriter: Sendable {
    /// The bytes written so far (including any the writer was created with).
    public var bytes: [UInt8]
    /// The protocol version whose layouts are written (the latest by default; a server sets each connection's).
    /// Only layouts that differ between versions look at it: a task record on a version 1 or 2 connection shows
    /// a calendar schedule as `once` and leaves out version 3's fields (PROTOCOL.md, section 10).
    public var version: UInt16 = ProtocolLimits.versions.upperBound

    /// Creates an empty writer.
    /// - Parameter capacity: Bytes to reserve up front.
    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Creates a writer that appends to existing bytes.
    /// - Parameter bytes: The bytes to append to.
    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The number of bytes written so far.
    public var count: Int { bytes.count }

    /// Writes a `u8`.
    @inlinable
    public mutating func writeU8(_ value: UInt8) {
        bytes.append(value)
    }

    /// Writes a `u16`, big-endian.
    @inlinable
    public mutating func writeU16(_ value: UInt16) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a `u32`, big-endian.
    @inlinable
    public mutating func writeU32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a `u64`, big-endian.
    @inlinable
    public mutating func writeU64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes an `i64`, two's complement, big-endian (instants and durations in microseconds).
    @inlinable
    public mutating func writeI64(_ value: Int64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes a `bool` as `u8` 0 or 1.
    @inlinable
    public mutating func writeBool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    /// Writes a `string`: `u16` byte length, then the UTF-8 bytes.
    ///
    /// - Important: A string longer than 65,535 UTF-8 bytes cannot be represented; it is cut at the last whole
    ///   Unicode scalar that fits. Every string the protocol carries has a much smaller limit (255 for names,
    ///   4 KiB for error messages), so only a value the peer would reject anyway is ever cut.
    /// - Parameter value: The string.
    public mutating func writeString(_ value: String) {
        let utf8 = value.utf8
        let wrote = utf8.withContiguousStorageIfAvailable { raw -> Bool in
            let n = Self.representableLength(raw)
            writeU16(UInt16(n))
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: raw[0..<n]))
            return true
        }
        if wrote == nil {
            let array = Array(utf8)
            array.withUnsafeBufferPointer { raw in
                let n = Self.representableLength(raw)
                writeU16(UInt16(n))
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: raw[0..<n]))
            }
        }
    }

    /// The longest prefix of `utf8` that fits a `u16` length and ends on a scalar boundary.
    private static func representableLength(_ utf8: UnsafeBufferPointer<UInt8>) -> Int {
        var n = utf8.count
        if n <= Int(UInt16.max) { return n }
        n = Int(UInt16.max)
        // Step back over continuation bytes (10xxxxxx) so the cut falls before a scalar's first byte.
        while n > 0 && utf8[n] & 0xC0 == 0x80 { n -= 1 }
        return n
    }

    /// Writes `bytes`: `u32` length, then the raw bytes.
    /// - Parameter value: The bytes (at most 4 GiB − 1; frames are far smaller).
    @inlinable
    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        writeU32(UInt32(truncatingIfNeeded: value.count))
        bytes.append(contentsOf: value)
    }

    /// Writes an `opt<T>`: `u8` 0, or `u8` 1 followed by the value.
    /// - Parameters:
    ///   - value: The optional value.
    ///   - body: Writes a present value.
    @inlinable
    public mutating func writeOptional<T>(_ value: T?, _ body: (inout ByteWriter, T) -> Void) {
        if let value {
            bytes.append(1)
            body(&self, value)
        } else {
            bytes.append(0)
        }
    }

    /// Writes a `list<T>`: `u32` count, then each element.
    /// - Parameters:
    ///   - elements: The elements.
    ///   - body: Writes one element.
    @inlinable
    public mutating func writeList<C: Collection>(_ elements: C, _ body: (inout ByteWriter, C.Element) -> Void) {
        writeU32(UInt32(truncatingIfNeeded: elements.count))
        for element in elements { body(&self, element) }
    }

    /// Overwrites 4 bytes at `index` with a big-endian `u32` (used to patch a length prefix).
    /// - Parameters:
    ///   - value: The value.
    ///   - index: Index of the first of 4 bytes already written.
    @inlinable
    public mutating func patchU32(_ value: UInt32, at index: Int) {
        bytes[index] = UInt8(truncatingIfNeeded: value >> 24)
        bytes[index + 1] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[index + 2] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[index + 3] = UInt8(truncatingIfNeeded: value)
    }
}
