import Foundation
import TaskShed
import Testing

@Suite("Kwargs")
struct KwargsTests {
    struct Greeting: Codable, Equatable {
        var name: String
        var count: Int
        var tags: [String]
    }

    @Test func emptyKwargsAreAnEmptyObject() {
        #expect(Kwargs().description == "{}")
        #expect(Kwargs().isEmpty)
        #expect(Kwargs().object == [:])
    }

    @Test func literalKwargsEncodeAsSortedJSONObject() {
        let kwargs: Kwargs = ["name": "Ada", "count": 3, "ratio": 0.5, "ok": true, "none": nil, "list": [1, "two"]]
        #expect(kwargs.description == #"{"count":3,"list":[1,"two"],"name":"Ada","none":null,"ok":true,"ratio":0.5}"#)
        #expect(kwargs["name"] == .string("Ada"))
        #expect(kwargs["count"] == .int(3))
        #expect(kwargs["ratio"] == .double(0.5))
        #expect(kwargs["ok"] == .bool(true))
        #expect(kwargs["none"] == .null)
        #expect(kwargs["missing"] == nil)
    }

    @Test func encodableValueRoundTripsThroughKwargs() throws {
        let greeting = Greeting(name: "Ada", count: 2, tags: ["a", "b"])
        let kwargs = try Kwargs(encoding: greeting)
        #expect(try kwargs.decode(Greeting.self) == greeting)
        #expect(kwargs["tags"] == .array(["a", "b"]))
    }

    @Test func scheduledTaskDecodesItsKwargs() throws {
        let task = ScheduledTask(callback: "greet", kwargs: try Kwargs(encoding: Greeting(name: "Bo", count: 1, tags: [])))
        #expect(try task.decodeKwargs(as: Greeting.self).name == "Bo")
    }

    @Test(arguments: ["[1,2]", "\"text\"", "42", "null", "true"])
    func nonObjectJSONIsRejected(json: String) {
        #expect {
            try Kwargs(json: json)
        } throws: { error in
            let error = error as? TaskShedError
            return error?.code == .kwargsCoding && error?.field == "kwargs" && error?.message.contains("must be a JSON object") == true
        }
    }

    @Test func nonObjectEncodableIsRejected() {
        #expect(throws: TaskShedError.self) { try Kwargs(encoding: [1, 2, 3]) }
        #expect(throws: TaskShedError.self) { try Kwargs(encoding: "just a string") }
    }

    @Test func invalidJSONTextIsRejected() {
        #expect {
            try Kwargs(json: "{\"a\": ")
        } throws: { error in
            (error as? TaskShedError)?.code == .kwargsCoding
        }
    }

    @Test func decodingAsTheWrongTypeNamesTheType() throws {
        let kwargs: Kwargs = ["name": 5]
        #expect {
            try kwargs.decode(Greeting.self)
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .kwargsCoding && error.message.contains("Greeting")
        }
    }

    @Test func jsonTextIsKeptVerbatim() throws {
        let text = #"{"b": 1, "a": {"nested": [true, false]}}"#
        let kwargs = try Kwargs(json: text)
        #expect(kwargs.description == text)
        #expect(kwargs["a"] == .object(["nested": [true, false]]))
    }

    @Test func largeIntegersAndFractionsKeepTheirKind() throws {
        let kwargs = try Kwargs(json: #"{"big": 9007199254740993, "frac": 1.25, "neg": -7}"#)
        #expect(kwargs["big"] == .int(9_007_199_254_740_993))
        #expect(kwargs["frac"] == .double(1.25))
        #expect(kwargs["neg"] == .int(-7))
    }
}
