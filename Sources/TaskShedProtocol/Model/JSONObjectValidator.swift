/// Checks that bytes are exactly one JSON object (RFC 8259), with optional surrounding whitespace, in UTF-8:
/// what the protocol requires of a task's kwargs. Nothing is built; kwargs are stored and forwarded as bytes,
/// but a task whose kwargs are not an object would fail in every worker, so it is rejected when added.
public enum JSONObjectValidator {
    /// Deepest nesting of arrays and objects accepted (the recogniser recurses once per level, so hostile
    /// input must not choose the depth).
    public static let maxDepth = 64

    /// Checks one kwargs value.
    /// - Parameter bytes: The candidate JSON text.
    /// - Returns: `nil` when `bytes` are one JSON object in valid UTF-8, else a short reason that reads after
    ///   the field's name ("must be a JSON object", "is not valid JSON (at byte 7)").
    /// - Important: Pure and thread-safe.
    public static func problem(in bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return "must be a JSON object" }
            var parser = Parser(base: base, count: buffer.count)
            parser.skipSpace()
            guard parser.peek == UInt8(ascii: "{") else { return "must be a JSON object" }
            guard parser.value(depth: 0) else {
                return "is not valid JSON (at byte \(parser.index); nesting is limited to \(maxDepth) levels)"
            }
            parser.skipSpace()
            guard parser.index == buffer.count else { return "has trailing bytes after the JSON object" }
            // A byte >= 0x80 can only be inside a string of a text that parsed; most kwargs are ASCII and skip
            // the full check.
            if parser.sawNonASCII, String(validating: buffer, as: UTF8.self) == nil {
                return "is not valid UTF-8"
            }
            return nil
        }
    }

    /// A recursive-descent recogniser over the bytes.
    ///
    /// It reads through a raw pointer (every read is after an `index < count` check of its own): kwargs are
    /// checked once per added task, and the bounds-checked buffer made the check a tenth of a batched add.
    private struct Parser {
        let base: UnsafePointer<UInt8>
        let count: Int
        var index = 0
        /// Whether a string held a byte >= 0x80 (the caller then validates the UTF-8).
        var sawNonASCII = false

        var peek: UInt8? { index < count ? base[index] : nil }

        mutating func skipSpace() {
            while index < count {
                let c = base[index]
                guard c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D else { return }
                index += 1
            }
        }

        mutating func expect(_ c: UInt8) -> Bool {
            guard peek == c else { return false }
            index += 1
            return true
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let length = text.utf8CodeUnitCount
            guard self.count - index >= length else { return false }
            for i in 0..<length where base[index + i] != text.utf8Start[i] { return false }
            index += length
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth < JSONObjectValidator.maxDepth else { return false }
            skipSpace()
            guard let c = peek else { return false }
            switch c {
            case UInt8(ascii: "{"):
                index += 1
                skipSpace()
                if expect(UInt8(ascii: "}")) { return true }
                while true {
                    skipSpace()
                    guard string() else { return false }
                    skipSpace()
                    guard expect(UInt8(ascii: ":")), value(depth: depth + 1) else { return false }
                    skipSpace()
                    if expect(UInt8(ascii: "}")) { return true }
                    guard expect(UInt8(ascii: ",")) else { return false }
                }
            case UInt8(ascii: "["):
                index += 1
                skipSpace()
                if expect(UInt8(ascii: "]")) { return true }
                while true {
                    guard value(depth: depth + 1) else { return false }
                    skipSpace()
                    if expect(UInt8(ascii: "]")) { return true }
                    guard expect(UInt8(ascii: ",")) else { return false }
                }
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func string() -> Bool {
            guard expect(UInt8(ascii: "\"")) else { return false }
            while index < count {
                let c = base[index]
                index += 1
                if c == UInt8(ascii: "\"") { return true }
                if c >= 0x80 {
                    sawNonASCII = true
                } else if c < 0x20 {
                    return false
                } else if c == UInt8(ascii: "\\") {
                    guard let e = peek else { return false }
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        for _ in 0..<4 {
                            guard let h = peek, isHex(h) else { return false }
                            index += 1
                        }
                    default: return false
                    }
                }
            }
            return false
        }

        func isHex(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
        }

        func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }

        mutating func number() -> Bool {
            _ = expect(UInt8(ascii: "-"))
            if expect(UInt8(ascii: "0")) {
                // A leading zero stands alone.
            } else {
                guard isDigit(peek) else { return false }
                while isDigit(peek) { index += 1 }
            }
            if expect(UInt8(ascii: ".")) {
                guard isDigit(peek) else { return false }
                while isDigit(peek) { index += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard isDigit(peek) else { return false }
                while isDigit(peek) { index += 1 }
            }
            return true
        }
    }
}
