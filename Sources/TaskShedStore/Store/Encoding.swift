#if canImport(Glibc)
import Glibc
#endif

/// Appends fixed-width integers and byte strings to a reusable buffer (the store's own encoding; it is
/// independent of the wire format, see LAYOUT.md).
struct ByteSink {
    var bytes: [UInt8]

    init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    @inline(__always) mutating func u8(_ v: UInt8) { bytes.append(v) }

    @inline(__always) mutating func u16LE(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
    }

    @inline(__always) mutating func u32LE(_ v: UInt32) { word(v.littleEndian) }

    @inline(__always) mutating func u64LE(_ v: UInt64) { word(v.littleEndian) }

    @inline(__always) mutating func u32BE(_ v: UInt32) { word(v.bigEndian) }

    @inline(__always) mutating func u64BE(_ v: UInt64) { word(v.bigEndian) }

    /// Appends the bytes of `v` as they are in memory. Typed `UInt8` elements take the array's memcpy fast path;
    /// appending the raw bytes went through the generic sequence path (~100 instructions per word).
    @inline(__always) private mutating func word<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v) { raw in
            bytes.append(contentsOf: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
        }
    }

    @inline(__always) mutating func i64LE(_ v: Int64) { u64LE(UInt64(bitPattern: v)) }

    /// A time as 8 big-endian bytes with the sign bit flipped, so that byte order is numeric order.
    @inline(__always) mutating func timeKey(_ v: Int64) {
        let ordered = UInt64(bitPattern: v) ^ (1 << 63)
        word(ordered.bigEndian)
    }

    @inline(__always) mutating func raw(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// Appends `count` bytes that `body` writes through a `RawWriter`: one growth and one copy of zeros instead of
    /// an append per field (an append is a capacity and uniqueness check and a `memcpy` call: a task record's
    /// twenty fields cost ~1,000 instructions that way). `body` must write exactly `count` bytes.
    @inline(__always) mutating func append(count: Int, _ body: (inout RawWriter) -> Void) {
        let start = bytes.count
        bytes.reserveCapacity(start + count)
        var left = count
        while left > 0 {
            let n = Swift.min(left, Self.zeros.count)
            Self.zeros.withUnsafeBufferPointer { z in
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: z[0..<n]))
            }
            left -= n
        }
        bytes.withUnsafeMutableBytes { raw in
            var writer = RawWriter(raw.baseAddress! + start)
            body(&writer)
            // A miscount would have written past the room made: stop rather than go on with a corrupt heap.
            precondition(writer.written == count, "RawWriter wrote \(writer.written) of \(count) bytes")
        }
    }

    private static let zeros = [UInt8](repeating: 0, count: 512)

    @inline(__always) func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = bytes.withUnsafeBytes { buffer in
            do throws(E) { return .success(try body(buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// Writes fields through a raw pointer into room `ByteSink.append(count:_:)` made; the caller sized it, so no
/// write checks bounds (`ByteSink` checks the total afterwards).
struct RawWriter {
    private let base: UnsafeMutableRawPointer
    private(set) var written = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always) mutating func u8(_ v: UInt8) {
        base.storeBytes(of: v, toByteOffset: written, as: UInt8.self)
        written += 1
    }

    @inline(__always) mutating func u16LE(_ v: UInt16) {
        base.storeBytes(of: v.littleEndian, toByteOffset: written, as: UInt16.self)
        written += 2
    }

    @inline(__always) mutating func u32LE(_ v: UInt32) {
        base.storeBytes(of: v.littleEndian, toByteOffset: written, as: UInt32.self)
        written += 4
    }

    @inline(__always) mutating func u64LE(_ v: UInt64) {
        base.storeBytes(of: v.littleEndian, toByteOffset: written, as: UInt64.self)
        written += 8
    }

    @inline(__always) mutating func i64LE(_ v: Int64) { u64LE(UInt64(bitPattern: v)) }

    @inline(__always) mutating func raw(_ b: UnsafeRawBufferPointer) {
        if let p = b.baseAddress, b.count > 0 { (base + written).copyMemory(from: p, byteCount: b.count) }
        written += b.count
    }

    @inline(__always) mutating func raw(_ s: String) {
        var s = s
        s.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) mutating func raw(_ b: [UInt8]) {
        b.withUnsafeBytes { raw($0) }
    }
}

/// Reads what `ByteSink` wrote; every read checks bounds and returns `nil` past the end.
struct ByteSource {
    let buffer: UnsafeRawBufferPointer
    var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var isAtEnd: Bool { offset == buffer.count }
    var remaining: Int { buffer.count - offset }

    @inline(__always) mutating func u8() -> UInt8? {
        guard offset < buffer.count else { return nil }
        defer { offset += 1 }
        return buffer[offset]
    }

    @inline(__always) mutating func u16LE() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(buffer[offset]) | UInt16(buffer[offset + 1]) << 8
    }

    @inline(__always) mutating func u32LE() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) mutating func u32BE() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) mutating func u64LE() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always) mutating func i64LE() -> Int64? { u64LE().map { Int64(bitPattern: $0) } }

    /// Reads a time written by `ByteSink.timeKey`.
    @inline(__always) mutating func timeKey() -> Int64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        let be = buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        return Int64(bitPattern: UInt64(bigEndian: be) ^ (1 << 63))
    }

    @inline(__always) mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
    }

    @inline(__always) mutating func string(_ count: Int) -> String? {
        guard let b = bytes(count) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    /// The next `count` bytes as a string: `known` itself when it has exactly those bytes (no validation or
    /// new string), else decoded.
    @inline(__always) mutating func string(_ count: Int, matching known: String) -> String? {
        guard let b = bytes(count) else { return nil }
        var known = known
        if known.withUTF8({ bytesEqual(UnsafeRawBufferPointer($0), b) }) { return known }
        return String(decoding: b, as: UTF8.self)
    }

    /// The rest of the buffer as a string.
    @inline(__always) mutating func restString() -> String {
        string(remaining) ?? ""
    }
}

/// Decodes a time key (8 bytes, see `ByteSink.timeKey`) at the start of `key`.
@inline(__always)
func decodeTimeKey(_ key: UnsafeRawBufferPointer) -> Int64? {
    var source = ByteSource(key)
    return source.timeKey()
}

/// Whether two byte ranges are equal (one `memcmp`).
@inline(__always)
func bytesEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
}
