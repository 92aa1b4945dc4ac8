import Glibc
import Logging
import TaskShedProtocol
import Testing
@testable import TaskShedServer

@Suite struct ConfigurationTests {
    @Test(arguments: [("250us", 250), ("500ms", 500_000), ("30s", 30_000_000), ("5m", 300_000_000),
                      ("1h", 3_600_000_000), ("2", 2_000_000), ("1.5s", 1_500_000)] as [(String, Int64)])
    func durationsParse(text: String, micros: Int64) {
        #expect(Configuration.parseDuration(text) == micros)
    }

    @Test(arguments: [("2h30m", 9_000_000_000), ("1d", 86_400_000_000), ("0.2s", 200_000), ("2.5ms", 2_500),
                      ("1.5m", 90_000_000), ("0.000001s", 1), ("1.500000s", 1_500_000), ("0", 0)] as [(String, Int64)])
    func durationsTakeTheCommonSyntaxWithDecimals(text: String, micros: Int64) {
        #expect(Configuration.parseDuration(text) == micros)
    }

    /// Below a microsecond (the resolution) a duration is refused, not rounded (issue 17).
    @Test(arguments: ["1.5us", "0.0000005s", "0.0000001s", "1.2.3s", "5.s", ".5s", "1e3s", "٣s", "+5s"])
    func durationsThatCannotBeRepresentedAreRejected(text: String) {
        #expect(Configuration.parseDuration(text) == nil)
    }

    @Test(arguments: ["", "s", "abc", "10x", "-5s", "1.2.3s", "ms"])
    func badDurationsAreRejected(text: String) {
        #expect(Configuration.parseDuration(text) == nil)
    }

    @Test func durationErrorsSayWhatIsWrong() {
        #expect(throws: DurationSyntaxError(problem: "unknown unit 'x'")) { try Configuration.parseDurationMicros("10x") }
        #expect(throws: DurationSyntaxError(problem: "'1.5us' is not a whole number of microseconds (the resolution is 1us)")) {
            try Configuration.parseDurationMicros("1.5us")
        }
        #expect(throws: DurationSyntaxError(problem: "'5' has no unit")) { try Configuration.parseDurationMicros("1m5") }
    }

    @Test func sizesAndModesParse() {
        #expect(Configuration.parseByteSize("4096") == 4096)
        #expect(Configuration.parseByteSize("64KiB") == 65536)
        #expect(Configuration.parseByteSize("8GiB") == 8 << 30)
        #expect(Configuration.parseByteSize("2M") == 2 << 20)
        #expect(Configuration.parseByteSize("lots") == nil)
        #expect(Configuration.parseByteSize("99999999999999TiB") == nil)
        #expect(Configuration.parseMode("0660") == 0o660)
        #expect(Configuration.parseMode("9") == nil)
    }

    @Test func defaultsFollowTheEnvironment() {
        let systemd = Configuration.defaults(environment: ["STATE_DIRECTORY": "/var/lib/taskshed:/other"], uid: 7)
        #expect(systemd.dataDirectory == "/var/lib/taskshed")
        #expect(systemd.socketPath == "/tmp/taskshed-7/taskshedd.sock")
        let developer = Configuration.defaults(environment: ["HOME": "/home/a", "XDG_RUNTIME_DIR": "/run/user/7"], uid: 7)
        #expect(developer.dataDirectory == "/home/a/.local/state/taskshed")
        #expect(developer.socketPath == "/run/user/7/taskshed/taskshedd.sock")
        let xdg = Configuration.defaults(environment: ["XDG_STATE_HOME": "/s", "TASKSHED_SOCKET": "/x.sock"], uid: 7)
        #expect(xdg.dataDirectory == "/s/taskshed")
        #expect(xdg.socketPath == "/x.sock")
    }

    @Test func validationNamesTheOption() throws {
        var configuration = Configuration(socketPath: "/tmp/x.sock", dataDirectory: "/tmp/data")
        try configuration.validate()
        configuration.maxOutputBytes = 100
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        do {
            try configuration.validate()
        } catch {
            #expect(error.option == "--max-output-bytes")
            #expect(!error.description.contains("\n"))
        }
    }
}

@Suite struct LagRecorderTests {
    @Test func percentilesOfTheRecentWindow() {
        var recorder = LagRecorder(capacity: 100)
        #expect(recorder.summary().count == 0)
        for lag in 1...100 { recorder.record(Int64(lag)) }
        let summary = recorder.summary()
        #expect(summary.count == 100)
        #expect(summary.p50 == 50)
        #expect(summary.p90 == 90)
        #expect(summary.p99 == 99)
        #expect(summary.max == 100)
        // The ring forgets the oldest samples.
        for _ in 1...100 { recorder.record(7) }
        #expect(recorder.summary().max == 7)
        recorder.record(-5)
        #expect(recorder.summary().p50 == 7)
    }
}

@Suite struct StderrLogHandlerTests {
    @Test func interactiveLinesCarryTimeLevelAndSortedMetadata() {
        let handler = StderrLogHandler(label: "taskshedd", level: .info, journalFormat: false)
        let line = handler.format(level: .warning, message: "slow consumer\nsecond line",
                                  metadata: ["b": "2", "a": "x y"])
        #expect(line.hasSuffix(" warning taskshedd: slow consumer second line a=\"x y\" b=2"))
        #expect(line.hasPrefix("20"))
        #expect(line.contains("T"))
    }

    @Test func journalLinesCarryPriorities() {
        let handler = StderrLogHandler(label: "taskshedd", level: .info, journalFormat: true)
        #expect(handler.format(level: .error, message: "x", metadata: [:]) == "<3>x")
        #expect(handler.format(level: .info, message: "y", metadata: ["k": "v"]) == "<6>y k=v")
        #expect(StderrLogHandler.runsUnderSystemd(environment: ["JOURNAL_STREAM": "8:1"]))
        #expect(!StderrLogHandler.runsUnderSystemd(environment: [:]))
    }
}

@Suite struct SystemdNotifierTests {
    @Test func watchdogIntervalIsHalfAndOnlyForThisProcess() {
        let mine = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000",
                                                 "WATCHDOG_PID": "\(getpid())"], pid: getpid())
        #expect(mine.isEnabled)
        #expect(mine.watchdogPingIntervalMicros == 15_000_000)
        let other = SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"], pid: getpid())
        #expect(other.watchdogPingIntervalMicros == nil)
        #expect(!other.isEnabled)
        #expect(other.notify("READY=1") == nil)
        let relative = SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"], pid: 1)
        #expect(!relative.isEnabled)
    }
}

@Suite struct RequestValidationTests {
    let validation = RequestValidation(maxBatch: 5, maxKwargsBytes: 32)

    @Test func kwargsLimitAndUTF8() {
        let big = TaskSpec(callback: "cb", kwargs: Array(("{\"a\":\"" + String(repeating: "x", count: 40) + "\"}").utf8))
        #expect(throws: RequestError.self) { try validation.addTasks(AddTasks(tasks: [big])) }
        let badUTF8 = TaskSpec(callback: "cb", kwargs: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D])
        #expect(throws: RequestError.self) { try validation.addTasks(AddTasks(tasks: [badUTF8])) }
        let fine = TaskSpec(callback: "cb", kwargs: Array("{\"a\":1}".utf8))
        #expect(throws: Never.self) { try validation.addTasks(AddTasks(tasks: [fine])) }
    }

    @Test func leaseReferencesNeedADeliveredAttempt() {
        do {
            try validation.lease(LeaseRef(id: "t", attempt: 0), "")
            Issue.record("attempt 0 accepted")
        } catch {
            #expect(error.reply.field == "attempt")
        }
        do {
            try validation.lease(LeaseRef(id: "", attempt: 1), "lease")
            Issue.record("empty id accepted")
        } catch {
            #expect(error.reply.field == "lease.id")
        }
    }
}
