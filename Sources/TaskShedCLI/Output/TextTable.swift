/// A plain-text table with aligned columns, for human output.
///
/// Columns are separated by two spaces; trailing spaces are trimmed; numbers can be right-aligned. Widths
/// count `Character`s, which is right for the names and times the CLI prints.
public struct TextTable: Sendable {
    /// How a column's cells line up.
    public enum Alignment: Sendable {
        /// Text: padded on the right.
        case left
        /// Numbers: padded on the left.
        case right
    }

    /// A column: its header and alignment.
    public struct Column: Sendable {
        /// The header (shown as given, conventionally upper case).
        public var header: String
        /// The alignment of the header and cells.
        public var alignment: Alignment

        /// Creates a column.
        public init(_ header: String, alignment: Alignment = .left) {
            self.header = header
            self.alignment = alignment
        }
    }

    /// The columns.
    public var columns: [Column]
    /// The rows; each has one cell per column (missing cells print empty).
    public var rows: [[String]] = []

    /// Creates an empty table.
    public init(columns: [Column]) {
        self.columns = columns
    }

    /// Appends a row.
    public mutating func append(_ row: [String]) {
        rows.append(row)
    }

    /// The table as lines joined by newlines, header first, with a trailing newline.
    public func render() -> String {
        var widths = columns.map { $0.header.count }
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (index, column) in columns.enumerated() {
                let cell = index < cells.count ? cells[index] : ""
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                parts.append(column.alignment == .left ? cell + padding : padding + cell)
            }
            var text = parts.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        var output = line(columns.map(\.header)) + "\n"
        for row in rows {
            output += line(row) + "\n"
        }
        return output
    }
}
