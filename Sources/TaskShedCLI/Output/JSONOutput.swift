/// A JSON value whose objects keep their key order, so the CLI's `--json` output is stable byte for byte.
public indirect enum JSONOutput: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A signed integer.
    case int(Int64)
    /// An unsigned integer.
    case uint(UInt64)
    /// A string (escaped on output).
    case string(String)
    /// An array.
    case array([JSONOutput])
    /// An object with its keys in this order.
    case object([(String, JSONOutput)])
    /// Text that is already valid JSON (a task's kwargs object), written as it is.
    case raw(String)

    /// `.string`, or `.null` for `nil`.
    public static func optional(_ value: String?) -> JSONOutput {
        value.map { .string($0) } ?? .null
    }

    /// `.int`, or `.null` for `nil`.
    public static func optional(_ value: Int64?) -> JSONOutput {
        value.map { .int($0) } ?? .null
    }

    /// The object with one more member at its end (a command adding to a shared document, as `show` adds its
    /// `last_runs` to the task object); any other value is returned unchanged, having no members to add to.
    /// - Parameters:
    ///   - key: The new member's key.
    ///   - value: Its value.
    /// - Returns: The extended object.
    public func appending(_ key: String, _ value: JSONOutput) -> JSONOutput {
        guard case .object(let members) = self else { return self }
        return .object(members + [(key, value)])
    }

    /// Compares structurally (object keys in order).
    public static func == (lhs: JSONOutput, rhs: JSONOutput) -> Bool {
        lhs.render(indent: nil) == rhs.render(indent: nil)
    }

    /// Hashes the compact rendering.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(render(indent: nil))
    }

    /// Serializes the value.
    /// - Parameter indent: Spaces per level for pretty output, or `nil` for one compact line.
    /// - Returns: The JSON text (no trailing newline).
    public func render(indent: Int? = 2) -> String {
        var output = ""
        write(to: &output, indent: indent, level: 0)
        return output
    }

    private func write(to output: inout String, indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            output += "\n" + String(repeating: " ", count: indent * level)
        }
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .int(let value): output += String(value)
        case .uint(let value): output += String(value)
        case .string(let value): JSONOutput.escape(value, into: &output)
        case .raw(let text): output += text
        case .array(let values):
            if values.isEmpty {
                output += "[]"
                return
            }
            output += "["
            for (index, value) in values.enumerated() {
                if index > 0 { output += "," }
                newline(level + 1)
                value.write(to: &output, indent: indent, level: level + 1)
            }
            newline(level)
            output += "]"
        case .object(let members):
            if members.isEmpty {
                output += "{}"
                return
            }
            output += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { output += "," }
                newline(level + 1)
                JSONOutput.escape(member.0, into: &output)
                output += indent == nil ? ":" : ": "
                member.1.write(to: &output, indent: indent, level: level + 1)
            }
            newline(level)
            output += "}"
        }
    }

    /// Writes a JSON string literal: quotes, backslashes and control characters escaped, the rest as UTF-8.
    static func escape(_ text: String, into output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }
}
