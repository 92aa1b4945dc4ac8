/// Checks that bytes are one JSON object (RFC 8259), without building it: kwargs are stored and forwarded as
/// bytes, but a task whose kwargs are not an object would fail in every worker, so it is rejected at add.
///
/// A recursive-descent recogniser over UTF-8 with a nesting limit (a deeply nested document must not exhaust
/// the loop thread's stack).
enum JSONObjectValidator {
    /// Deepest nesting of arrays and objects accepted.
    static let maxDepth = 64

    /// Returns `nil` when `bytes` are one JSON object with optional surrounding whitespace, or a short reason.
    static func problem(in bytes: [UInt8]) -> String? {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.peek() == UInt8(ascii: "{") else { return "must be a JSON object (starting with '{')" }
        if let failure = parser.value(depth: 0) { return failure }
        parser.skipWhitespace()
        if parser.index != bytes.count { return "unexpected bytes after the object at offset \(parser.index)" }
        return nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) {
            self.bytes = bytes
        }

        func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
        }

        mutating func expect(_ literal: String) -> Bool {
            for byte in literal.utf8 {
                guard peek() == byte else { return false }
                index += 1
            }
            return true
        }

        func failure(_ what: String) -> String { "invalid JSON at offset \(index): \(what)" }

        mutating func value(depth: Int) -> String? {
            skipWhitespace()
            guard let byte = peek() else { return failure("unexpected end") }
            switch byte {
            case UInt8(ascii: "{"): return object(depth: depth + 1)
            case UInt8(ascii: "["): return array(depth: depth + 1)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return expect("true") ? nil : failure("bad literal")
            case UInt8(ascii: "f"): return expect("false") ? nil : failure("bad literal")
            case UInt8(ascii: "n"): return expect("null") ? nil : failure("bad literal")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
            default: return failure("unexpected character")
            }
        }

        mutating func object(depth: Int) -> String? {
            if depth > JSONObjectValidator.maxDepth { return failure("nested deeper than \(JSONObjectValidator.maxDepth)") }
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "}") { index += 1; return nil }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { return failure("expected a string key") }
                if let problem = string() { return problem }
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { return failure("expected ':'") }
                index += 1
                if let problem = value(depth: depth) { return problem }
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { index += 1; continue }
                if peek() == UInt8(ascii: "}") { index += 1; return nil }
                return failure("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) -> String? {
            if depth > JSONObjectValidator.maxDepth { return failure("nested deeper than \(JSONObjectValidator.maxDepth)") }
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") { index += 1; return nil }
            while true {
                if let problem = value(depth: depth) { return problem }
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { index += 1; continue }
                if peek() == UInt8(ascii: "]") { index += 1; return nil }
                return failure("expected ',' or ']'")
            }
        }

        mutating func string() -> String? {
            index += 1
            while let byte = peek() {
                index += 1
                switch byte {
                case UInt8(ascii: "\""): return nil
                case UInt8(ascii: "\\"):
                    guard let escaped = peek() else { return failure("unterminated escape") }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        for _ in 0..<4 {
                            guard let hex = peek(), (hex >= 0x30 && hex <= 0x39) || (hex | 0x20 >= 0x61 && hex | 0x20 <= 0x66)
                            else { return failure("bad \\u escape") }
                            index += 1
                        }
                    default: return failure("bad escape")
                    }
                case 0x00..<0x20: return failure("control character in string")
                default: continue
                }
            }
            return failure("unterminated string")
        }

        mutating func number() -> String? {
            if peek() == UInt8(ascii: "-") { index += 1 }
            guard let first = peek(), first >= 0x30 && first <= 0x39 else { return failure("bad number") }
            if first == 0x30 { index += 1 } else { digits() }
            if peek() == UInt8(ascii: ".") {
                index += 1
                guard let next = peek(), next >= 0x30 && next <= 0x39 else { return failure("bad fraction") }
                digits()
            }
            if let e = peek(), e | 0x20 == UInt8(ascii: "e") {
                index += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
                guard let next = peek(), next >= 0x30 && next <= 0x39 else { return failure("bad exponent") }
                digits()
            }
            return nil
        }

        mutating func digits() {
            while let byte = peek(), byte >= 0x30 && byte <= 0x39 { index += 1 }
        }
    }
}
