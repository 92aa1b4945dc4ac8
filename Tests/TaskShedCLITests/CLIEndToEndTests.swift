import Foundation
import Glibc
import TaskShed
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// `taskshedctl` as a subprocess against a real `taskshedd`, one daemon per test.
@Suite("taskshedctl end to end", .serialized)
struct CLIEndToEndTests {
    /// A daemon and a way to run the CLI against it.
    final class Harness: @unchecked Sendable {
        let daemon: DaemonProcess
        let scratch: String

        init(daemonArguments: [String] = []) throws {
            daemon = try DaemonProcess(arguments: daemonArguments)
            scratch = try TemporaryDirectory.create(prefix: "ctl")
        }

        deinit {
            daemon.kill()
            TemporaryDirectory.remove(scratch)
        }

        func ctl(_ arguments: String..., stdin: String = "") async throws -> CLIResult {
            try await CLIProcess.run(arguments + ["--socket", daemon.socketPath], stdin: stdin)
        }

        func json(_ arguments: String...) async throws -> [String: Any] {
            let result = try await CLIProcess.run(arguments + ["--socket", daemon.socketPath, "--json"])
            #expect(result.status == 0, "\(arguments): \(result)")
            return try result.jsonObject()
        }

        func tasks(_ arguments: String...) async throws -> [[String: Any]] {
            let result = try await CLIProcess.run(["list"] + arguments + ["--socket", daemon.socketPath, "--json"])
            #expect(result.status == 0, "\(result)")
            return (try result.jsonObject()["tasks"] as? [[String: Any]]) ?? []
        }

        func startWorker(_ arguments: String...) throws -> CLIProcess {
            try CLIProcess(["worker", "--socket", daemon.socketPath] + arguments, environment: ["OUT": scratch])
        }

        /// Waits until the daemon counts a connected worker for `callback`.
        func waitForWorker(_ callback: String) async throws -> Bool {
            try await eventually {
                let stats = try await json("stats")
                let entries = stats["callbacks"] as? [[String: Any]] ?? []
                return entries.contains { $0["callback"] as? String == callback && ($0["workers"] as? Int ?? 0) > 0 }
            }
        }

        func file(_ name: String) -> String? {
            FileManager.default.contents(atPath: scratch + "/" + name).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test func theCLIAndTheDaemonItTalksToShareOneVersion() async throws {
        let printed = try await CLIProcess.run(["--version"])
        #expect(printed.status == 0)
        #expect(printed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == TaskShedVersion.current)
        #expect(TaskShedLibrary.version == TaskShedVersion.current)
        let h = try Harness()
        let stats = try await h.json("stats")
        #expect(stats["server_version"] as? String == TaskShedVersion.current, "\(stats)")
    }

    @Test func pingAndStatsDescribeTheDaemon() async throws {
        let h = try Harness()
        let ping = try await h.ctl("ping")
        #expect(ping.status == 0, "\(ping)")
        #expect(ping.stdout.contains("taskshedd at \(h.daemon.socketPath) answered in"))
        let pingJSON = try await h.json("ping")
        #expect(pingJSON["round_trip_us"] is Int)
        #expect((pingJSON["server_time"] as? String)?.hasSuffix("Z") == true)

        _ = try await h.ctl("add", "cb", "--in", "1h")
        let stats = try await h.ctl("stats")
        #expect(stats.status == 0, "\(stats)")
        for label in ["daemon:", "uptime:", "tasks:", "waiting:", "next wake-up:", "lag:", "CALLBACK"] {
            #expect(stats.stdout.contains(label), "stats lacks \(label): \(stats.stdout)")
        }
        #expect(stats.stdout.contains("1 pending"))
        let status = try await h.json("status")
        #expect((status["tasks"] as? [String: Any])?["pending"] as? Int == 1)
        #expect(status["next_wakeup_us"] is Int)
        #expect((status["callbacks"] as? [[String: Any]])?.first?["callback"] as? String == "cb")
        // The embedded store is not shared: no daemons table in stats, and one daemon, this one, listed.
        #expect(!stats.stdout.contains("DAEMON"))
        #expect(status["daemons"] == nil)
        let daemons = try await h.ctl("daemons")
        #expect(daemons.status == 0, "\(daemons)")
        #expect(daemons.stdout.contains("DAEMON") && daemons.stdout.contains(" \(h.daemon.pid) "), "\(daemons.stdout)")
        let listed = try await CLIProcess.run(["daemons", "--socket", h.daemon.socketPath, "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(entries.count == 1)
        #expect(entries.first?["pid"] as? Int == Int(h.daemon.pid))
        #expect(entries.first?["this_daemon"] as? Bool == true)
    }

    @Test func statsOnASharedDatastoreListsItsDaemons() async throws {
        let connection = try PostgresTestServer.sharedConnectionString()
        let schema = PostgresTestServer.uniqueSchemaName("ctl")
        defer { _ = try? PostgresTestServer.psql(connection, "DROP SCHEMA IF EXISTS \(schema) CASCADE") }
        let arguments = ["--datastore", "postgresql:" + connection, "--schema", schema]
        let first = try DaemonProcess(arguments: arguments + ["--daemon-name", "ctl-first"])
        let second = try DaemonProcess(arguments: arguments + ["--daemon-name", "ctl-second"])
        let stats = try await CLIProcess.run(["stats", "--socket", second.socketPath])
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.stdout.contains("shared database"), "\(stats.stdout)")
        let lines = stats.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("ctl-first") && $0.contains(" \(first.pid) ") && !$0.hasPrefix("*") })
        #expect(lines.contains { $0.hasPrefix("* ctl-second") && $0.contains(" \(second.pid) ") }, "\(stats.stdout)")
        let json = try await CLIProcess.run(["stats", "--socket", first.socketPath, "--json"])
        let daemons = try #require(try json.jsonObject()["daemons"] as? [[String: Any]])
        #expect(daemons.compactMap { $0["name"] as? String } == ["ctl-first", "ctl-second"])
        #expect(daemons.compactMap { $0["this_daemon"] as? Bool } == [true, false])
        #expect(try first.stop() == 0)
        #expect(try second.stop() == 0)
    }

    @Test func addShowPauseResumeRescheduleRemove() async throws {
        let h = try Harness()
        let add = try await h.ctl(
            "add", "backup", "--in", "1h", "--id", "job-1", "--group", "ops", "--kwargs", #"{"path": "/srv"}"#,
            "--max-attempts", "5")
        #expect(add.status == 0, "\(add)")
        #expect(add.stdout == "job-1\n")
        #expect(add.stderr.contains("warning: no connected worker serves callback 'backup'"))

        let shown = try await h.json("show", "job-1")
        #expect(shown["callback"] as? String == "backup")
        #expect(shown["status"] as? String == "pending")
        #expect(shown["group"] as? String == "ops")
        #expect((shown["kwargs"] as? [String: Any])?["path"] as? String == "/srv")
        #expect(shown["max_attempts"] as? Int == 5)
        let runAt = try #require(shown["run_at_us"] as? Int)
        #expect(abs(runAt - Int(Date().timeIntervalSince1970 * 1_000_000) - 3_600_000_000) < 60_000_000)

        let text = try await h.ctl("show", "job-1")
        #expect(text.stdout.contains("status:        pending"))
        #expect(text.stdout.contains("(in 59m") || text.stdout.contains("(in 1h"))

        let paused = try await h.ctl("pause", "job-1")
        #expect(paused.stdout == "paused 1 task\n", "\(paused)")
        #expect(try await h.tasks("--state", "paused").count == 1)
        let resumed = try await h.ctl("resume", "--group", "ops")
        #expect(resumed.stdout == "resumed 1 task\n", "\(resumed)")
        #expect(try await h.tasks("--state", "paused").isEmpty)

        let moved = try await h.ctl("reschedule", "job-1", "2030-01-02T03:04:05Z")
        #expect(moved.status == 0, "\(moved)")
        #expect(try await h.json("show", "job-1")["run_at"] as? String == "2030-01-02T03:04:05.000000Z")

        // Local times follow TZ: noon in New York in July is 16:00 UTC.
        let local = try await CLIProcess.run(
            ["reschedule", "job-1", "2030-07-01 12:00", "--socket", h.daemon.socketPath],
            environment: ["TZ": "America/New_York"])
        #expect(local.status == 0, "\(local)")
        #expect(local.stdout.hasPrefix("rescheduled job-1 to 2030-07-01 12:00:00 (in "), "\(local)")
        #expect(try await h.json("show", "job-1")["run_at"] as? String == "2030-07-01T16:00:00.000000Z")

        let fromStdin = try await h.ctl("add", "backup", "--id", "job-2", "--kwargs", "-", "--json", stdin: #"{"from": "stdin"}"#)
        #expect(fromStdin.status == 0, "\(fromStdin)")
        #expect(try fromStdin.jsonObject()["outcome"] as? String == "inserted")
        #expect((try await h.json("show", "job-2")["kwargs"] as? [String: Any])?["from"] as? String == "stdin")
        #expect(try await h.json("remove", "job-2")["affected"] as? Int == 1)

        let removed = try await h.json("remove", "job-1")
        #expect(removed["affected"] as? Int == 1)
        let gone = try await h.ctl("show", "job-1")
        #expect(gone.status == 66, "\(gone)")
        #expect(gone.stderr.hasPrefix("taskshedctl: no task with id 'job-1'"))
        #expect(gone.stderr.split(separator: "\n").count == 1)
    }

    @Test func aCalendarTaskIsAddedShownWithItsNextRunsAndRefusedWhenItsRuleIsBad() async throws {
        let h = try Harness()
        let add = try await h.ctl("add", "standup", "--cron", "0 9 * * MON-FRI", "--tz", "America/New_York",
                                  "--id", "standup", "--catch-up", "skip", "--jitter", "30s", "--jitter-fixed")
        #expect(add.status == 0 && add.stdout == "standup\n", "\(add)")
        let shown = try await h.json("show", "standup")
        #expect(shown["schedule"] as? String == "calendar")
        let calendar = try #require(shown["calendar"] as? [String: Any])
        #expect(calendar["expression"] as? String == "0 9 * * MON-FRI")
        #expect(calendar["time_zone"] as? String == "America/New_York")
        #expect(calendar["catch_up"] as? String == "skip" && calendar["jitter_mode"] as? String == "fixed")
        let runs = try #require(shown["next_runs"] as? [String])
        #expect(runs.count == 5 && runs.first == shown["run_at"] as? String, "\(runs)")
        // 09:00 New York is 13:00 or 14:00 UTC; the first run carries the fixed jitter, the rule's next ones not.
        for run in runs.dropFirst() {
            #expect(run.hasSuffix("T13:00:00.000000Z") || run.hasSuffix("T14:00:00.000000Z"), "\(runs)")
        }
        #expect(shown["skipped_runs"] as? Int == 0)
        let text = try await h.ctl("show", "standup")
        #expect(text.stdout.contains("schedule:      cron 0 9 * * MON-FRI America/New_York"), "\(text)")
        #expect(text.stdout.contains("policies:      gap shift, fold first, catch-up skip, window 1h, overlap skip, "
                                     + "jitter 30s fixed"), "\(text)")
        #expect(text.stdout.contains("then:          "), "\(text)")

        let bad = try await h.ctl("add", "x", "--cron", "0 9 * * FUNDAY")
        #expect(bad.status != 0 && bad.stderr.contains("tasks[0].schedule") && bad.stderr.contains("FUNDAY"), "\(bad)")
        #expect(try await h.tasks().count == 1)
    }

    @Test func listFiltersAndPages() async throws {
        let h = try Harness()
        for index in 1...5 {
            let add = try await h.ctl(
                "add", index <= 3 ? "alpha" : "beta", "--in", "\(index)m", "--id", "t\(index)",
                "--group", index % 2 == 0 ? "even" : "odd")
            #expect(add.status == 0, "\(add)")
        }
        _ = try await h.ctl("add", "alpha", "--in", "10m", "--id", "t6", "--paused")

        #expect(try await h.tasks().map { $0["id"] as? String } == ["t1", "t2", "t3", "t4", "t5", "t6"])
        #expect(try await h.tasks("--callback", "beta").map { $0["id"] as? String } == ["t4", "t5"])
        #expect(try await h.tasks("--group", "even").map { $0["id"] as? String } == ["t2", "t4"])
        #expect(try await h.tasks("--state", "paused").map { $0["id"] as? String } == ["t6"])
        #expect(try await h.tasks("--due-before", "+150s").map { $0["id"] as? String } == ["t1", "t2"])
        #expect(try await h.tasks("--due-after", "+150s", "--state", "pending").map { $0["id"] as? String } == ["t3", "t4", "t5"])

        let first = try await h.ctl("list", "--limit", "2")
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout.split(separator: "\n").count == 3)
        #expect(first.stdout.hasPrefix("ID  CALLBACK  STATUS   LAST  NEXT RUN"))
        let hint: String? = first.stderr.split(separator: "`").map(String.init)
            .first { $0.hasPrefix("taskshedctl list --cursor ") }
        let cursor = try #require(hint?.split(separator: " ").last.map(String.init), "\(first)")
        let second = try await h.json("list", "--limit", "2", "--cursor", cursor)
        #expect((second["tasks"] as? [[String: Any]])?.map { $0["id"] as? String } == ["t3", "t4"])
        #expect(second["next_cursor"] is String)
        let all = try await h.json("list", "--limit", "2", "--all")
        #expect((all["tasks"] as? [[String: Any]])?.count == 6)
        #expect(all["next_cursor"] is NSNull)

        let empty = try await h.ctl("list", "--callback", "nobody")
        #expect(empty.stdout == "No tasks.\n")
    }

    @Test func keepExistingLeavesTheTaskAndReplaceChangesIt() async throws {
        let h = try Harness()
        _ = try await h.ctl("add", "cb", "--id", "same", "--in", "1h")
        let kept = try await h.ctl("add", "cb", "--id", "same", "--in", "2h", "--keep-existing", "--json")
        #expect(kept.status == 0)
        #expect(try kept.jsonObject()["outcome"] as? String == "kept")
        #expect(kept.stderr.contains("it was left unchanged"))
        let replaced = try await h.json("add", "other", "--id", "same", "--every", "5m", "--no-coalesce")
        #expect(replaced["outcome"] as? String == "replaced")
        let shown = try await h.json("show", "same")
        #expect(shown["callback"] as? String == "other")
        #expect(shown["interval_us"] as? Int == 300_000_000)
        #expect(shown["coalesce"] as? Bool == false)
    }

    @Test func errorsAreOneLineWithDocumentedStatuses() async throws {
        let h = try Harness()
        let noDaemon = try await CLIProcess.run(["ping", "--socket", h.scratch + "/none.sock"])
        #expect(noDaemon.status == 69, "\(noDaemon)")
        #expect(noDaemon.stderr.contains("cannot connect to \(h.scratch)/none.sock"))
        #expect(noDaemon.stderr.contains("taskshedd --socket"))
        #expect(noDaemon.stderr.split(separator: "\n").count == 1)

        let badTime = try await h.ctl("add", "cb", "--at", "half past two")
        #expect(badTime.status == 64)
        #expect(badTime.stderr.contains("accepted: RFC 3339"))
        let badKwargs = try await h.ctl("add", "cb", "--kwargs", "[1]")
        #expect(badKwargs.status == 65, "\(badKwargs)")
        let stdinKwargs = try await h.ctl("add", "cb", "--kwargs", "-", stdin: "not json")
        #expect(stdinKwargs.status == 65)
        #expect(try await h.ctl("reschedule", "missing", "+1m").status == 66)
        #expect(try await h.ctl("remove", "missing").status == 66)
        #expect(try await h.ctl("pause", "missing").status == 66)
        let usage = try await h.ctl("add", "cb", "--at", "10:00", "--in", "1m")
        #expect(usage.status == 64)
        let invalid = try await h.ctl("add", String(repeating: "c", count: 300))
        #expect(invalid.status == 64, "\(invalid)")
        #expect(invalid.stderr.hasPrefix("taskshedctl: "))
    }

    /// As root, run the CLI as `nobody` to meet both refusals: the socket file's mode, then the daemon's
    /// peer-credential check once the file is opened up.
    @Test(.enabled(if: getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0))
    func permissionDeniedNamesTheGroupToJoin() async throws {
        let h = try Harness()
        let socket = h.daemon.socketPath
        let directory = String(socket[..<(socket.lastIndex(of: "/") ?? socket.endIndex)])
        #expect(chmod(directory, 0o755) == 0)
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        var info = stat()
        #expect(stat(socket, &info) == 0)
        let group = String(cString: getgrgid(info.st_gid).pointee.gr_name)

        let byMode = try await CLIProcess.run(["ping", "--socket", socket], launcher: asNobody)
        #expect(byMode.status == 77, "\(byMode)")
        #expect(byMode.stderr.contains("permission denied on \(socket): join group '\(group)'"), "\(byMode)")

        #expect(chmod(socket, 0o666) == 0)
        let byDaemon = try await CLIProcess.run(["ping", "--socket", socket], launcher: asNobody)
        #expect(byDaemon.status == 77, "\(byDaemon)")
        #expect(byDaemon.stderr.contains("refuses this user (uid 65534)"), "\(byDaemon)")
        #expect(byDaemon.stderr.split(separator: "\n").count == 1)
    }

    @Test func commandWorkerRunsTasksWithKwargsOnStandardInput() async throws {
        let h = try Harness()
        let worker = try h.startWorker(
            "--run",
            #"echo=cat > "$OUT/$TASKSHED_TASK_ID.json"; printf '%s|%s|%s|%s' "$TASKSHED_CALLBACK" "$TASKSHED_ATTEMPT" "$TASKSHED_KWARGS" "$TASKSHED_RUN_AT_US" > "$OUT/$TASKSHED_TASK_ID.env""#)
        #expect(try await h.waitForWorker("echo"), "worker never subscribed: \(worker.output)")

        let add = try await h.ctl("add", "echo", "--id", "w1", "--kwargs", #"{"n": 1}"#)
        #expect(add.status == 0)
        #expect(!add.stderr.contains("warning"), "\(add)")
        let ran = try await eventually {
            guard h.file("w1.env") != nil else { return false }
            return try await h.ctl("show", "w1").status == 66
        }
        #expect(ran, "\(worker.output)")
        #expect(h.file("w1.json") == #"{"n": 1}"#)
        let env = try #require(h.file("w1.env")).split(separator: "|").map(String.init)
        #expect(env.count == 4)
        #expect(env.first == "echo")
        #expect(env.dropFirst().first == "1")
        #expect(env.dropFirst(2).first == #"{"n": 1}"#)
        #expect(Int(env.last ?? "") != nil)

        worker.signal(SIGTERM)
        let finished = try await worker.finish(timeoutSeconds: 30)
        #expect(finished.status == 0, "\(finished)")
        #expect(finished.stderr.contains("echo w1 attempt 1: ok in"))
    }

    @Test func failingCommandsAreRetriedThenDeadLetteredWithTheirStandardError() async throws {
        let h = try Harness()
        let worker = try h.startWorker(
            "--run", #"flaky=echo "attempt $TASKSHED_ATTEMPT" >&2; echo 'disk full' >&2; exit 3"#, "--quiet")
        #expect(try await h.waitForWorker("flaky"))
        _ = try await h.ctl("add", "flaky", "--id", "f1", "--max-attempts", "1")
        #expect(try await eventually { try await h.tasks("--state", "dead").count == 1 })

        let failed = try await h.ctl("failed")
        #expect(failed.stdout.contains("f1  flaky"), "\(failed)")
        #expect(failed.stdout.contains("CommandFailed: exit status 3: attempt 1"), "\(failed)")
        let dead = try await h.json("show", "f1")
        #expect(dead["last_error"] as? String == "CommandFailed: exit status 3: attempt 1\ndisk full")
        #expect(dead["status"] as? String == "dead")

        worker.signal(SIGTERM)
        _ = try await worker.finish(timeoutSeconds: 30)

        let retried = try await h.ctl("retry", "f1")
        #expect(retried.stdout == "retried 1 dead-lettered task\n", "\(retried)")
        #expect(try await h.json("show", "f1")["status"] as? String == "due")
        _ = try await h.ctl("add", "flaky", "--id", "f2", "--max-attempts", "1")
        let worker2 = try h.startWorker("--run", "flaky=exit 1", "--poll", "100ms")
        #expect(try await eventually { try await h.tasks("--state", "dead").count == 2 })
        worker2.signal(SIGTERM)
        _ = try await worker2.finish(timeoutSeconds: 30)
        let purged = try await h.json("purge", "--all")
        #expect(purged["affected"] as? Int == 2)
        #expect(try await h.ctl("failed").stdout == "No dead-lettered tasks.\n")
    }

    @Test func commandsPastTheTimeoutAreKilledAndFail() async throws {
        let h = try Harness()
        let worker = try h.startWorker(
            "--run", #"slow=echo started >&2; sleep 30 & echo $! > "$OUT/child"; wait"#, "--timeout", "300ms")
        #expect(try await h.waitForWorker("slow"))
        _ = try await h.ctl("add", "slow", "--id", "s1", "--max-attempts", "1")
        #expect(try await eventually { try await h.tasks("--state", "dead").count == 1 })
        let error = try await h.json("show", "s1")["last_error"] as? String
        #expect(error?.hasPrefix("CommandFailed: timed out after") == true, "\(error ?? "nil")")
        #expect(error?.hasSuffix("started") == true)
        // The background `sleep` belonged to the command's process group and was killed with it.
        let child = try #require(h.file("child").flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        #expect(await eventually(seconds: 10) { Glibc.kill(child, 0) != 0 })
        worker.signal(SIGINT)
        #expect(try await worker.finish(timeoutSeconds: 30).status == 0)
    }

    @Test func shutdownHandsRunningTasksBackAndStopsTheirCommands() async throws {
        let h = try Harness()
        let worker = try h.startWorker(
            "--run", #"hang=echo $$ > "$OUT/pid"; exec sleep 60"#, "--shutdown-timeout", "200ms")
        #expect(try await h.waitForWorker("hang"))
        _ = try await h.ctl("add", "hang", "--id", "h1")
        let running = try await eventually {
            guard h.file("pid") != nil else { return false }
            return try await h.tasks("--state", "leased").count == 1
        }
        #expect(running, "\(worker.output)")
        let shell = try #require(h.file("pid").flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) })

        worker.signal(SIGTERM)
        let finished = try await worker.finish(timeoutSeconds: 30)
        #expect(finished.status == 0, "\(finished)")
        #expect(finished.stderr.contains("released 1 unfinished task"), "\(finished)")
        let task = try await h.json("show", "h1")
        #expect(task["status"] as? String == "due")
        #expect(task["attempt"] as? Int == 0)
        #expect(await eventually(seconds: 10) { Glibc.kill(shell, 0) != 0 })
    }

    @Test func pollingWorkerRunsDueTasks() async throws {
        let h = try Harness()
        for index in 1...3 {
            _ = try await h.ctl("add", "touch", "--id", "p\(index)")
        }
        let worker = try h.startWorker(
            "--run", #"touch=touch "$OUT/$TASKSHED_TASK_ID""#, "--poll", "100ms", "--concurrency", "2")
        let ran = await eventually { (1...3).allSatisfy { h.file("p\($0)") != nil } }
        #expect(ran, "\(worker.output)")
        #expect(try await eventually { try await h.tasks().isEmpty })
        worker.signal(SIGTERM)
        #expect(try await worker.finish(timeoutSeconds: 30).status == 0)
    }

    @Test func recurringTasksRunAgainAndTheWorkerSurvivesADaemonRestart() async throws {
        let h = try Harness()
        let worker = try h.startWorker("--run", #"tick=echo "$TASKSHED_RUN_AT_US" >> "$OUT/ticks""#)
        #expect(try await h.waitForWorker("tick"))
        let add = try await h.ctl("add", "tick", "--id", "r1", "--every", "200ms")
        #expect(add.status == 0, "\(add)")
        func ticks() -> [Int] { (h.file("ticks") ?? "").split(separator: "\n").compactMap { Int($0) } }
        #expect(await eventually { ticks().count >= 3 }, "\(worker.output)")
        let seen = ticks()
        // Each run is a later occurrence of the same task.
        #expect(seen == seen.sorted() && Set(seen).count == seen.count)
        #expect(try await h.json("show", "r1")["status"] as? String != "dead")

        try h.daemon.restart()
        let before = ticks().count
        #expect(await eventually(seconds: 30) { ticks().count >= before + 2 }, "\(worker.output)")
        worker.signal(SIGTERM)
        #expect(try await worker.finish(timeoutSeconds: 30).status == 0)
    }

    @Test func workerWithoutADaemonExitsUnavailable() async throws {
        let h = try Harness()
        let result = try await CLIProcess.run(["worker", "--run", "a=true", "--socket", h.scratch + "/none.sock"])
        #expect(result.status == 69, "\(result)")
        #expect(result.stderr.contains("cannot connect"))
    }
}
