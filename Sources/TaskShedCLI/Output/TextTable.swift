/// A plain-text table with aligned columns, for human output.
///
/// Columns are separated by two spaces; trailing spaces are trimmed; numbers can be right-aligned. Widths
/// count `Character`s, which is right for the names and times the CLI prints. Given a width (the terminal's),
/// the columns marked shrinkable give up room, last first, and their cells are cut with `…`, so that a row
/// stays on one line of a narrow terminal.
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
        /// How narrow the column may be cut to fit `render(width:)` (never below its header), or `nil` when its
        /// cells are always shown whole (ids, times: a cut one would mislead).
        public var shrinkableTo: Int?
        /// How a cell too long for the column is cut to a width: by default its end, replaced by `…`.
        public var cut: @Sendable (String, Int) -> String

        /// Creates a column.
        /// - Parameters:
        ///   - header: The header.
        ///   - alignment: How cells line up.
        ///   - shrinkableTo: The narrowest the column may be cut to, or `nil` to keep it whole.
        ///   - cut: Cuts a cell to a width (at least 1); the default keeps its start and ends in `…`. A column
        ///     whose end matters (a pid after a name) passes its own.
        public init(
            _ header: String, alignment: Alignment = .left, shrinkableTo: Int? = nil,
            cut: @escaping @Sendable (String, Int) -> String = TextTable.cutEnd
        ) {
            self.header = header
            self.alignment = alignment
            self.shrinkableTo = shrinkableTo
            self.cut = cut
        }
    }

    /// `text` cut to `width` characters (at least 1), its end replaced by `…` when cut.
    /// - Parameters:
    ///   - text: The cell.
    ///   - width: The most characters.
    /// - Returns: The cell as it fits.
    public static func cutEnd(_ text: String, _ width: Int) -> String {
        guard text.count > width else { return text }
        return String(text.prefix(max(0, width - 1))) + "…"
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
    /// - Parameter width: The most characters a line should take (the terminal's width), or `nil` for no limit.
    ///   Only shrinkable columns are cut, so a line can still be wider when the others do not fit.
    public func render(width: Int? = nil) -> String {
        var widths = columns.map { $0.header.count }
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        if let width {
            var excess = widths.reduce(0, +) + 2 * max(0, columns.count - 1) - width
            for index in columns.indices.reversed() where excess > 0 {
                guard let narrowest = columns[index].shrinkableTo else { continue }
                let floor = max(narrowest, columns[index].header.count, 1)
                let cut = min(excess, max(0, widths[index] - floor))
                widths[index] -= cut
                excess -= cut
            }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (index, column) in columns.enumerated() {
                var cell = index < cells.count ? cells[index] : ""
                if cell.count > widths[index] { cell = String(column.cut(cell, widths[index]).prefix(widths[index])) }
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
