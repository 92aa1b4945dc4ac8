/// Checks that bytes are exactly one JSON object (RFC 8259), with optional surrounding whitespace, in UTF-8:
/// what the protocol requires of a task's kwargs. Nothing is built; kwargs are stored and forwarded as bytes,
/// but a task whose kwargs are not an object would fail in every worker, so it is rejected when added.
///
/// Strings must be valid Unicode (RFC 8259 section 8.2): a `\u` escape of a UTF-16 high surrogate
/// (`\ud800`…`\udbff`) must be followed by the escape of a low one (`\udc00`…`\udfff`), and a low surrogate
/// must not stand alone. Decoders handle lone surrogates each in its own way (replace, reject, or keep
/// invalid text), so a worker in another language could not be relied on to read such kwargs.
public enum JSONObjectValidator {
    /// Deepest nesting of arrays and objects accepted (the recogniser recurses once per level, so hostile
    /// input must not choose the depth).
    public static let maxDepth = 64

    /// Checks one kwargs value.
    /// - Parameter bytes: The candidate JSON text.
    /// - Returns: `nil` when `bytes` are one JSON object in valid UTF-8, else a short reason that reads after
    ///   the field's name and says what is wrong and at which byte offset (0-based), e.g. "must be a JSON
    ///   object", "is not valid JSON: expected ':' after an object key, found '}' at byte 5". The nesting
    ///   limit is named only when the text nests too deep.
    /// - Important: Pure and thread-safe.
    public static func problem(in bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return "must be a JSON object" }
            var parser = Parser(base: base, count: buffer.count)
            parser.skipSpace()
            guard parser.peek == UInt8(ascii: "{") else { return "must be a JSON object" }
            guard parser.value(depth: 0) else {
                return parser.failure?.text ?? "is not valid JSON at byte \(parser.index)"
            }
            parser.skipSpace()
            guard parser.index == buffer.count else {
                return "has trailing bytes after the JSON object, starting at byte \(parser.index)"
            }
            return nil
        }
    }

    /// Why the text was refused and where.
    private struct Failure {
        let text: String
    }

    /// A recursive-descent recogniser over the bytes.
    ///
    /// It reads through a raw pointer (every read is after an `index < count` check of its own): kwargs are
    /// checked once per added task, and the bounds-checked buffer made the check a tenth of a batched add.
    /// Each function returns `false` on the first fault, after recording it in `failure` (the innermost
    /// function that sees the fault records it; callers keep that record).
    private struct Parser {
        let base: UnsafePointer<UInt8>
        let count: Int
        var index = 0
        var failure: Failure?

        var peek: UInt8? { index < count ? base[index] : nil }

        /// Records a syntax error at `offset` (default: the current byte) and returns `false`.
        mutating func fail(_ what: String, at offset: Int? = nil) -> Bool {
            if failure == nil { failure = Failure(text: "is not valid JSON: \(what) at byte \(offset ?? index)") }
            return false
        }

        /// Records an error about the current byte: "expected …, found 'x'".
        mutating func unexpected(_ expected: String) -> Bool {
            fail("expected \(expected), found \(Self.describe(peek))")
        }

        static func describe(_ byte: UInt8?) -> String {
            guard let byte else { return "the end of the text" }
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }

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
            let start = index
            let length = text.utf8CodeUnitCount
            for i in 0..<length {
                guard index < count, base[index] == text.utf8Start[i] else {
                    return fail("expected the literal '\(text)'", at: start)
                }
                index += 1
            }
            return true
        }

        mutating func value(depth: Int) -> Bool {
            skipSpace()
            guard let c = peek else { return unexpected("a value") }
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < JSONObjectValidator.maxDepth else {
                    if failure == nil {
                        failure = Failure(text: "nests arrays and objects deeper than \(JSONObjectValidator.maxDepth) "
                            + "levels (the limit; the object itself is the first) at byte \(index)")
                    }
                    return false
                }
                return c == UInt8(ascii: "{") ? object(depth: depth) : array(depth: depth)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
            default: return unexpected("a value")
            }
        }

        mutating func object(depth: Int) -> Bool {
            index += 1
            skipSpace()
            if expect(UInt8(ascii: "}")) { return true }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { return unexpected("a string key") }
                guard string() else { return false }
                skipSpace()
                guard expect(UInt8(ascii: ":")) else { return unexpected("':' after an object key") }
                guard value(depth: depth + 1) else { return false }
                skipSpace()
                if expect(UInt8(ascii: "}")) { return true }
                guard expect(UInt8(ascii: ",")) else { return unexpected("',' or '}' after an object member") }
            }
        }

        mutating func array(depth: Int) -> Bool {
            index += 1
            skipSpace()
            if expect(UInt8(ascii: "]")) { return true }
            while true {
                guard value(depth: depth + 1) else { return false }
                skipSpace()
                if expect(UInt8(ascii: "]")) { return true }
                guard expect(UInt8(ascii: ",")) else { return unexpected("',' or ']' after an array element") }
            }
        }

        mutating func string() -> Bool {
            let start = index
            index += 1
            while index < count {
                let c = base[index]
                if c == UInt8(ascii: "\"") {
                    index += 1
                    return true
                }
                if c >= 0x80 {
                    guard utf8Sequence() else { return false }
                } else if c < 0x20 {
                    return fail("control character \(Self.describe(c)) in a string (write it as an escape)")
                } else if c == UInt8(ascii: "\\") {
                    guard escape() else { return false }
                } else {
                    index += 1
                }
            }
            return fail("unterminated string (it starts at byte \(start))", at: count)
        }

        /// One escape sequence, at the backslash.
        mutating func escape() -> Bool {
            let start = index
            index += 1
            guard let e = peek else { return unexpected("an escape character after '\\'") }
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                index += 1
                return true
            case UInt8(ascii: "u"):
                index += 1
                guard let unit = hex4() else { return false }
                switch unit {
                case 0xD800...0xDBFF:
                    // A high surrogate: the next escape must be the low half of the pair.
                    guard index + 1 < count, base[index] == UInt8(ascii: "\\"), base[index + 1] == UInt8(ascii: "u")
                    else {
                        return fail("lone surrogate \(Self.escapeText(unit)) (a high surrogate must be followed "
                            + "by a low one, \\udc00 to \\udfff; strings must be valid Unicode)", at: start)
                    }
                    index += 2
                    guard let low = hex4() else { return false }
                    guard (0xDC00...0xDFFF).contains(low) else {
                        return fail("lone surrogate \(Self.escapeText(unit)) (followed by \(Self.escapeText(low)), "
                            + "not by a low surrogate \\udc00 to \\udfff; strings must be valid Unicode)", at: start)
                    }
                    return true
                case 0xDC00...0xDFFF:
                    return fail("lone surrogate \(Self.escapeText(unit)) (a low surrogate without a high one "
                        + "before it; strings must be valid Unicode)", at: start)
                default:
                    return true
                }
            default:
                return fail("invalid escape '\\\(Character(Unicode.Scalar(e)))' (allowed: \\\" \\\\ \\/ \\b \\f \\n "
                    + "\\r \\t \\uXXXX)", at: start)
            }
        }

        static func escapeText(_ unit: UInt16) -> String { "\\u" + String(unit, radix: 16) }

        /// Four hex digits after `\u`.
        mutating func hex4() -> UInt16? {
            var unit: UInt16 = 0
            for _ in 0..<4 {
                guard let h = peek, let digit = Self.hexValue(h) else {
                    _ = unexpected("4 hex digits after '\\u'")
                    return nil
                }
                unit = unit << 4 | digit
                index += 1
            }
            return unit
        }

        static func hexValue(_ c: UInt8) -> UInt16? {
            switch c {
            case 0x30...0x39: return UInt16(c - 0x30)
            case 0x41...0x46: return UInt16(c - 0x41 + 10)
            case 0x61...0x66: return UInt16(c - 0x61 + 10)
            default: return nil
            }
        }

        /// One multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF), at
        /// its lead byte.
        mutating func utf8Sequence() -> Bool {
            let lead = base[index]
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: return invalidUTF8(at: index)
            }
            for i in 1..<length {
                guard index + i < count else { return invalidUTF8(at: index) }
                let c = base[index + i]
                guard c >= (i == 1 ? lower : 0x80), c <= (i == 1 ? upper : 0xBF) else { return invalidUTF8(at: index) }
            }
            index += length
            return true
        }

        mutating func invalidUTF8(at offset: Int) -> Bool {
            if failure == nil {
                failure = Failure(text: "is not valid UTF-8 at byte \(offset)")
            }
            return false
        }

        func isDigit(_ c: UInt8?) -> Bool { c.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }

        mutating func number() -> Bool {
            _ = expect(UInt8(ascii: "-"))
            if expect(UInt8(ascii: "0")) {
                // A leading zero stands alone.
                if isDigit(peek) { return fail("a number must not have a leading zero") }
            } else {
                guard isDigit(peek) else { return unexpected("a digit") }
                while isDigit(peek) { index += 1 }
            }
            if expect(UInt8(ascii: ".")) {
                guard isDigit(peek) else { return unexpected("a digit after the decimal point") }
                while isDigit(peek) { index += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard isDigit(peek) else { return unexpected("a digit in the exponent") }
                while isDigit(peek) { index += 1 }
            }
            return true
        }
    }
}
