import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Calendar tasks through a real daemon over the raw protocol: refusals at the add (each naming its field), what
/// a version 2 connection sees, deliveries at each occurrence, and catch-up across a daemon restart.
@Suite struct CalendarScheduleTests {
    static func calendar(
        _ expression: String, syntax: CalendarSchedule.Syntax = .systemd, zone: String = "",
        catchUp: CalendarSchedule.CatchUp = .one, maximum: UInt32 = 0,
        window: Int64 = CalendarSchedule.defaultCatchUpWindowMicros, jitter: Int64 = 0
    ) -> Schedule {
        .calendar(CalendarSchedule(syntax: syntax, expression: expression, timeZone: zone, catchUp: catchUp,
                                   catchUpMaximum: maximum, catchUpWindowMicros: window, jitterMicros: jitter))
    }

    /// The ERROR a version 3 connection gets for adding `spec`.
    static func refusal(_ spec: TaskSpec, _ daemon: DaemonProcess) throws -> ErrorReply? {
        let client = try Client(path: daemon.socketPath, version: 3)
        guard case .error(let error) = try client.call(.addTasks(AddTasks(tasks: [spec]))) else { return nil }
        return error
    }

    @Test func everyBadCalendarScheduleIsRefusedAtTheAddNamingItsField() throws {
        let daemon = try DaemonProcess()
        let cases: [(TaskSpec, String, String)] = [
            (task("a", schedule: Self.calendar("61 * * * *", syntax: .cron)), "tasks[0].schedule",
             #"minute: "61" is out of range 0…59"#),
            (task("a", schedule: Self.calendar("0 0 30 2 *", syntax: .cron)), "tasks[0].schedule", "never matches"),
            (task("a", schedule: Self.calendar("0 0 * * * *", syntax: .cron)), "tasks[0].schedule", "6 fields"),
            (task("a", schedule: Self.calendar("daily", zone: "Mars/Olympus")), "tasks[0].schedule",
             #""Mars/Olympus" is not a zone"#),
            (task("a", schedule: Self.calendar("2020-01-01 00:00:00")), "tasks[0].schedule", "has no occurrence at or after"),
            (task("a", schedule: Self.calendar("daily", catchUp: .all)), "tasks[0].schedule",
             "catch_up all needs catch_up_max 1 … 1000, got 0"),
            (task("a", schedule: Self.calendar("daily", maximum: 5)), "tasks[0].schedule",
             "catch_up_max applies to catch_up all only"),
            (task("a", schedule: Self.calendar("daily", window: 999_999)), "tasks[0].schedule",
             "catch_up_window must be 1000000 … "),
            (task("a", schedule: Self.calendar("daily", jitter: -1)), "tasks[0].schedule", "jitter must be 0 … "),
            (task("a", schedule: Self.calendar("")), "tasks[0].schedule", "the calendar expression must be 1 … 1024 bytes"),
            (task("a", schedule: Self.calendar("daily"), coalesce: false), "tasks[0].coalesce",
             "coalesce applies to interval schedules"),
            (task(String(repeating: "x", count: 235),
                  schedule: .calendar(CalendarSchedule(syntax: .systemd, expression: "daily", overlap: .allow))),
             "tasks[0].schedule", "overlap allow names each run ID@OCCURRENCE, so the id must be at most 234 bytes"),
        ]
        for (spec, field, message) in cases {
            let error = try #require(try Self.refusal(spec, daemon), "accepted: \(spec.schedule)")
            #expect(error.code == .invalidArgument && error.field == field, "\(error)")
            #expect(error.message.contains(message), "\(error.message)")
        }
        // Nothing was stored, and the daemon serves on.
        let client = try Client(path: daemon.socketPath, version: 3)
        #expect(try client.fetch(["a"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    @Test func aVersion2ConnectionCannotAddACalendarTaskAndSeesOneAsOnce() throws {
        let daemon = try DaemonProcess()
        let v3 = try Client(path: daemon.socketPath, version: 3)
        try v3.add([task("cal", runAt: nowMicros() + 3_600_000_000, schedule: Self.calendar("hourly"))])
        let v2 = try Client(path: daemon.socketPath, version: 2)
        let reply = try v2.call(.addTasks(AddTasks(tasks: [task("x", schedule: Self.calendar("hourly"))])))
        guard case .error(let error) = reply else {
            Issue.record("a version 2 ADD_TASKS with a calendar schedule was answered \(reply)")
            return
        }
        #expect(error.code == .malformedMessage && error.field == "tasks[0].schedule.kind", "\(error)")
        #expect(error.message.contains("calendar schedules need version 3"), "\(error.message)")
        // The stream survives the refusal; the calendar task reads as a one-off task there, without counters.
        let seen = try #require(try v2.fetch(["cal"]).first)
        #expect(seen.schedule == .once)
        let full = try #require(try v3.fetch(["cal"]).first)
        #expect(full.schedule == Self.calendar("hourly") && full.runAt == seen.runAt)
        #expect(try daemon.stop() == 0)
    }

    @Test func aCalendarTaskIsDeliveredAtEachOccurrence() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(path: daemon.socketPath, version: 3)
        let worker = try Client(path: daemon.socketPath, version: 3)
        try worker.subscribe(["tick"])
        try scheduler.add([task("t", callback: "tick", schedule: Self.calendar("*:*:*"))])
        var runs: [Int64] = []
        for _ in 0..<3 {
            let delivery = try #require(try worker.nextDelivery(timeout: 15), "no delivery after \(runs)")
            runs.append(delivery.runAt)
            #expect(delivery.runAt % 1_000_000 == 0, "not on a whole second: \(delivery.runAt)")
            #expect(try worker.ack(delivery) == .ok)
        }
        #expect(zip(runs, runs.dropFirst()).allSatisfy { $1 > $0 }, "\(runs)")
        let stored = try #require(try scheduler.fetch(["t"]).first)
        #expect(stored.runAt > runs.last! && stored.state == .scheduled)
        #expect(try daemon.stop() == 0)
    }

    /// Three tasks on the same every-second rule, one per catch-up policy, while the daemon is down for about
    /// four seconds; each does what its policy says when a worker connects to the restarted daemon.
    @Test func aDaemonDownAcrossOccurrencesCatchesUpByEachPolicy() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(path: daemon.socketPath, version: 3)
        let start = (nowMicros() / 1_000_000 + 2) * 1_000_000
        try scheduler.add([
            task("skip", callback: "skip", runAt: start, schedule: Self.calendar("*:*:*", catchUp: .skip)),
            task("one", callback: "one", runAt: start, schedule: Self.calendar("*:*:*", catchUp: .one)),
            task("all", callback: "all", runAt: start, schedule: Self.calendar("*:*:*", catchUp: .all, maximum: 2)),
        ])
        #expect(try daemon.stop() == 0)
        // Down until well past the first occurrences: at least four of them are missed.
        while nowMicros() < start + 4_500_000 { usleep(50_000) }
        try daemon.restart()
        let restartedAt = nowMicros()
        let worker = try Client(path: daemon.socketPath, version: 3)
        try worker.subscribe(["skip", "one", "all"], concurrency: 10)
        var first: [String: [TaskRecord]] = [:]
        let deadline = monotonic() + 15
        while (first["all"]?.count ?? 0) < 2 || first["one"] == nil || first["skip"] == nil, monotonic() < deadline {
            guard let delivery = try worker.nextDelivery(timeout: 5) else { break }
            first[delivery.id, default: []].append(delivery)
            #expect(try worker.ack(delivery) == .ok)
        }
        // one: a single run for everything missed, at the latest missed occurrence, the rest counted.
        let one = try #require(first["one"]?.first)
        #expect(one.runAt <= nowMicros() && one.runAt >= start + 4_000_000, "\(one.runAt - start)")
        #expect(one.skippedRuns >= 4 && one.lastSkip?.contains("by catch-up one") == true, "\(one)")
        // skip: nothing missed runs; its first run is an occurrence after the restart.
        let skip = try #require(first["skip"]?.first)
        #expect(skip.runAt > restartedAt - 1_000_000, "\(skip.runAt - restartedAt)")
        #expect(skip.skippedRuns >= 5 && skip.lastSkip?.contains("by catch-up skip") == true, "\(skip)")
        // all (max 2): the two latest missed occurrences, one after the other.
        let all = try #require(first["all"])
        try #require(all.count >= 2)
        #expect(all[1].runAt == all[0].runAt + 1_000_000 && all[0].runAt >= start + 3_000_000, "\(all.map(\.runAt))")
        #expect(all[0].skippedRuns >= 3 && all[0].lastSkip?.contains("over the catch-up maximum") == true)
        #expect(try daemon.stop() == 0)
    }
}
