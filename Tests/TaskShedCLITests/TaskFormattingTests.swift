import Foundation
import TaskShedProtocol
import Testing

@testable import TaskShedCLI

@Suite("Task and stats formatting")
struct TaskFormattingTests {
    let now = utc(2026, 11, 29, 10, 0)
    var context: TimeContext { TimeContext(nowMicros: now, timeZone: zone("Europe/Berlin")) }

    func record(
        id: String = "t1", runAt: Int64, schedule: Schedule = .once, paused: Bool = false, coalesce: Bool = true,
        state: TaskState = .scheduled, group: String? = nil, lastError: String? = nil, lastFailureAt: Int64? = nil
    ) -> TaskRecord {
        TaskRecord(
            id: id, callback: "backup", runAt: runAt, schedule: schedule, kwargs: Array(#"{"path":"/srv"}"#.utf8),
            group: group, paused: paused, pausedAt: paused ? now - 5_000_000 : nil, coalesce: coalesce, state: state,
            attempt: state == .dead ? 3 : 0, maxAttempts: 0, leaseDeadline: nil, lastError: lastError,
            createdAt: now - 60_000_000, lastRunAt: nil, lastFailureAt: lastFailureAt)
    }

    @Test func statusDerivesDueAndPaused() {
        #expect(TaskFormatting.status(of: record(runAt: now + 1), nowMicros: now) == "pending")
        #expect(TaskFormatting.status(of: record(runAt: now), nowMicros: now) == "due")
        #expect(TaskFormatting.status(of: record(runAt: now - 1, paused: true), nowMicros: now) == "paused")
        #expect(TaskFormatting.status(of: record(runAt: now, state: .leased), nowMicros: now) == "leased")
        #expect(TaskFormatting.status(of: record(runAt: now, paused: true, state: .dead), nowMicros: now) == "dead")
    }

    @Test func taskTableShowsLocalTimesWithHints() {
        let tasks = [
            record(id: "a", runAt: now + 250_000_000, group: "ops"),
            record(id: "recurring-1", runAt: now - 3_000_000, schedule: .interval(micros: 300_000_000), coalesce: false),
        ]
        #expect(
            TaskFormatting.table(tasks, context: context) == """
                ID           CALLBACK  STATUS   LAST  NEXT RUN                         SCHEDULE               GROUP
                a            backup    pending  -     2026-11-29 11:04:10 (in 4m 10s)  once                   ops
                recurring-1  backup    due      -     2026-11-29 10:59:57 (3s ago)     every 5m, no coalesce  -

                """)
    }

    @Test func deadLetterTableShowsTheFirstLineOfTheError() {
        let long = String(repeating: "x", count: 80)
        let tasks = [
            record(id: "d1", runAt: now, state: .dead, lastError: "exit status 3: disk full\nmore", lastFailureAt: now - 2_000_000),
            record(id: "d2", runAt: now, state: .dead, lastError: long, lastFailureAt: nil),
        ]
        let text = TaskFormatting.deadLetterTable(tasks, context: context)
        #expect(text.contains("d1  backup           3  2026-11-29 10:59:58 (2s ago)  exit status 3: disk full\n"))
        #expect(text.contains("d2  backup           3  -                             " + String(repeating: "x", count: 57) + "...\n"))
    }

    @Test func detailListsEveryField() {
        let text = TaskFormatting.detail(record(runAt: now + 90_000_000, paused: true, lastError: "a\nb"), context: context)
        #expect(text.contains("id:            t1\n"))
        #expect(text.contains("status:        paused\n"))
        #expect(text.contains("next run:      2026-11-29 11:01:30 (in 1m 30s)\n"))
        #expect(text.contains("kwargs:        {\"path\":\"/srv\"}\n"))
        #expect(text.contains("attempt:       0 (max default)\n"))
        #expect(text.contains("paused at:     2026-11-29 10:59:55 (5s ago)\n"))
        #expect(text.contains("last error:    a ⏎ b\n"))
        #expect(text.contains("lease until:   -\n"))
    }

    @Test func taskJSONHasTheDocumentedFields() {
        let json = TaskFormatting.json(
            record(runAt: utc(2026, 11, 29, 10, 5, us: 250), schedule: .interval(micros: 90_000_000), group: "ops"),
            nowMicros: now
        ).render(indent: nil)
        #expect(
            json == #"{"id":"t1","callback":"backup","status":"pending","state":"scheduled","#
                + #""run_at":"2026-11-29T10:05:00.000250Z","run_at_us":1795946700000250,"schedule":"interval","#
                + #""interval":"1m30s","interval_us":90000000,"coalesce":true,"kwargs":{"path":"/srv"},"group":"ops","#
                + #""paused":false,"paused_at":null,"paused_at_us":null,"attempt":0,"max_attempts":null,"#
                + #""lease_deadline":null,"lease_deadline_us":null,"last_error":null,"#
                + #""created_at":"2026-11-29T09:59:00.000000Z","created_at_us":1795946340000000,"#
                + #""last_run_at":null,"last_run_at_us":null,"last_failure_at":null,"last_failure_at_us":null,"#
                + #""calendar":null,"skipped_runs":0,"last_skip":null,"next_runs":[],"last_outcome":null}"#)
        let parsed = try? JSONSerialization.jsonObject(with: Data(json.utf8))
        #expect(parsed is [String: Any])
    }

    @Test func kwargsThatAreNotAnObjectAreEmbeddedAsAString() {
        #expect(TaskFormatting.kwargsJSON(Array("[1]".utf8)) == .string("[1]"))
        #expect(TaskFormatting.kwargsJSON([]) == .raw("{}"))
    }

    var stats: Stats {
        Stats(
            serverVersion: "0.1.0", serverTime: now, startedAt: now - 7_384_000_000, pending: 12, due: 1, paused: 2,
            leased: 3, dead: 0, waitingForWorker: 1, nextWakeup: now + 4_000_000, connections: 3,
            callbacks: [
                CallbackStats(callback: "backup", scheduled: 10, due: 0, leased: 3, dead: 0, workers: 2),
                CallbackStats(callback: "report", scheduled: 5, due: 1, leased: 0, dead: 0, workers: 0),
            ],
            storeFileBytes: 1_572_864, storeMapBytes: 8_388_608, storeUsedBytes: 1_258_291,
            lag: LagSummary(count: 1000, p50: 85, p90: 120, p99: 300, max: 1200))
    }

    @Test func statsTextSummarisesTheDaemon() {
        let text = StatsFormatting.text(stats, socketPath: "/run/t.sock", context: context)
        #expect(
            text == """
                daemon:        taskshedd 0.1.0 at /run/t.sock
                uptime:        2h 3m (since 2026-11-29 08:56:56)
                tasks:         12 pending, 1 due, 2 paused, 3 leased, 0 dead
                waiting:       1 due task has no connected worker for the callback
                next wake-up:  2026-11-29 11:00:04 (in 4s)
                connections:   3
                store:         1.20 MiB used of a 8.00 MiB map, file 1.50 MiB
                lag:           p50 85us, p90 120us, p99 300us, max 1.20ms (1000 recent runs)

                CALLBACK  SCHEDULED  DUE  LEASED  DEAD  WORKERS
                backup           10    0       3     0        2
                report            5    1       0     0        0

                """)
    }

    @Test func statsJSONHasTheDocumentedFields() throws {
        let json = StatsFormatting.json(stats, socketPath: "/run/t.sock").render()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == [
            "server_version", "socket", "server_time", "server_time_us", "started_at", "started_at_us", "uptime_us",
            "tasks", "waiting_for_worker", "next_wakeup", "next_wakeup_us", "connections", "callbacks", "store", "lag",
        ])
        #expect((object["lag"] as? [String: Any])?["p99_us"] as? Int == 300)
        #expect((object["callbacks"] as? [[String: Any]])?.last?["workers"] as? Int == 0)
        #expect(object["uptime_us"] as? Int == 7_384_000_000)
    }

    @Test(arguments: [(UInt64(0), "0 B"), (1023, "1023 B"), (1536, "1.50 KiB"), (8_388_608, "8.00 MiB")])
    func byteCounts(_ count: UInt64, _ expected: String) {
        #expect(StatsFormatting.bytes(count) == expected)
    }

    @Test func cursorsRoundTripAsHex() {
        let bytes: [UInt8] = [0, 1, 0xAB, 0xFF]
        #expect(CursorText.encode(bytes) == "0001abff")
        #expect(CursorText.decode("0001ABff") == bytes)
        #expect(CursorText.decode("abc") == nil)
        #expect(CursorText.decode("zz") == nil)
        #expect(CursorText.decode("") == nil)
    }
}

@Suite("Kwargs input and errors")
struct KwargsAndErrorTests {
    @Test func kwargsComeInlineFromAFileOrStandardInput() throws {
        #expect(try KwargsInput.read(#"{"a": 1}"#) { [] } == Array(#"{"a": 1}"#.utf8))
        #expect(try KwargsInput.read("-") { Array("{}\n".utf8) } == Array("{}".utf8))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kwargs-\(getpid()).json").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(#"{"f": true}"#.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try KwargsInput.read("@" + path) { [] } == Array(#"{"f": true}"#.utf8))
    }

    @Test(arguments: ["[1, 2]", "nope", "\"text\"", "@/nonexistent/kwargs.json", "{\"a\":}"])
    func badKwargsAreDataErrors(_ argument: String) {
        #expect {
            _ = try KwargsInput.read(argument) { [] }
        } throws: { error in
            (error as? CLIError)?.status == .dataError && (error as? CLIError)?.message.hasPrefix("--kwargs") == true
        }
    }

    @Test func protocolErrorsMapToDocumentedStatuses() {
        #expect(ExitStatus.forProtocolError(.taskNotFound) == .notFound)
        #expect(ExitStatus.forProtocolError(.invalidArgument) == .usage)
        #expect(ExitStatus.forProtocolError(.permissionDenied) == .permissionDenied)
        #expect(ExitStatus.forProtocolError(.shuttingDown) == .unavailable)
        #expect(ExitStatus.forProtocolError(.storeFull) == .temporaryFailure)
        #expect(ExitStatus.forProtocolError(.internalError) == .software)
        #expect(ExitStatus.forProtocolError(.taskExists) == .exists)
    }

    @Test func missingSocketSaysHowToStartTheDaemon() {
        let error = ConnectionDiagnosis.diagnose(path: "/nonexistent-dir/taskshedd.sock")
        #expect(error.status == .unavailable)
        #expect(error.message.contains("/nonexistent-dir/taskshedd.sock"))
        #expect(error.message.contains("start the daemon"))
        #expect(!error.message.contains("\n"))
    }

    @Test func aFileThatIsNotASocketIsAUsageError() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-socket-\(getpid())").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = ConnectionDiagnosis.diagnose(path: path)
        #expect(error.status == .usage)
        #expect(error.message.contains("not a socket"))
    }

    @Test func aStaleSocketIsReportedAsNothingListening() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stale-\(getpid()).sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)
        defer { unlink(path) }
        let error = ConnectionDiagnosis.diagnose(path: path)
        #expect(error.status == .unavailable)
        #expect(error.message.contains("nothing is listening"))
    }

    @Test func groupAdviceNamesTheOwningGroup() {
        var info = stat()
        #expect(stat("/tmp", &info) == 0)
        let name = getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "?"
        #expect(ConnectionDiagnosis.groupAdvice(forPath: "/tmp").contains("join group '\(name)'"))
    }
}
