/// A value with a fixed layout on the wire (the field tables of `proto-spec/PROTOCOL.md`).
///
/// Fields are written in the order of the type's stored properties. The store reuses these encodings for its
/// values, so they are public.
public protocol WireCodable {
    /// Appends the value's wire layout.
    /// - Parameter writer: The writer to append to.
    func encode(to writer: inout ByteWriter)

    /// Reads one value.
    /// - Parameter reader: The reader positioned at the value.
    /// - Returns: The value.
    /// - Throws: `.malformedMessage` naming the field at fault (relative to this value).
    static func decode(from reader: inout ByteReader) throws(ProtocolError) -> Self

    /// The fewest bytes an encoded value can occupy (bounds untrusted list counts).
    static var minimumEncodedBytes: Int { get }
}

extension ByteWriter {
    /// Writes a `WireCodable` value.
    /// - Parameter value: The value.
    @inlinable
    public mutating func write(_ value: some WireCodable) {
        value.encode(to: &self)
    }
}

extension ByteReader {
    /// Reads a `WireCodable` value, prefixing `field` (if given) to the path of any failure.
    /// - Parameters:
    ///   - type: The type to read.
    ///   - field: The field name of the value.
    /// - Returns: The value.
    /// - Throws: `.malformedMessage` naming the field at fault.
    @inlinable
    public mutating func read<T: WireCodable>(_ type: T.Type, field: String? = nil) throws(ProtocolError) -> T {
        guard let field else { return try T.decode(from: &self) }
        do {
            return try T.decode(from: &self)
        } catch {
            throw error.prefixingField(field)
        }
    }

    /// Reads a `list<T>` of `WireCodable` values.
    /// - Parameters:
    ///   - type: The element type.
    ///   - field: The list's field name.
    /// - Returns: The elements.
    /// - Throws: `.malformedMessage` naming the element and field at fault (`field[i].x`).
    @inlinable
    public mutating func readList<T: WireCodable>(of type: T.Type, field: String) throws(ProtocolError) -> [T] {
        try readList(field: field, minElementBytes: T.minimumEncodedBytes) { (r: inout ByteReader) throws(ProtocolError) in
            try T.decode(from: &r)
        }
    }

    /// Reads a `list<string>`.
    /// - Parameter field: The list's field name.
    /// - Returns: The strings.
    /// - Throws: `.malformedMessage` naming the element at fault (`field[i]`).
    @inlinable
    public mutating func readStringList(field: String) throws(ProtocolError) -> [String] {
        try readList(field: field, minElementBytes: 2) { (r: inout ByteReader) throws(ProtocolError) in
            try r.readString()
        }
    }
}

extension ByteWriter {
    /// Writes a `list<T>` of `WireCodable` values.
    /// - Parameter elements: The elements.
    @inlinable
    public mutating func writeList(_ elements: [some WireCodable]) {
        writeList(elements) { w, e in e.encode(to: &w) }
    }

    /// Writes a `list<string>`.
    /// - Parameter elements: The strings.
    @inlinable
    public mutating func writeStringList(_ elements: [String]) {
        writeList(elements) { w, e in w.writeString(e) }
    }

    /// Writes an `opt<string>`.
    /// - Parameter value: The optional string.
    @inlinable
    public mutating func writeOptionalString(_ value: String?) {
        writeOptional(value) { w, v in w.writeString(v) }
    }

    /// Writes an `opt<i64>`.
    /// - Parameter value: The optional integer.
    @inlinable
    public mutating func writeOptionalI64(_ value: Int64?) {
        writeOptional(value) { w, v in w.writeI64(v) }
    }
}

extension ByteReader {
    /// Reads an `opt<string>`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` for a bad tag or string.
    @inlinable
    public mutating func readOptionalString(field: String? = nil) throws(ProtocolError) -> String? {
        try readOptional(field: field) { (r: inout ByteReader) throws(ProtocolError) in try r.readString() }
    }

    /// Reads an `opt<i64>`.
    /// - Parameter field: The field name to report on failure.
    /// - Throws: `.malformedMessage` for a bad tag or a truncated integer.
    @inlinable
    public mutating func readOptionalI64(field: String? = nil) throws(ProtocolError) -> Int64? {
        try readOptional(field: field) { (r: inout ByteReader) throws(ProtocolError) in try r.readI64() }
    }
}
