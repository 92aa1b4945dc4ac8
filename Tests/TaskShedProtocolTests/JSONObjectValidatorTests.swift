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
        #expect(JSONObjectValidator.problem(in: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == "is not valid UTF-8")
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
