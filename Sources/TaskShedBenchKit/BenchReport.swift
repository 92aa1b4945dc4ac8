#if canImport(Glibc)
import Glibc
#endif

/// A JSON value with ordered object keys, enough for the machine-readable report.
public indirect enum BenchJSON: Sendable, Hashable {
    /// A number (non-finite values are written as `null`).
    case number(Double)
    /// An integer.
    case integer(Int64)
    /// A string.
    case string(String)
    /// A boolean.
    case bool(Bool)
    /// `null`.
    case null
    /// An array.
    case array([BenchJSON])
    /// An object whose keys keep their order.
    case object([(String, BenchJSON)])

    /// Compact JSON text.
    public var text: String {
        switch self {
        case .number(let value):
            return value.isFinite ? formatDecimal(value, digits: 3) : "null"
        case .integer(let value): return "\(value)"
        case .string(let value): return Self.quote(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array(let values): return "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let pairs):
            return "{" + pairs.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    public static func == (lhs: BenchJSON, rhs: BenchJSON) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

/// One scenario's table: a title, column names and rows of cells, plus the same figures as JSON.
public struct BenchTable: Sendable, Hashable {
    /// Scenario name, e.g. `lag`.
    public var title: String
    /// Column headers.
    public var columns: [String]
    /// Rows of cells, each as wide as `columns`.
    public var rows: [[String]]
    /// Free-text lines printed under the table (method notes, targets).
    public var notes: [String]
    /// The figures for `--json`.
    public var json: BenchJSON

    /// Creates a table.
    /// - Parameters:
    ///   - title: Scenario name.
    ///   - columns: Column headers.
    ///   - rows: Rows of cells.
    ///   - notes: Lines under the table.
    ///   - json: The machine-readable figures.
    public init(title: String, columns: [String], rows: [[String]], notes: [String] = [], json: BenchJSON) {
        self.title = title
        self.columns = columns
        self.rows = rows
        self.notes = notes
        self.json = json
    }

    /// The table as aligned text (first column left-aligned, the others right-aligned).
    public var text: String {
        var widths = columns.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = Swift.max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: Swift.max(0, (i < widths.count ? widths[i] : 0) - cell.count))
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = "== \(title)\n" + line(columns) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        for note in notes { out += "  " + note + "\n" }
        return out
    }
}

/// Formats a number with a fixed number of decimals (`%.Nf`), without Foundation.
/// - Parameters:
///   - value: The number.
///   - digits: Decimals, 0 … 9.
/// - Returns: The text.
public func formatDecimal(_ value: Double, digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let digits = Swift.min(Swift.max(digits, 0), 9)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Formats a rate or count with thousands separators and no decimals (e.g. `1,234,567`).
/// - Parameter value: The number.
/// - Returns: The text.
public func formatGrouped(_ value: Double) -> String {
    guard value.isFinite else { return "-" }
    let digits = formatDecimal(value.rounded(), digits: 0)
    let negative = digits.hasPrefix("-")
    let body = Array(negative ? digits.dropFirst() : Substring(digits))
    var out = ""
    for (i, c) in body.enumerated() {
        if i > 0 && (body.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (negative ? "-" : "") + out
}
