import Foundation
import Testing
@testable import TaskShedCalendar

/// The TZif reader: system tzdata, `TZDIR`, the POSIX footer for the future, the cache.
@Suite struct ZoneInfoTests {
    @Test func readsTheSystemTzdataRelease() {
        // Debian bookworm's tzdata 2025b; if the machine's tzdata moves on, so does this (and so do the runs).
        let version = ZoneInfo.tzdataVersion()
        #expect(version != nil)
        #expect(version?.count == 5)
    }

    /// Instants past the last explicit transition come from the POSIX footer (New York: M3.2.0, M11.1.0).
    @Test func theFooterCarriesRulesIntoTheFuture() throws {
        let ny = try ZoneInfo.named("America/New_York")
        #expect(ny.footer != nil)
        let lastExplicit = try #require(ny.transitions.last)
        #expect(lastExplicit < utc("2040-01-01 00:00") / 1_000_000)
        // 2090: DST from Sun 03-12 07:00Z to Sun 11-05 06:00Z.
        #expect(ny.utcOffset(atSecond: utc("2090-03-12 06:59:59") / 1_000_000) == -5 * 3600)
        #expect(ny.utcOffset(atSecond: utc("2090-03-12 07:00") / 1_000_000) == -4 * 3600)
        #expect(ny.utcOffset(atSecond: utc("2090-11-05 05:59:59") / 1_000_000) == -4 * 3600)
        #expect(ny.utcOffset(atSecond: utc("2090-11-05 06:00") / 1_000_000) == -5 * 3600)
        // Lord Howe's footer has a 30-minute daylight offset (<+1030>-10:30<+11>-11,M10.1.0,M4.1.0).
        let lordHowe = try ZoneInfo.named("Australia/Lord_Howe")
        #expect(lordHowe.utcOffset(atSecond: utc("2080-01-01 00:00") / 1_000_000) == 11 * 3600)
        #expect(lordHowe.utcOffset(atSecond: utc("2080-07-01 00:00") / 1_000_000) == 10 * 3600 + 1800)
    }

    /// The reader agrees with Foundation (ICU's copy of the same tzdata release) hour by hour, 1970–2060,
    /// in the zones of the property test.
    @Test(arguments: ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata",
                      "America/Santiago", "Asia/Tehran", "Africa/Casablanca"])
    func offsetsAgreeWithFoundation(_ name: String) throws {
        let zone = try ZoneInfo.named(name)
        let tz = try #require(TimeZone(identifier: name))
        var t = utc("1970-01-01 00:00") / 1_000_000
        let end = utc("2060-01-01 00:00") / 1_000_000
        var mismatches: [String] = []
        while t < end, mismatches.count < 3 {
            let expected = Int32(tz.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t))))
            if zone.utcOffset(atSecond: t) != expected {
                mismatches.append("\(utcText(t * 1_000_000)): \(zone.utcOffset(atSecond: t)) vs \(expected)")
            }
            t += 3600 * 7 + 1800
        }
        #expect(mismatches.isEmpty, "\(name): \(mismatches)")
    }

    /// Zones load from the directory asked for, so `TZDIR` (read on every lookup) is honoured; the cache keys
    /// on the directory too.
    @Test func aZoneDirectoryOtherThanTheSystemsIsHonoured() throws {
        let directory = NSTemporaryDirectory() + "taskshed-tzdir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/Test", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: ZoneInfo.directory + "/Asia/Kolkata", toPath: directory + "/Test/Zone")
        let zone = try ZoneInfoCache.shared.zone(named: "Test/Zone", directory: directory)
        #expect(zone.utcOffset(atSecond: 0) == 5 * 3600 + 1800)
        #expect(throws: CalendarExpressionError.self) {
            try ZoneInfoCache.shared.zone(named: "Asia/Kolkata", directory: directory)
        }
        // UTC is built in when the directory lacks it.
        #expect(try ZoneInfoCache.shared.zone(named: "UTC", directory: directory).utcOffset(atSecond: 0) == 0)
    }

    @Test func loadedZonesAreCached() throws {
        #expect(try ZoneInfo.named("Europe/Berlin") === ZoneInfo.named("Europe/Berlin"))
    }

    @Test func malformedTZifIsRefused() {
        #expect(ZoneInfo.parseTZif(Array("TZif2".utf8), identifier: "x") == nil)
        #expect(ZoneInfo.parseTZif([], identifier: "x") == nil)
    }

    @Test func posixFootersParse() throws {
        let ny = try #require(PosixTimeZone("EST5EDT,M3.2.0,M11.1.0"))
        #expect(ny.standardOffset == -5 * 3600 && ny.daylight?.offset == -4 * 3600)
        let chile = try #require(PosixTimeZone("<-04>4<-03>,M9.1.6/24,M4.1.6/24"))
        let startTime: Int32? = chile.daylight?.startTime
        #expect(startTime == 86_400)
        let fixed = try #require(PosixTimeZone("<+0530>-5:30"))
        #expect(fixed.standardOffset == 5 * 3600 + 1800 && fixed.daylight == nil)
        #expect(PosixTimeZone("") == nil)
        #expect(PosixTimeZone("EST5EDT,M13.1.0,M11.1.0") == nil)
    }
}
