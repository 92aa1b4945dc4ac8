import Foundation
import Glibc
import Testing

/// `taskshedctl history`, `show`'s last runs and `list`'s LAST column against a real taskshedd, with runs made
/// by `taskshedctl worker`.
@Suite("taskshedctl history end to end", .serialized)
struct HistoryEndToEndTests {
    typealias Harness = CLIEndToEndTests.Harness

    /// The JSON runs of `taskshedctl history ARGUMENTS --json`.
    static func runs(_ h: Harness, _ arguments: String...) async throws -> [[String: Any]] {
        let result = try await CLIProcess.run(["history"] + arguments + ["--socket", h.daemon.socketPath, "--json"])
        #expect(result.status == 0, "\(arguments): \(result)")
        return (try result.jsonObject()["runs"] as? [[String: Any]]) ?? []
    }

    /// Lines of a table after its header.
    static func rows(_ text: String) -> [String] {
        text.split(separator: "\n").dropFirst().map(String.init)
    }

    @Test func historyShowsSuccessesAndFailuresWithTheirErrorsAndFilters() async throws {
        let h = try Harness()
        let worker = try h.startWorker(
            "--run", "ok=true", "--run", #"flaky=echo "disk full" >&2; exit 3"#, "--quiet")
        #expect(try await h.waitForWorker("flaky"), "\(worker.output)")
        _ = try await h.ctl("add", "ok", "--id", "s1")
        #expect(try await eventually { try await Self.runs(h, "s1").count == 1 })
        _ = try await h.ctl("add", "flaky", "--id", "f1", "--max-attempts", "2")
        #expect(try await eventually { try await h.tasks("--state", "dead").count == 1 })
        worker.signal(SIGTERM)
        _ = try await worker.finish(timeoutSeconds: 30)

        // The table, newest first: f1's two failures, then s1's success.
        let table = try await h.ctl("history")
        #expect(table.status == 0, "\(table)")
        #expect(table.stdout.hasPrefix("FINISHED "), "\(table)")
        let lines = Self.rows(table.stdout)
        #expect(lines.count == 3, "\(table)")
        #expect(lines.first?.contains("  f1  ") == true && lines.first?.contains("  2  failed     dead  ") == true, "\(table)")
        #expect(lines.dropFirst().first?.contains("  1  failed     retry  ") == true, "\(table)")
        #expect(lines.last?.contains("  s1  ") == true && lines.last?.contains("succeeded  finished") == true, "\(table)")
        #expect(lines.first?.hasSuffix("CommandFailed: exit status 3: disk full") == true, "\(table)")
        #expect(lines.last?.hasSuffix("  -") == true, "\(table)")
        #expect(table.stdout.contains("taskshedctl "), "the worker's name: \(table)")

        // --json: one object per run with the documented fields.
        let f1 = try await Self.runs(h, "f1")
        #expect(f1.map { $0["attempt"] as? Int } == [2, 1])
        #expect(f1.map { $0["outcome"] as? String } == ["failed", "failed"])
        #expect(f1.map { $0["then"] as? String } == ["dead_lettered", "retry"])
        #expect(f1.allSatisfy { ($0["error"] as? String)?.hasPrefix("CommandFailed: exit status 3: disk full") == true })
        #expect(f1.allSatisfy { $0["failure"] as? Bool == true })
        #expect(f1.allSatisfy { $0["worker_pid"] as? Int == Int(worker.pid) }, "\(f1)")
        #expect(f1.allSatisfy { ($0["worker_name"] as? String)?.hasSuffix(" worker") == true }, "\(f1)")
        #expect(f1.allSatisfy { $0["worker_uid"] as? Int == Int(getuid()) })
        let s1 = try #require(try await Self.runs(h, "--callback", "ok").first)
        #expect(s1["task_id"] as? String == "s1")
        #expect(s1["outcome"] as? String == "succeeded" && s1["then"] as? String == "finished")
        #expect(s1["error"] is NSNull && s1["failure"] as? Bool == false)
        #expect((s1["lateness_us"] as? Int ?? -1) >= 0 && (s1["duration_us"] as? Int ?? -1) >= 0)
        #expect(s1["finished_at"] is String && s1["finished_at_us"] is Int && s1["delivered_at_us"] is Int)
        let seqs = try await Self.runs(h).compactMap { $0["seq"] as? Int }
        #expect(seqs.count == 3 && seqs == seqs.sorted(by: >))

        // Filters.
        #expect(try await Self.runs(h, "--failed").map { $0["task_id"] as? String } == ["f1", "f1"])
        #expect(try await Self.runs(h, "--since", "1h").count == 3)
        #expect(try await Self.runs(h, "--since", TimeFormattingForTests.rfc3339(Date().addingTimeInterval(-3600))).count == 3)
        #expect(try await Self.runs(h, "--callback", "nobody").isEmpty)
        let future = try await h.ctl("history", "--since", "+1h")
        #expect(future.status == 64, "\(future)")
        #expect(future.stderr.hasPrefix("taskshedctl: --since: '+1h' is in 1h"), "\(future)")
        let bad = try await h.ctl("history", "--since", "lately")
        #expect(bad.status == 64 && bad.stderr.contains("--since: 'lately' is neither a duration"), "\(bad)")

        // Paging: --limit 1 names the --before of the next page, which continues where it stopped.
        let first = try await h.ctl("history", "--limit", "1")
        #expect(Self.rows(first.stdout).count == 1, "\(first)")
        let hint = first.stderr.split(separator: "`").map(String.init).first { $0.hasPrefix("--before ") }
        let next = try #require(hint.map { String($0.dropFirst("--before ".count)) }, "\(first)")
        let rest = try await Self.runs(h, "--before", next, "--limit", "5")
        #expect(rest.map { $0["task_id"] as? String } == ["f1", "s1"])
        let page = try await h.json("history", "--limit", "2")
        #expect((page["runs"] as? [Any])?.count == 2)
        #expect(page["next_before"] as? Int == seqs.dropFirst().first)

        // A removed task is no longer listed, but its runs stay.
        #expect(try await h.json("purge", "--all")["affected"] as? Int == 1)
        #expect(try await h.ctl("show", "f1").status == 66)
        #expect(try await Self.runs(h, "f1").count == 2)
        let none = try await h.ctl("history", "never-was")
        #expect(none.status == 0 && none.stdout == "No runs recorded for task 'never-was'.\n", "\(none)")
    }

    @Test func showListsTheLastRunsAndListTheLastOutcome() async throws {
        let h = try Harness()
        let worker = try h.startWorker("--run", "tick=true", "--run", "fail=exit 1", "--quiet")
        #expect(try await h.waitForWorker("tick"), "\(worker.output)")
        _ = try await h.ctl("add", "tick", "--every", "200ms", "--id", "ticker")
        #expect(try await eventually { try await Self.runs(h, "ticker").count >= 7 })
        _ = try await h.ctl("add", "fail", "--id", "dead-1", "--max-attempts", "1")
        _ = try await h.ctl("add", "tick", "--id", "later", "--in", "1h")
        #expect(try await eventually { try await h.tasks("--state", "dead").count == 1 })

        let show = try await h.ctl("show", "ticker")
        #expect(show.status == 0, "\(show)")
        let section = try #require(show.stdout.components(separatedBy: "\nLast runs:\n").last, "\(show)")
        let runLines = Self.rows(section)
        #expect(runLines.count == 5, "the last 5 runs: \(show)")
        #expect(runLines.allSatisfy { $0.hasPrefix("  ") && $0.contains("succeeded  next run") }, "\(show)")
        let json = try await h.json("show", "ticker")
        let lastRuns = try #require(json["last_runs"] as? [[String: Any]], "\(json)")
        #expect(lastRuns.count == 5)
        #expect(lastRuns.allSatisfy { $0["task_id"] as? String == "ticker" && $0["then"] as? String == "next_run" })
        // The ticker is leased as often as not, so its LAST may be '-'; an hourly task that ran once is 'ok'.
        _ = try await h.ctl("add", "tick", "--every", "1h", "--id", "hourly")
        #expect(try await eventually { try await Self.runs(h, "hourly").count == 1 })
        #expect(try await eventually { try await h.json("show", "hourly")["last_outcome"] as? String == "ok" })

        let never = try await h.ctl("show", "later")
        #expect(never.stdout.hasSuffix("\nLast runs: none recorded\n"), "\(never)")

        #expect(try await h.ctl("remove", "ticker").status == 0)
        worker.signal(SIGTERM)
        _ = try await worker.finish(timeoutSeconds: 30)

        let list = try await h.ctl("list")
        #expect(list.stdout.hasPrefix("ID      CALLBACK  STATUS   LAST  NEXT RUN"), "\(list)")
        #expect(Self.rows(list.stdout).count == 3, "\(list)")
        let byID = Dictionary(uniqueKeysWithValues: Self.rows(list.stdout).compactMap { line -> (String, [String])? in
            let cells = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            return cells.first.map { ($0, cells) }
        })
        #expect(byID["dead-1"]?.dropFirst(3).first == "dead", "\(list)")
        #expect(byID["later"]?.dropFirst(3).first == "-", "\(list)")
        #expect(byID["hourly"]?.dropFirst(3).first == "ok", "\(list)")
        // By run time: dead-1 was due at once, later and hourly in about an hour.
        let tasks = try await h.tasks()
        #expect(tasks.map { $0["id"] as? String } == ["dead-1", "later", "hourly"])
        #expect(tasks.map { $0["last_outcome"] as? String } == ["dead", nil, "ok"], "\(tasks)")
    }

    @Test func aDaemonRecordingNoHistoryGivesEmptyAnswers() async throws {
        let h = try CLIEndToEndTests.Harness(daemonArguments: ["--history-per-task", "0"])
        let worker = try h.startWorker("--run", "ok=true", "--quiet")
        #expect(try await h.waitForWorker("ok"))
        _ = try await h.ctl("add", "ok", "--id", "r1", "--every", "1h")
        #expect(try await eventually { try await h.json("show", "r1")["last_outcome"] as? String == "ok" })
        worker.signal(SIGTERM)
        _ = try await worker.finish(timeoutSeconds: 30)
        #expect(try await h.ctl("history").stdout == "No runs recorded.\n")
        #expect(try await h.ctl("show", "r1").stdout.hasSuffix("\nLast runs: none recorded\n"))
    }
}

/// RFC 3339 text of a date, as `--since` takes it.
enum TimeFormattingForTests {
    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
