import Testing
import TaskShedCalendar

/// Catch-up beyond case 13, jitter bounds and determinism, and the stable hash.
@Suite struct CatchUpAndJitterTests {
    @Test func nothingMissedRunsNothing() throws {
        let rule = try cron("0 * * * *")
        let plan = rule.catchUp(lastHandled: utc("2026-01-01 10:00"), now: utc("2026-01-01 10:30"))
        #expect(plan.runNow.isEmpty && plan.skipped == 0)
        #expect(plan.next.map { utcText($0.instant) } == "2026-01-01 11:00:00")
    }

    @Test func occurrencesOutsideTheWindowAreCountedNotRun() throws {
        let rule = try cron("0 * * * *")
        let plan = rule.catchUp(lastHandled: utc("2026-01-01 00:00"), now: utc("2026-01-02 00:30"),
                                window: 0, policy: .all(max: 10))
        #expect(plan.runNow.isEmpty)
        #expect(plan.skippedOutsideWindow == 24 && plan.skippedOutsideWindowIsExact)
        let wide = rule.catchUp(lastHandled: utc("2026-01-01 00:00"), now: utc("2026-01-02 00:30"),
                                window: 3 * 3_600_000_000, policy: .all(max: 10))
        #expect(wide.runNow.map { utcText($0.instant) }
            == ["2026-01-01 22:00:00", "2026-01-01 23:00:00", "2026-01-02 00:00:00"])
        #expect(wide.skippedOutsideWindow == 21)
    }

    @Test func countingStopsAtTheLimitAndSaysSo() throws {
        let rule = try systemd("*-*-* *:*:*")
        let plan = rule.catchUp(lastHandled: utc("2026-01-01 00:00"), now: utc("2026-01-03 00:00"))
        #expect(!plan.skippedOutsideWindowIsExact)
        #expect(plan.skippedOutsideWindow == CalendarRule.catchUpCountLimit)
        #expect(plan.runNow.count == 1)
    }

    @Test func jitterStaysWithinItsBounds() throws {
        var generator = SeededGenerator(seed: 7)
        let jitter = Jitter(maximum: 90_000_000)
        let scheduled = utc("2026-01-01 00:00")
        for _ in 0..<1000 {
            let t = jitter.runTime(scheduled: scheduled, next: scheduled + 60_000_000, taskID: "a", using: &generator)
            #expect(t >= scheduled && t < scheduled + 60_000_000)
            let free = jitter.runTime(scheduled: scheduled, next: nil, taskID: "a", using: &generator)
            #expect(free >= scheduled && free <= scheduled + 90_000_000)
        }
        #expect(Jitter(maximum: 0).runTime(scheduled: scheduled, next: nil, taskID: "a") == scheduled)
        #expect(Jitter(maximum: -5).runTime(scheduled: scheduled, next: nil, taskID: "a") == scheduled)
    }

    @Test func fixedJitterIsReproducible() {
        let jitter = Jitter(maximum: 600_000_000, mode: .fixed)
        let a = jitter.runTime(scheduled: 0, next: nil, taskID: "backup-nightly")
        #expect(a == jitter.runTime(scheduled: 0, next: nil, taskID: "backup-nightly"))
        #expect(a != jitter.runTime(scheduled: 0, next: nil, taskID: "backup-nightly-2"))
        #expect(a >= 0 && a <= 600_000_000)
        #expect(jitter.runTime(scheduled: 0, next: 1_000, taskID: "backup-nightly") < 1_000)
    }

    /// Golden values: the hash must never change between releases, or fixed jitter would move.
    @Test func stableHashGoldenValues() {
        // Computed independently (Python) from the definition: FNV-1a 64, then the SplitMix64 finaliser.
        #expect(StableHash.hash("") == 0xF52A_15E9_A9B5_E89B)
        #expect(StableHash.hash("backup-nightly") == 0x0194_4D84_7085_EA1E)
        #expect(StableHash.hash("V1234567890ABCD") == 0xA4D0_2550_2AF1_E136)
        // And so the fixed jitter of that id with a 600 s bound is 3.701502 s, on every machine.
        #expect(Jitter(maximum: 600_000_000, mode: .fixed).runTime(scheduled: 0, next: nil, taskID: "backup-nightly")
            == 3_701_502)
    }

    @Test func overlapPoliciesExist() {
        #expect(OverlapPolicy.allCases == [.skip, .queueOne, .allow])
    }
}
