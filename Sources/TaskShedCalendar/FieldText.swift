/// Text helpers shared by the two syntaxes' parsers and formatters.
enum FieldText {
    /// Whether `values` (increasing, at least two) step by one constant `k > 1`; returns `k`.
    static func progressionStep(_ values: [Int]) -> Int? {
        guard values.count >= 2 else { return nil }
        let step = values[1] - values[0]
        guard step > 1 else { return nil }
        for i in 1..<values.count where values[i] - values[i - 1] != step { return nil }
        return step
    }

    /// Maximal runs of consecutive values, each as (first, last).
    static func runs(_ values: [Int]) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        for v in values {
            if let last = out.last, last.1 + 1 == v { out[out.count - 1].1 = v } else { out.append((v, v)) }
        }
        return out
    }

    /// Runs of three or more as `a<sep>b`, shorter runs as single values, joined by commas.
    static func runList(_ values: [Int], separator: String, render: (Int) -> String) -> String {
        var items: [String] = []
        for (a, b) in runs(values) {
            if b - a >= 2 {
                items.append(render(a) + separator + render(b))
            } else {
                for v in a...b { items.append(render(v)) }
            }
        }
        return items.joined(separator: ",")
    }

    /// Splits on every `..` (systemd's range separator).
    static func splitRange(_ text: Substring) -> [Substring] {
        var pieces: [Substring] = []
        var start = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            let next = text.index(after: i)
            if text[i] == ".", next < text.endIndex, text[next] == "." {
                pieces.append(text[start..<i])
                i = text.index(after: next)
                start = i
            } else {
                i = next
            }
        }
        pieces.append(text[start...])
        return pieces
    }

    /// A decimal number of at most 9 digits, or `nil`.
    static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(text)
    }

    /// `v` with at least `width` digits.
    static func padded(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// Splits on spaces and tabs, dropping empty pieces.
    static func words(_ text: String) -> [Substring] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
    }
}
