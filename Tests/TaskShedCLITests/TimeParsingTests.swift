import Foundation
import Testing

@testable import TaskShedCLI

/// A UTC instant from its civil fields (checked against an outside oracle in `civilArithmeticMatchesPython`).
func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0, us: Int = 0) -> Int64 {
    CivilDateTime(year: y, month: mo, day: d, hour: h, minute: mi, second: s, microsecond: us).naiveMicros
}

func zone(_ identifier: String) -> TimeZone {
    guard let zone = TimeZone(identifier: identifier) else {
        Issue.record("time zone \(identifier) is not installed")
        return TimeZone(secondsFromGMT: 0)!
    }
    return zone
}

func parser(now: Int64, in zoneID: String) -> TimeParser {
    TimeParser(context: TimeContext(nowMicros: now, timeZone: zone(zoneID)))
}

@Suite("Civil time arithmetic")
struct CivilTimeTests {
    @Test func civilArithmeticMatchesPython() {
        // Values from Python's datetime(…, tzinfo=timezone.utc).timestamp().
        #expect(utc(2026, 3, 8, 7, 30) == 1_772_955_000_000_000)
        #expect(utc(2024, 2, 29, 23, 59, 59, us: 999_999) == 1_709_251_199_999_999)
        #expect(utc(2026, 11, 29, 10, 15, 4, us: 250_000) == 1_795_947_304_250_000)
        #expect(utc(1970, 1, 1) == 0)
    }

    @Test(arguments: [Int64(0), -1, 1_709_251_199_999_999, -86_400_000_001, 253_402_300_799_999_999])
    func civilRoundTrips(micros: Int64) {
        #expect(CivilDateTime.fromNaiveMicros(micros).naiveMicros == micros)
    }

    @Test func validityChecksDaysOfMonth() {
        #expect(CivilDateTime(year: 2024, month: 2, day: 29).isValid)
        #expect(!CivilDateTime(year: 2026, month: 2, day: 29).isValid)
        #expect(!CivilDateTime(year: 1900, month: 2, day: 29).isValid)
        #expect(CivilDateTime(year: 2000, month: 2, day: 29).isValid)
        #expect(!CivilDateTime(year: 2026, month: 4, day: 31).isValid)
        #expect(!CivilDateTime(year: 2026, month: 13, day: 1).isValid)
    }
}

@Suite("Time parsing")
struct TimeParsingTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var zone: String
        var now: Int64
        var input: String
        var expected: Int64
        var testDescription: String { "\(input) in \(zone)" }
    }

    static let anyNow = utc(2026, 6, 15, 12)

    static let cases: [Case] = [
        // RFC 3339 with offsets: the zone does not matter.
        Case(zone: "America/New_York", now: anyNow, input: "2026-03-08T14:30:00Z", expected: utc(2026, 3, 8, 14, 30)),
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-03-08T14:30:00.25+01:00", expected: utc(2026, 3, 8, 13, 30, us: 250_000)),
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-03-08t14:30:00z", expected: utc(2026, 3, 8, 14, 30)),
        Case(zone: "UTC", now: anyNow, input: "2026-03-08 09:30-05:00", expected: utc(2026, 3, 8, 14, 30)),
        Case(zone: "UTC", now: anyNow, input: "2026-03-08T14:30:00.1234567Z", expected: utc(2026, 3, 8, 14, 30, us: 123_456)),
        // Local date and time.
        Case(zone: "America/New_York", now: anyNow, input: "2026-06-15 12:00", expected: utc(2026, 6, 15, 16)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-01-15T12:00:30", expected: utc(2026, 1, 15, 17, 0, 30)),
        // New York spring forward (2026-03-08 02:00 EST -> 03:00 EDT): the gap moves forward by one hour.
        Case(zone: "America/New_York", now: anyNow, input: "2026-03-08 01:59:59", expected: utc(2026, 3, 8, 6, 59, 59)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-03-08 02:00", expected: utc(2026, 3, 8, 7, 0)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-03-08 02:30", expected: utc(2026, 3, 8, 7, 30)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-03-08 03:00", expected: utc(2026, 3, 8, 7, 0)),
        // New York fall back (2026-11-01 02:00 EDT -> 01:00 EST): the first occurrence (EDT).
        Case(zone: "America/New_York", now: anyNow, input: "2026-11-01 00:30", expected: utc(2026, 11, 1, 4, 30)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-11-01 01:30", expected: utc(2026, 11, 1, 5, 30)),
        Case(zone: "America/New_York", now: anyNow, input: "2026-11-01 02:00", expected: utc(2026, 11, 1, 7, 0)),
        // Berlin spring forward (2026-03-29 02:00 CET -> 03:00 CEST) and fall back (2026-10-25 03:00 -> 02:00).
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-03-29 02:30", expected: utc(2026, 3, 29, 1, 30)),
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-03-29 03:30", expected: utc(2026, 3, 29, 1, 30)),
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-10-25 02:30", expected: utc(2026, 10, 25, 0, 30)),
        Case(zone: "Europe/Berlin", now: anyNow, input: "2026-10-25 03:00", expected: utc(2026, 10, 25, 2, 0)),
        // Lord Howe Island shifts by 30 minutes: the gap and the overlap are half an hour long.
        Case(zone: "Australia/Lord_Howe", now: anyNow, input: "2026-10-04 02:15", expected: utc(2026, 10, 3, 15, 45)),
        Case(zone: "Australia/Lord_Howe", now: anyNow, input: "2026-04-05 01:45", expected: utc(2026, 4, 4, 14, 45)),
        // Time of day: the next such time, strictly after now.
        Case(zone: "America/New_York", now: utc(2026, 3, 8, 12), input: "09:15", expected: utc(2026, 3, 8, 13, 15)),
        Case(zone: "America/New_York", now: utc(2026, 3, 8, 12), input: "07:00", expected: utc(2026, 3, 9, 11)),
        Case(zone: "America/New_York", now: utc(2026, 3, 8, 12), input: "08:00:00", expected: utc(2026, 3, 9, 12)),
        Case(zone: "America/New_York", now: utc(2026, 3, 8, 12), input: "08:00:01", expected: utc(2026, 3, 8, 12, 0, 1)),
        // ...tomorrow falls in the spring-forward gap.
        Case(zone: "America/New_York", now: utc(2026, 3, 8, 4), input: "02:30", expected: utc(2026, 3, 8, 7, 30)),
        // ...tomorrow is 23 hours long: same wall-clock time, not now + 24 h.
        Case(zone: "America/New_York", now: utc(2026, 3, 7, 15), input: "09:00", expected: utc(2026, 3, 8, 13)),
        // ...tomorrow has a repeated hour: the first one.
        Case(zone: "America/New_York", now: utc(2026, 10, 31, 22), input: "01:30", expected: utc(2026, 11, 1, 5, 30)),
        Case(zone: "Europe/Berlin", now: utc(2026, 10, 24, 12), input: "02:30", expected: utc(2026, 10, 25, 0, 30)),
        // Keywords and relative forms.
        Case(zone: "UTC", now: anyNow, input: "now", expected: anyNow),
        Case(zone: "UTC", now: anyNow, input: " NOW ", expected: anyNow),
        Case(zone: "UTC", now: anyNow, input: "+90s", expected: anyNow + 90_000_000),
        Case(zone: "UTC", now: anyNow, input: "+2h30m", expected: anyNow + 9_000_000_000),
    ]

    @Test(arguments: cases)
    func parsesAcceptedForms(_ c: Case) throws {
        #expect(try parser(now: c.now, in: c.zone).parseMicros(c.input) == c.expected)
    }

    static let invalid: [String] = [
        "", "tomorrow", "25:00", "10:60", "10:00:61", "12:3", "1:30", "2026-02-30 10:00", "2026-13-01 10:00",
        "2026-03-08", "2026-03-08 10:00 extra", "2026-03-08T10:00+1", "2026-03-08T10:00+01", "2026-03-08T10:00+24:00",
        "2026-03-08T10:00:00.Z", "10:00:00.5", "+5x", "+", "2026/03/08 10:00", "1772955000",
    ]

    @Test(arguments: invalid)
    func rejectsWithAcceptedFormats(_ input: String) {
        #expect {
            _ = try parser(now: Self.anyNow, in: "UTC").parseMicros(input)
        } throws: { error in
            guard let error = error as? TimeParseError else { return false }
            let text = error.description
            return error.kind == .time && text.contains("'\(input)'") && text.contains("accepted: RFC 3339")
                && !text.contains("\n")
        }
    }
}

@Suite("Duration parsing")
struct DurationParsingTests {
    @Test(arguments: [
        ("90s", Int64(90_000_000)), ("5m", 300_000_000), ("2h30m", 9_000_000_000), ("1d", 86_400_000_000),
        ("500ms", 500_000), ("1h30m15s", 5_415_000_000), ("250us", 250), ("3µs", 3), ("1d1s", 86_401_000_000),
        ("0s", 0), ("120m", 7_200_000_000),
    ])
    func parsesDurations(_ input: String, _ expected: Int64) throws {
        #expect(try DurationParser.parseMicros(input) == expected)
    }

    /// Decimals as systemd and other tools write them (issue 17: `--poll 0.2s` was "unknown unit '.'").
    @Test(arguments: [
        ("0.2s", Int64(200_000)), ("1.5m", 90_000_000), ("2.5ms", 2_500), ("1.5h", 5_400_000_000), ("0.5d", 43_200_000_000),
        ("1h0.5m", 3_630_000_000), ("0.000001s", 1), ("2.000s", 2_000_000), ("1.25us", -1),
    ])
    func parsesDecimalDurations(_ input: String, _ expected: Int64) throws {
        if expected < 0 {
            #expect(throws: TimeParseError.self) { try DurationParser.parseMicros(input) }
        } else {
            #expect(try DurationParser.parseMicros(input) == expected)
        }
    }

    @Test(arguments: [
        ("1.5us", "not a whole number of microseconds"), ("0.0000001s", "not a whole number of microseconds"),
        ("5x", "unknown unit 'x'"), ("1.2.3s", "more than one decimal point"), ("5.s", "a digit after the decimal point"),
        (".5s", "a digit before the decimal point"),
        ("5", "has no unit"), ("30m1h", "largest to smallest"),
    ])
    func durationErrorsAreSpecific(_ input: String, _ problem: String) {
        #expect {
            _ = try DurationParser.parseMicros(input)
        } throws: { error in
            guard let error = error as? TimeParseError else { return false }
            return error.problem.contains(problem)
        }
    }

    @Test(arguments: ["", "5", "5x", "30m1h", "1h1h", "m5", "-5m", "5 m", "99999999999999999999s", "999999999d"])
    func rejectsInvalidDurations(_ input: String) {
        #expect {
            _ = try DurationParser.parseMicros(input)
        } throws: { error in
            guard let error = error as? TimeParseError else { return false }
            return error.kind == .duration && error.description.contains("accepted: numbers with units")
        }
    }

    @Test func positiveDurationRejectsZero() {
        #expect(throws: TimeParseError.self) { try DurationParser.parsePositiveMicros("0s") }
        #expect((try? DurationParser.parsePositiveMicros("1ms")) == 1000)
    }

    @Test(arguments: [Int64(1), 999, 1000, 90_000_000, 9_000_000_000, 86_401_000_000, 90_061_001_001])
    func formattedDurationsParseBack(_ micros: Int64) throws {
        #expect(try DurationParser.parseMicros(TimeFormatting.duration(micros: micros)) == micros)
    }
}
