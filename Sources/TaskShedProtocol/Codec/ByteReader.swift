/// Reads protocol primitives (see `ByteWriter` for the notation) from a byte array without copying it: a read
/// index moves through a range of a shared `[UInt8]`.
///
/// Every failure is a `ProtocolError` with code `.malformedMessage`, the byte offset where the bad value starts
/// and, when the caller named one, the field. Counts and lengths are checked against the bytes that remain
/// before anything is allocated, so an untrusted count can never make the reader reserve more memory than the
/// input holds.
///
/// - Important: A value type; use one reader per thread.
public struct ByteReader: Sendable {
    @usableFromInline let storage: [UInt8]
    @usableFromInline let end: Int
    @usableFromInline let base: Int
    /// Index in the underlying storage of the next byte to read.
    @usableFromInline var index: Int
    /// The protocol version whose layouts are read (a frame decoder sets its connection's version; the
    /// latest by default). Only layouts that differ between versions look at it (a calendar schedule, version 3).
    public var version: UInt16 = ProtocolLimits.versions.upperBound

    /// Creates a reader over a copy of `bytes` (no copy when `bytes` is already a `[UInt8]`).
    /// - Parameter bytes: The input.
    public init(_ bytes: some Collection<UInt8>) {
        storage = Array(bytes)
        index = 0
        end = storage.count
        base = 0
    }

    /// Creates a reader over a copy of the bytes in `buffer`.
    /// - Parameter buffer: The input.
    public init(_ buffer: UnsafeRawBufferPointer) {
        storage = Array(buffer)
        index = 0
        end = storage.count
        base = 0
    }

    /// Creates a reader over `range` of `storage` without copying; offsets are reported relative to `base`.
    @usableFromInline
    init(storage: [UInt8], range: Range<Int>, base: Int) {
        self.storage = storage
        self.index = range.lowerBound
        self.end = range.upperBound
        self.base = base
    }

    /// The number of bytes not yet read.
    @inlinable public var remaining: Int { end - index }

    /// Whether every byte has been read.
    @inlinable public var isAtEnd: Bool { index == end }

    /// The offset of the next byte, counted from the start of the input (for a frame: from its length prefix).
    @inlinable public var offset: Int { index - base }

    @usableFromInline
    func malformed(_ message: String, field: String?, at index: Int) -> ProtocolError {
        ProtocolError(code: .malformedMessage, field: field, offset: index - base, message: message)
    }

    /// Kept out of line so that the hot `take` stays small enough to inline everywhere.
    @usableFromInline @inline(never)
    func truncated(_ count: Int, _ what: StaticString, field: String?) -> ProtocolError {
        malformed("truncated \(what): needs \(count) bytes, \(end - index) left in the payload", field: field, at: index)
    }

    /// Reserves `count` bytes and returns the index of the first.
    @inlinable @inline(__always)
    mutating func take(_ count: Int, _ what: StaticString, field: String?) throws(ProtocolError) -> Int {
        guard end - index >= count else { throw truncated(count, what, field: field) }
        let start = index
        index += count
        return start
    }

    @inlinable
    func load<T: FixedWidthInteger>(_: T.Type, at position: Int) -> T {
        storage.withUnsafeBytes { T(bigEndian: $0.loadUnaligned(fromByteOffset: position, as: T.self)) }
    }

    /// Reads a `u8`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when no byte is left.
    @inlinable
    public mutating func readU8(field: String? = nil) throws(ProtocolError) -> UInt8 {
        let at = try take(1, "u8", field: field)
        return storage[at]
    }

    /// Reads a big-endian `u16`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when fewer than 2 bytes are left.
    @inlinable
    public mutating func readU16(field: String? = nil) throws(ProtocolError) -> UInt16 {
        load(UInt16.self, at: try take(2, "u16", field: field))
    }

    /// Reads a big-endian `u32`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when fewer than 4 bytes are left.
    @inlinable
    public mutating func readU32(field: String? = nil) throws(ProtocolError) -> UInt32 {
        load(UInt32.self, at: try take(4, "u32", field: field))
    }

    /// Reads a big-endian `u64`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when fewer than 8 bytes are left.
    @inlinable
    public mutating func readU64(field: String? = nil) throws(ProtocolError) -> UInt64 {
        load(UInt64.self, at: try take(8, "u64", field: field))
    }

    /// Reads a big-endian two's-complement `i64`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when fewer than 8 bytes are left.
    @inlinable
    public mutating func readI64(field: String? = nil) throws(ProtocolError) -> Int64 {
        load(Int64.self, at: try take(8, "i64", field: field))
    }

    /// Reads a `bool` (`u8` 0 or 1).
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when no byte is left or the byte is neither 0 nor 1.
    @inlinable
    public mutating func readBool(field: String? = nil) throws(ProtocolError) -> Bool {
        let at = try take(1, "bool", field: field)
        switch storage[at] {
        case 0: return false
        case 1: return true
        case let other: throw malformed("bool must be 0 or 1, got \(other)", field: field, at: at)
        }
    }

    /// Reads a `u8` enumeration value.
    /// - Parameters:
    ///   - type: The enumeration.
    ///   - field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when no byte is left or the value is not a case of `type`.
    @inlinable
    public mutating func readEnum<E: RawRepresentable & CaseIterable>(
        _ type: E.Type, field: String? = nil
    ) throws(ProtocolError) -> E where E.RawValue == UInt8 {
        let at = try take(1, "u8 enumeration", field: field)
        guard let value = E(rawValue: storage[at]) else {
            let allowed = E.allCases.map { "\($0.rawValue) (\($0))" }.joined(separator: ", ")
            throw malformed("unknown \(E.self) value \(storage[at]); allowed: \(allowed)", field: field, at: at)
        }
        return value
    }

    /// Reads a `string`: `u16` byte length, then that many bytes of valid UTF-8.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when the bytes run out or are not valid UTF-8.
    @inlinable
    public mutating func readString(field: String? = nil) throws(ProtocolError) -> String {
        let start = index
        let count = Int(try readU16(field: field))
        let at = try take(count, "string bytes", field: field)
        if count == 0 { return "" }
        let decoded = storage.withUnsafeBufferPointer { buffer -> String? in
            let utf8 = UnsafeBufferPointer(rebasing: buffer[at..<(at + count)])
            // Names are nearly always ASCII, which is valid UTF-8 as it stands: skip the generic validator,
            // which is not specialized in the standard library and dominated decode profiles.
            if Self.isASCII(utf8) { return String(decoding: utf8, as: UTF8.self) }
            return String(validating: utf8, as: UTF8.self)
        }
        guard let decoded else {
            throw malformed("string of \(count) bytes is not valid UTF-8", field: field, at: start)
        }
        return decoded
    }

    @usableFromInline
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = bytes.count
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while index + 8 <= count {
                if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                    return false
                }
                index += 8
            }
        }
        while index < count {
            if bytes[index] & 0x80 != 0 { return false }
            index += 1
        }
        return true
    }

    /// Reads `bytes`: `u32` length, then that many raw bytes.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when the length exceeds the bytes left.
    @inlinable
    public mutating func readBytes(field: String? = nil) throws(ProtocolError) -> [UInt8] {
        let count = Int(try readU32(field: field))
        let at = try take(count, "bytes", field: field)
        return Array(storage[at..<(at + count)])
    }

    /// Reads an `opt<T>`: `u8` 0 (absent) or 1 followed by the value.
    /// - Parameters:
    ///   - field: The field name to report on failure (prefixed to the body's field path).
    ///   - body: Reads a present value.
    /// - Throws: `.malformedMessage` when the tag is neither 0 nor 1, or what `body` throws.
    @inlinable
    public mutating func readOptional<T>(
        field: String? = nil, _ body: (inout ByteReader) throws(ProtocolError) -> T
    ) throws(ProtocolError) -> T? {
        let at = try take(1, "optional presence tag", field: field)
        switch storage[at] {
        case 0:
            return nil
        case 1:
            do {
                return try body(&self)
            } catch {
                throw field.map { error.prefixingField($0) } ?? error
            }
        case let other:
            throw malformed("optional presence tag must be 0 or 1, got \(other)", field: field, at: at)
        }
    }

    /// Reads a `list<T>`: `u32` count, then the elements.
    ///
    /// The count is checked against the bytes left (`count × minElementBytes` must fit) before any element is
    /// read or any storage is reserved.
    /// - Parameters:
    ///   - field: The list's field name; element failures are reported as `field[i]…`.
    ///   - minElementBytes: The fewest bytes one element can occupy (at least 1).
    ///   - body: Reads one element.
    /// - Throws: `.malformedMessage` when the count cannot fit in the bytes left, or what `body` throws.
    @inlinable
    public mutating func readList<T>(
        field: String? = nil, minElementBytes: Int,
        _ body: (inout ByteReader) throws(ProtocolError) -> T
    ) throws(ProtocolError) -> [T] {
        let start = index
        let count = Int(try readU32(field: field))
        let minBytes = Swift.max(minElementBytes, 1)
        guard count <= remaining / minBytes else {
            throw malformed(
                "list count \(count) cannot fit in the \(remaining) bytes left (each element takes at least "
                    + "\(minBytes))", field: field, at: start)
        }
        var result: [T] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            do {
                result.append(try body(&self))
            } catch {
                throw error.prefixingField((field ?? "") + "[\(i)]")
            }
        }
        return result
    }

    /// Runs `body`, prefixing `field` to the field path of anything it throws (for nested structures).
    /// - Parameters:
    ///   - field: The enclosing field's name.
    ///   - body: Reads the nested structure.
    /// - Throws: What `body` throws, with the longer field path.
    @inlinable
    public mutating func nested<T>(
        _ field: String, _ body: (inout ByteReader) throws(ProtocolError) -> T
    ) throws(ProtocolError) -> T {
        do {
            return try body(&self)
        } catch {
            throw error.prefixingField(field)
        }
    }

    /// Reads exactly `count` raw bytes.
    /// - Parameters:
    ///   - count: How many.
    ///   - field: The field name to report on failure.
    /// - Throws: `.malformedMessage` when fewer bytes are left.
    @inlinable
    public mutating func readRaw(count: Int, field: String? = nil) throws(ProtocolError) -> [UInt8] {
        let at = try take(count, "raw bytes", field: field)
        return Array(storage[at..<(at + count)])
    }

    /// Fails unless every byte has been read.
    /// - Throws: `.malformedMessage` naming the number of trailing bytes.
    @inlinable
    public func expectEnd() throws(ProtocolError) {
        guard index == end else {
            throw malformed(
                "\(end - index) trailing bytes after the end of the payload", field: nil, at: index)
        }
    }
}
