import Foundation
import Testing

@testable import TaskShedCLI

@Suite("Output formatting")
struct OutputFormattingTests {
    let now = utc(2026, 11, 29, 10, 0)

    var berlin: TimeContext { TimeContext(nowMicros: now, timeZone: zone("Europe/Berlin")) }

    @Test(arguments: [
        (Int64(250_000_000), "in 4m 10s"), (-3_000_000, "3s ago"), (500_000, "now"), (-999_999, "now"),
        (3_600_000_000, "in 1h"), (183_840_000_000, "in 2d 3h"), (-90_061_000_000, "1d 1h ago"),
        (59_999_999, "in 59s"), (3_660_000_000, "in 1h 1m"),
    ])
    func relativeHints(_ delta: Int64, _ expected: String) {
        #expect(TimeFormatting.relative(micros: now + delta, context: berlin) == expected)
    }

    @Test func rfc3339UTCHasFixedMicrosecondPrecision() {
        #expect(TimeFormatting.rfc3339UTC(micros: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(TimeFormatting.rfc3339UTC(micros: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(TimeFormatting.rfc3339UTC(micros: utc(2026, 3, 8, 7, 30, 5, us: 250)) == "2026-03-08T07:30:05.000250Z")
    }

    @Test func localTimesFollowTheZone() {
        let ny = TimeContext(nowMicros: now, timeZone: zone("America/New_York"))
        #expect(TimeFormatting.local(micros: utc(2026, 11, 1, 5, 30), context: ny) == "2026-11-01 01:30:00")
        #expect(TimeFormatting.local(micros: utc(2026, 11, 1, 6, 30), context: ny) == "2026-11-01 01:30:00")
        #expect(TimeFormatting.local(micros: utc(2026, 11, 1, 7, 30), context: ny) == "2026-11-01 02:30:00")
        #expect(
            TimeFormatting.localWithHint(micros: now + 250_000_000, context: berlin)
                == "2026-11-29 11:04:10 (in 4m 10s)")
    }

    @Test(arguments: [
        (Int64(85), "85us"), (1250, "1.25ms"), (12_340, "12.3ms"), (123_400, "123ms"), (2_500_000, "2.50s"),
        (-85, "-85us"), (999_999, "1000ms"),
    ])
    func measurements(_ micros: Int64, _ expected: String) {
        #expect(TimeFormatting.measurement(micros: micros) == expected)
    }

    @Test func tablesAlignColumns() {
        var table = TextTable(columns: [.init("ID"), .init("COUNT", alignment: .right), .init("NOTE")])
        table.append(["a", "5", "x"])
        table.append(["longer-id", "1234", ""])
        #expect(
            table.render() == """
                ID         COUNT  NOTE
                a              5  x
                longer-id   1234

                """)
    }

    @Test func jsonKeepsKeyOrderAndEscapes() {
        let value = JSONOutput.object([
            ("z", .int(-1)), ("a", .string("q\"\\\n\u{1}é")), ("n", .null), ("list", .array([.bool(true), .uint(7)])),
            ("raw", .raw("{\"k\":1}")), ("empty", .object([])),
        ])
        #expect(
            value.render(indent: nil)
                == #"{"z":-1,"a":"q\"\\\n\u0001é","n":null,"list":[true,7],"raw":{"k":1},"empty":{}}"#)
        #expect(JSONOutput.array([.int(1)]).render() == "[\n  1\n]")
        let parsed = try? JSONSerialization.jsonObject(with: Data(value.render().utf8)) as? [String: Any]
        #expect(parsed?["a"] as? String == "q\"\\\n\u{1}é")
    }
}
