import Testing
import TaskShedProtocol

@Suite struct JSONObjectValidatorTests {
    @Test(arguments: ["{}", " { } ", #"{"a":1}"#, #"{"a":[1,2.5e-3,-0,true,false,null,"x\n\u00e9"],"b":{"c":{}}}"#,
                      #"{"é":"ü"}"#])
    func objectsAreAccepted(text: String) {
        #expect(JSONObjectValidator.problem(in: Array(text.utf8)) == nil)
    }

    @Test(arguments: ["", "[]", "1", #""s""#, "{", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{a:1}"#, #"{"a":01}"#,
                      #"{"a":"\x"}"#, "{} {}", #"{"a":tru}"#, "{\"a\":\"\u{1}\"}"])
    func everythingElseIsRejected(text: String) {
        #expect(JSONObjectValidator.problem(in: Array(text.utf8)) != nil)
    }

    @Test func invalidUTF8IsRejected() {
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8 at byte 2")
    }

    @Test func nestingUpToTheLimitIsAcceptedAndDeeperIsRejectedWithoutExhaustingTheStack() {
        func nested(_ levels: Int) -> [UInt8] {
            // The object itself is the first level.
            Array(("{\"a\":" + String(repeating: "[", count: levels - 1) + String(repeating: "]", count: levels - 1)
                + "}").utf8)
        }
        #expect(JSONObjectValidator.problem(in: nested(JSONObjectValidator.maxDepth)) == nil)
        #expect(JSONObjectValidator.problem(in: nested(JSONObjectValidator.maxDepth + 1)) != nil)
        #expect(JSONObjectValidator.problem(in: nested(100_000)) != nil)
    }
}

/// Issue 17: strings must be valid Unicode, and each refusal says what was wrong and at which byte.
@Suite struct JSONObjectValidatorMessageTests {
    @Test(arguments: [
        (#"{"a":"\ud800"}"#, "lone surrogate \\ud800", 6),
        (#"{"a":"\udc00"}"#, "lone surrogate \\udc00", 6),
        (#"{"a":"\udbff\u0041"}"#, "lone surrogate \\udbff", 6),
        (#"{"a":"x\ud800y"}"#, "lone surrogate \\ud800", 7),
        (#"{"\ud800":1}"#, "lone surrogate \\ud800", 2),
        (#"{"a":"\udc00\ud800"}"#, "lone surrogate \\udc00", 6),
    ] as [(String, String, Int)])
    func loneSurrogateEscapesAreRejected(text: String, surrogate: String, offset: Int) throws {
        let problem = try #require(JSONObjectValidator.problem(in: Array(text.utf8)))
        #expect(problem.hasPrefix("is not valid JSON"))
        #expect(problem.contains(surrogate))
        #expect(problem.contains("at byte \(offset)"))
        #expect(!problem.contains("nesting"))
    }

    @Test(arguments: [#"{"a":"\ud83d\ude00"}"#, #"{"a":"\uDBFF\uDFFF x"}"#, #"{"a":"\ud7ff\ue000\uffff"}"#])
    func surrogatePairsAndOtherEscapesAreAccepted(text: String) {
        #expect(JSONObjectValidator.problem(in: Array(text.utf8)) == nil)
    }

    @Test(arguments: [
        (#"{"a"}"#, "expected ':' after an object key, found '}' at byte 4"),
        (#"{"a":}"#, "expected a value, found '}' at byte 5"),
        (#"{"a":1,}"#, "expected a string key, found '}' at byte 7"),
        (#"{"a":1 "b":2}"#, "expected ',' or '}' after an object member, found '\"' at byte 7"),
        (#"{"a":[1 2]}"#, "expected ',' or ']' after an array element, found '2' at byte 8"),
        (#"{"a":tru}"#, "expected the literal 'true' at byte 5"),
        (#"{"a":01}"#, "a number must not have a leading zero at byte 6"),
        (#"{"a":1.}"#, "expected a digit after the decimal point, found '}' at byte 7"),
        (#"{"a":"\x"}"#, "invalid escape '\\x'"),
        (#"{"a":"\u12"}"#, "expected 4 hex digits after '\\u', found '\"' at byte 10"),
        (#"{"a":"abc"#, "unterminated string (it starts at byte 5) at byte 9"),
        ("{\"a\":\"\u{1}\"}", "control character byte 0x01 in a string"),
        ("{\"a\":", "expected a value, found the end of the text at byte 5"),
    ] as [(String, String)])
    func syntaxErrorsSayWhatAndWhereWithoutBlamingTheNestingLimit(text: String, expected: String) throws {
        let problem = try #require(JSONObjectValidator.problem(in: Array(text.utf8)))
        #expect(problem.hasPrefix("is not valid JSON: "))
        #expect(problem.contains(expected), "\(problem)")
        #expect(!problem.contains("64"), "\(problem)")
    }

    @Test func trailingBytesAndBadUTF8NameTheirOffset() throws {
        #expect(JSONObjectValidator.problem(in: Array("{} {}".utf8)) == "has trailing bytes after the JSON object, starting at byte 3")
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0x61, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8 at byte 3")
        // An encoded surrogate (ED A0 80) and an overlong slash (C0 AF) are not UTF-8 either.
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8 at byte 2")
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0xC0, 0xAF, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8 at byte 2")
        // A character cut short by the end of the string.
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0xE2, 0x82, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8 at byte 2")
    }

    @Test func onlyTooDeepNestingNamesTheLimit() throws {
        let deep = Array(("{\"a\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}").utf8)
        let problem = try #require(JSONObjectValidator.problem(in: deep))
        #expect(problem.contains("deeper than 64 levels"), "\(problem)")
        #expect(problem.contains("at byte \(5 + 63)"), "\(problem)")
    }

    @Test func aScalarInsideTheDeepestAllowedLevelIsAccepted() {
        // 64 levels of containers (the object and 63 arrays); the number nests nothing.
        let text = "{\"a\":" + String(repeating: "[", count: 63) + "1" + String(repeating: "]", count: 63) + "}"
        #expect(JSONObjectValidator.problem(in: Array(text.utf8)) == nil)
    }
}
