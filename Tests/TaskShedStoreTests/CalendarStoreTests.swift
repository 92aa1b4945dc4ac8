import Testing
import TaskShedProtocol
import TaskShedTestSupport
@testable import TaskShedStore

/// Calendar tasks in every store, with explicit clocks: the first run at the add, catch-up at the claim (each
/// policy, the window, the counters), overlap at the ack, jitter, a rule that runs out, a rule that stops
/// parsing, and the record surviving a reopen. The rule throughout is `*/5 * * * *` in UTC unless a test says
/// otherwise: occurrences at t0 + 0, 5, 10, … minutes (t0 is 2026-01-01T00:00:00Z, a multiple of five minutes).
@Suite("Calendar tasks in the store")
struct CalendarStoreTests {
    static let minute: Int64 = 60 * second

    static func every5(
        catchUp: CalendarSchedule.CatchUp = .one, maximum: UInt32 = 0, window: Int64 = 60 * minute,
        overlap: CalendarSchedule.Overlap = .skip, jitter: Int64 = 0, jitterMode: CalendarSchedule.JitterMode = .random
    ) -> Schedule {
        .calendar(CalendarSchedule(
            syntax: .cron, expression: "*/5 * * * *", catchUp: catchUp, catchUpMaximum: maximum,
            catchUpWindowMicros: window, overlap: overlap, jitterMicros: jitter, jitterMode: jitterMode))
    }

    /// Adds task "c" with `schedule` at `t0` and returns the store.
    static func storeWith(_ schedule: Schedule, _ fixture: StoreFixture, runAt: Int64? = t0) throws -> any TaskStore {
        let store = try fixture.open()
        _ = try store.add([spec("c", runAt: runAt, schedule: schedule)], now: t0)
        return store
    }

    @Test(arguments: behaviourKinds)
    func theFirstRunIsTheFirstOccurrenceAtOrAfterRunAt(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("at", runAt: t0, schedule: Self.every5()),
                           spec("after", runAt: t0 + 1, schedule: Self.every5()),
                           spec("now", runAt: nil, schedule: Self.every5())], now: t0 + 7 * Self.minute)
        #expect(try store.one("at")?.runAt == t0)
        #expect(try store.one("after")?.runAt == t0 + 5 * Self.minute)
        #expect(try store.one("now")?.runAt == t0 + 10 * Self.minute)
        #expect(try store.one("at")?.schedule == Self.every5())
        #expect(try store.earliestRunAt() == t0)
    }

    @Test(arguments: behaviourKinds)
    func anAckMovesTheTaskToTheNextOccurrence(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(), fixture)
        let claimed = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0)
        #expect(claimed.map(\.runAt) == [t0])
        let next = try #require(try store.ack(id: "c", attempt: 1, holder: 1, now: t0 + 10 * second))
        #expect(next.runAt == t0 + 5 * Self.minute && next.state == .scheduled && next.attempt == 0)
        #expect(next.skippedRuns == 0 && next.lastSkip == nil)
    }

    @Test(arguments: behaviourKinds)
    func catchUpOneRunsTheLatestMissedOccurrenceOnceAndCountsTheRest(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(), fixture)
        // Down from before t0 to t0 + 23 min: t0, +5, +10, +15 and +20 were missed.
        let now = t0 + 23 * Self.minute
        let claimed = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: now)
        let run = try #require(claimed.first)
        #expect(run.runAt == t0 + 20 * Self.minute)
        #expect(run.skippedRuns == 4)
        #expect(run.lastSkip?.contains("4 by catch-up one skipped") == true, "\(run.lastSkip ?? "nil")")
        let next = try #require(try store.ack(id: "c", attempt: 1, holder: 1, now: now + second))
        #expect(next.runAt == t0 + 25 * Self.minute && next.skippedRuns == 4)
    }

    @Test(arguments: behaviourKinds)
    func catchUpSkipRunsNothingAndWaitsForTheNextOccurrence(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(catchUp: .skip), fixture)
        let now = t0 + 23 * Self.minute
        #expect(try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: now).isEmpty)
        let task = try #require(try store.one("c"))
        #expect(task.runAt == t0 + 25 * Self.minute && task.state == .scheduled && task.attempt == 0)
        #expect(task.skippedRuns == 5 && task.lastSkip?.contains("5 by catch-up skip skipped") == true)
        #expect(try store.earliestRunAt() == t0 + 25 * Self.minute)
        // Only a little late, and still the latest occurrence: it runs.
        let late = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0 + 26 * Self.minute)
        #expect(late.map(\.runAt) == [t0 + 25 * Self.minute])
    }

    @Test(arguments: behaviourKinds)
    func catchUpAllRunsTheLatestMaximumInOrderThenCarriesOn(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(catchUp: .all, maximum: 3), fixture)
        var now = t0 + 23 * Self.minute
        var runs: [Int64] = []
        for _ in 0..<3 {
            let claimed = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: now)
            let run = try #require(claimed.first)
            runs.append(run.runAt)
            _ = try store.ack(id: "c", attempt: run.attempt, holder: 1, now: now + second)
            now += 2 * second
        }
        #expect(runs == [10, 15, 20].map { t0 + $0 * Self.minute })
        let task = try #require(try store.one("c"))
        #expect(task.runAt == t0 + 25 * Self.minute)
        #expect(task.skippedRuns == 2 && task.lastSkip?.contains("2 over the catch-up maximum") == true)
    }

    @Test(arguments: behaviourKinds)
    func occurrencesOutsideTheWindowAreSkippedAndSaidSo(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(window: 10 * Self.minute), fixture)
        // The window is (+13, +23]: t0, +5, +10 are outside; +15 and +20 are in it, and `one` runs +20.
        let claimed = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max,
                                      now: t0 + 23 * Self.minute)
        let run = try #require(claimed.first)
        #expect(run.runAt == t0 + 20 * Self.minute && run.skippedRuns == 4)
        #expect(run.lastSkip?.contains("3 outside the catch-up window of 600 s, 1 by catch-up one") == true,
                "\(run.lastSkip ?? "nil")")
    }

    /// One occurrence, the latest, but 30 minutes late with a 10-minute window: skipped, not run.
    @Test(arguments: behaviourKinds)
    func aLateOccurrenceOutsideTheWindowIsSkippedEvenWhenItIsTheLatest(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let hourly = Schedule.calendar(CalendarSchedule(syntax: .cron, expression: "0 * * * *",
                                                        catchUpWindowMicros: 10 * Self.minute))
        let store = try Self.storeWith(hourly, fixture)
        #expect(try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max,
                                now: t0 + 30 * Self.minute).isEmpty)
        let task = try #require(try store.one("c"))
        #expect(task.runAt == t0 + 60 * Self.minute && task.skippedRuns == 1)
    }

    @Test(arguments: behaviourKinds)
    func overlapSkipDropsTheOccurrencesDueWhileTheRunHeldItsLease(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(), fixture)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0)
        // Leased ahead of everything else: no other claim gets the task while its run lasts.
        #expect(try store.claim(callbacks: ["cb"], max: 1, holder: 2, leaseDeadline: .max,
                                now: t0 + 11 * Self.minute).isEmpty)
        let next = try #require(try store.ack(id: "c", attempt: 1, holder: 1, now: t0 + 12 * Self.minute))
        #expect(next.runAt == t0 + 15 * Self.minute && next.skippedRuns == 2)
        #expect(next.lastSkip?.contains("overlap skip: 2 occurrences from 2026-01-01T00:05:00Z to "
                                        + "2026-01-01T00:10:00Z fell due") == true, "\(next.lastSkip ?? "nil")")
    }

    @Test(arguments: behaviourKinds)
    func overlapQueueOneRunsTheLatestOccurrenceAtOnce(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(overlap: .queueOne), fixture)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0)
        let next = try #require(try store.ack(id: "c", attempt: 1, holder: 1, now: t0 + 12 * Self.minute))
        #expect(next.runAt == t0 + 10 * Self.minute && next.skippedRuns == 1)
        let again = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max,
                                    now: t0 + 12 * Self.minute)
        #expect(again.map(\.runAt) == [t0 + 10 * Self.minute])
    }

    @Test(arguments: behaviourKinds)
    func overlapAllowRunsEachOccurrenceAsAOneOffTaskOfItsOwn(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try Self.storeWith(Self.every5(overlap: .allow), fixture)
        let first = try #require(try store.claim(callbacks: ["cb"], max: 5, holder: 1, leaseDeadline: .max, now: t0).first)
        #expect(first.id == "c@2026-01-01T00:00:00Z" && first.schedule == .once && first.runAt == t0)
        #expect(first.state == .leased && first.attempt == 1)
        // The task itself moved on at once: its next occurrence is claimed while the first run still runs.
        #expect(try store.one("c")?.runAt == t0 + 5 * Self.minute)
        #expect(try store.one("c")?.state == .scheduled)
        let second = try store.claim(callbacks: ["cb"], max: 5, holder: 2, leaseDeadline: .max, now: t0 + 5 * Self.minute)
        #expect(second.map(\.id) == ["c@2026-01-01T00:05:00Z"])
        // Each run is acknowledged as a one-off task: removed; the task stays.
        #expect(try store.ack(id: first.id, attempt: 1, holder: 1, now: t0 + 6 * Self.minute) == nil)
        #expect(try store.ack(id: "c@2026-01-01T00:05:00Z", attempt: 1, holder: 2, now: t0 + 6 * Self.minute) == nil)
        #expect(try store.fetch(.ids([first.id, "c@2026-01-01T00:05:00Z"])).isEmpty)
        #expect(try store.one("c")?.runAt == t0 + 10 * Self.minute)
        // Catch-up applies as for the other policies: `one` runs the latest missed occurrence, counting the rest.
        let late = try #require(try store.claim(callbacks: ["cb"], max: 5, holder: 1, leaseDeadline: .max,
                                                now: t0 + 23 * Self.minute).first)
        #expect(late.id == "c@2026-01-01T00:20:00Z" && late.runAt == t0 + 20 * Self.minute)
        let task = try #require(try store.one("c"))
        #expect(task.runAt == t0 + 25 * Self.minute && task.skippedRuns == 2)
    }

    @Test(arguments: behaviourKinds)
    func jitterStaysInItsBoundAndBeforeTheNextOccurrence(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([
            spec("fixed", schedule: Self.every5(jitter: 2 * Self.minute, jitterMode: .fixed)),
            spec("wide", schedule: Self.every5(jitter: 60 * Self.minute)),
        ], now: t0)
        let fixed = try #require(try store.one("fixed")).runAt - t0
        #expect(fixed >= 0 && fixed <= 2 * Self.minute)
        let wide = try #require(try store.one("wide")).runAt - t0
        #expect(wide >= 0 && wide < 5 * Self.minute)
        // The next run keeps the fixed delay, and is found from the occurrence, not from the delayed time.
        _ = try store.claim(callbacks: ["cb"], max: 2, holder: 1, leaseDeadline: .max, now: t0 + fixed)
        let next = try #require(try store.ack(id: "fixed", attempt: 1, holder: 1, now: t0 + fixed + second))
        #expect(next.runAt == t0 + 5 * Self.minute + fixed && next.skippedRuns == 0)
    }

    @Test(arguments: behaviourKinds)
    func aRuleWithNoOccurrenceLeftFinishesTheTaskAtItsAck(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let once = Schedule.calendar(CalendarSchedule(syntax: .systemd, expression: "2026-01-01 00:10:00"))
        let store = try Self.storeWith(once, fixture)
        #expect(try store.one("c")?.runAt == t0 + 10 * Self.minute)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: .max, now: t0 + 10 * Self.minute)
        #expect(try store.ack(id: "c", attempt: 1, holder: 1, now: t0 + 11 * Self.minute) == nil)
        #expect(try store.one("c") == nil)
        #expect(try store.earliestRunAt() == nil)
    }

    @Test(arguments: behaviourKinds)
    func theLastAttemptOfAnExpiredLeaseMovesToTheNextOccurrence(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("c", schedule: Self.every5(), maxAttempts: 1)], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 1, holder: 1, leaseDeadline: t0 + second, now: t0)
        let expired = try store.expireLeases(now: t0 + 2 * second)
        #expect(expired.map(\.runAt) == [t0 + 5 * Self.minute])
        #expect(expired.first?.lastError == "lease expired" && expired.first?.state == .scheduled)
    }

    @Test(arguments: behaviourKinds)
    func theRuleAndTheCountersSurviveAReopen(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let berlin = Schedule.calendar(CalendarSchedule(
            syntax: .systemd, expression: "Mon..Fri 09:00", timeZone: "Europe/Berlin", gap: .atChange, fold: .both,
            catchUp: .all, catchUpMaximum: 7, catchUpWindowMicros: 3 * Self.minute, overlap: .queueOne,
            jitterMicros: second, jitterMode: .fixed))
        var store = try fixture.open()
        _ = try store.add([spec("b", schedule: berlin), spec("c", schedule: Self.every5(catchUp: .skip))], now: t0)
        _ = try store.claim(callbacks: ["cb"], max: 5, holder: 1, leaseDeadline: .max, now: t0 + 23 * Self.minute)
        let before = try store.fetch(.ids(["b", "c"]))
        store = try fixture.reopen(store)
        let after = try store.fetch(.ids(["b", "c"]))
        #expect(after == before)
        #expect(after.first { $0.id == "b" }?.schedule == berlin)
        #expect(after.first { $0.id == "c" }?.skippedRuns == 5)
    }
}
