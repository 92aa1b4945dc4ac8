import Logging

/// Formats one log event as one JSON object on one line, for `--log-format json` (log shippers).
///
/// ```
/// {"time":"2026-12-07T13:20:01.123456Z","level":"notice","label":"taskshedd","message":"taskshedd 0.1.0 ready","taskshed.pid":"4242","taskshed.socket":"/run/taskshed/taskshedd.sock"}
/// ```
///
/// Fields in this order: `time` (RFC 3339, UTC, microseconds), `level` (swift-log's level name), `label` (the
/// logger's label), `message`, then every metadata key as its own field, sorted. Metadata values are JSON
/// strings; a dictionary becomes a nested object and an array a JSON array, to any depth. A metadata key that
/// would collide with one of the four fixed fields is written as `metadata.KEY` (with more `metadata.` in front
/// while that is taken too), so no metadata is ever dropped or overwritten.
///
/// Escaping follows RFC 8259: `"` and `\` are escaped, control characters become `\n`, `\r`, `\t`, `\b`, `\f`
/// or `\u00XX`, everything else (non-ASCII included) is written as its UTF-8 bytes. A Swift `String` holds only
/// Unicode scalars, so a lone surrogate cannot reach the output. Nothing in a line is a raw newline, so one event
/// is always one line.
enum JSONLogLine {
    /// The fixed fields; a metadata key equal to one of them is renamed.
    static let fixedFields: Set<String> = ["time", "level", "label", "message"]

    /// Formats one event, without the trailing newline.
    /// - Parameters:
    ///   - time: The event's time, already formatted (RFC 3339).
    ///   - level: The event's level.
    ///   - label: The logger's label.
    ///   - message: The message.
    ///   - metadata: The merged metadata of the logger and the event.
    /// - Returns: The JSON object's text.
    static func format(time: String, level: Logger.Level, label: String, message: String,
                       metadata: Logger.Metadata) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        out.append(UInt8(ascii: "{"))
        appendMember("time", time, to: &out)
        out.append(UInt8(ascii: ","))
        appendMember("level", level.rawValue, to: &out)
        out.append(UInt8(ascii: ","))
        appendMember("label", label, to: &out)
        out.append(UInt8(ascii: ","))
        appendMember("message", message, to: &out)
        var used = fixedFields.union(metadata.keys)
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            var name = key
            if fixedFields.contains(key) {
                name = "metadata." + key
                while used.contains(name) { name = "metadata." + name }
                used.insert(name)
            }
            out.append(UInt8(ascii: ","))
            appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            appendValue(value, to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendMember(_ name: String, _ value: String, to out: inout [UInt8]) {
        appendString(name, to: &out)
        out.append(UInt8(ascii: ":"))
        appendString(value, to: &out)
    }

    /// Appends a metadata value: a string, or a nested object or array.
    static func appendValue(_ value: Logger.MetadataValue, to out: inout [UInt8]) {
        switch value {
        case .string(let text):
            appendString(text, to: &out)
        case .stringConvertible(let convertible):
            appendString(convertible.description, to: &out)
        case .dictionary(let dictionary):
            out.append(UInt8(ascii: "{"))
            for (index, member) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendValue(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendValue(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    /// Appends a JSON string literal (quotes included).
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Working on UTF-8 bytes is exact: every byte of a multi-byte sequence is >= 0x80, so only ASCII bytes
        // are ever escaped and the rest is copied through.
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
