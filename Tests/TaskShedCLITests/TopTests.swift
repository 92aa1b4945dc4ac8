import Foundation
import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

@testable import TaskShedCLI

/// `taskshedctl top`: the screen as text (cut to any size, rates, errors), and the real command in tmux against a
/// real daemon: it shows the rows, updates, survives a daemon restart, and quits on `q`.
@Suite("taskshedctl top")
struct TopTests {
    let context = TimeContext(nowMicros: utc(2026, 3, 8, 12), timeZone: zone("UTC"))

    func stats(dead: UInt64, at serverTime: Int64, callbacks: Int = 2) -> Stats {
        Stats(
            serverVersion: "0.1.0", serverTime: serverTime, startedAt: serverTime - 3_600_000_000, pending: 3, due: 1,
            paused: 0, leased: 2, dead: dead, waitingForWorker: 1, nextWakeup: nil, connections: 4,
            callbacks: (0..<callbacks).map {
                CallbackStats(callback: "cb\($0)", scheduled: 2, due: 1, leased: 1, dead: dead, workers: 3)
            },
            storeFileBytes: 1 << 20, storeMapBytes: 8 << 20, storeUsedBytes: 1 << 19,
            lag: LagSummary(count: 10, p50: 120, p90: 300, p99: 900, max: 1000))
    }

    func task(_ id: String) -> TaskRecord {
        TaskRecord(id: id, callback: "cb0", runAt: utc(2026, 3, 8, 12, 5), schedule: .once, kwargs: [], group: nil,
                   paused: false, pausedAt: nil, coalesce: true, state: .scheduled, attempt: 0, maxAttempts: 3,
                   leaseDeadline: nil, lastError: nil, createdAt: 0, lastRunAt: nil, lastFailureAt: nil)
    }

    /// A `GET_METRICS` text with `runs` runs of callback cb0 (`failed` of them failures) and their lateness:
    /// `fast` within 1 ms, the rest within 10 ms.
    static func metrics(runs: Int, failed: Int, fast: Int) -> String {
        """
        # HELP taskshed_runs_total Runs ended.
        # TYPE taskshed_runs_total counter
        taskshed_runs_total{callback="cb0",outcome="succeeded"} \(runs - failed)
        taskshed_runs_total{callback="cb0",outcome="failed"} \(failed)
        taskshed_runs_total{callback="other \\"q\\"",outcome="succeeded"} 7
        # TYPE taskshed_dispatch_lateness_seconds histogram
        taskshed_dispatch_lateness_seconds_bucket{callback="cb0",le="0.001"} \(fast)
        taskshed_dispatch_lateness_seconds_bucket{callback="cb0",le="0.01"} \(runs)
        taskshed_dispatch_lateness_seconds_bucket{callback="cb0",le="+Inf"} \(runs)
        taskshed_dispatch_lateness_seconds_sum{callback="cb0"} 0.5
        taskshed_dispatch_lateness_seconds_count{callback="cb0"} \(runs)
        taskshed_connections 4
        """
    }

    @Test func aScreenShowsTheDaemonTheCallbacksWithRatesAndTheNextTasks() {
        let frame = TopScreen.Frame(stats: stats(dead: 5, at: utc(2026, 3, 8, 12)),
                                    previous: stats(dead: 3, at: utc(2026, 3, 8, 12) - 2_000_000),
                                    next: [task("a"), task("b")], error: nil, socketPath: "/run/t.sock",
                                    runs: RunFigures(text: Self.metrics(runs: 300, failed: 4, fast: 250)),
                                    previousRuns: RunFigures(text: Self.metrics(runs: 100, failed: 2, fast: 50)))
        let lines = TopScreen.render(frame, width: 120, height: 40, context: context)
        #expect(lines.first == "taskshedd 0.1.0 at /run/t.sock, up 1h, 4 connections", "\(lines)")
        #expect(lines.contains { $0.hasPrefix("tasks: 3 pending, 1 due, 0 paused, 2 leased, 5 dead") })
        #expect(lines.contains { $0.contains("lag (recent runs): p50 120us, p99 900us") }, "\(lines)")
        #expect(lines.contains { $0.contains("RUNS/S") && $0.contains("FAILED/S") && $0.contains("LATE P99") })
        // 200 runs in two seconds, 2 of them failures; all 200 within 1 ms, so p50 is half of the first bucket.
        let row = lines.first { $0.hasPrefix("cb0") } ?? ""
        #expect(row.contains(" 100.0 ") && row.contains(" 1.0 ") && row.contains("500us"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("cb1") && $0.contains(" - ") }, "cb1 ran nothing: \(lines)")
        #expect(lines.contains("NEXT DUE") && lines.contains { $0.contains(" a ") || $0.contains(" a  ") })
        #expect(lines.last == "q quits")
    }

    @Test(arguments: [(20, 5), (40, 8), (70, 12), (200, 60)])
    func everyLineFitsTheTerminalWhateverItsSize(_ size: (Int, Int)) {
        let frame = TopScreen.Frame(stats: stats(dead: 0, at: utc(2026, 3, 8, 12), callbacks: 30), previous: nil,
                                    next: (0..<5).map { task("task-\($0)") }, error: "lost the connection",
                                    socketPath: "/run/taskshed/taskshedd.sock")
        let lines = TopScreen.render(frame, width: size.0, height: size.1, context: context)
        #expect(lines.count <= size.1, "\(lines)")
        #expect(lines.allSatisfy { $0.count <= size.0 }, "\(lines)")
        #expect(lines.last == "q quits" || size.1 < 6, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("! retrying: lost the connection") || $0.hasPrefix("! retr") }, "\(lines)")
    }

    static let canUseTmux = access("/usr/bin/tmux", X_OK) == 0

    /// `tmux` on a private socket, so that a test never meets a user's sessions.
    final class Tmux {
        let socket = "tstop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        @discardableResult
        func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
            let directory = try TemporaryDirectory.create(prefix: "tmux")
            defer { TemporaryDirectory.remove(directory) }
            let child = try ChildProcess(executable: "/usr/bin/tmux", arguments: ["-L", socket] + arguments,
                                         environment: DaemonProcess.inheritedEnvironment(),
                                         outputPath: directory + "/out")
            let status = child.wait(timeoutSeconds: 10).map(ChildProcess.exitCode(fromWaitStatus:)) ?? -1
            return (status, TextFile.read(directory + "/out") ?? "")
        }

        func screen() -> String { (try? run(["capture-pane", "-p", "-t", "top"]).output) ?? "" }

        deinit { _ = try? run(["kill-server"]) }
    }

    /// Polls the pane until `condition` holds (10 s).
    static func until(_ tmux: Tmux, _ condition: (String) -> Bool) async -> String {
        var text = tmux.screen()
        for _ in 0..<100 where !condition(text) {
            try? await Task.sleep(for: .milliseconds(100))
            text = tmux.screen()
        }
        return text
    }

    @Test(.enabled(if: canUseTmux, "needs tmux"))
    func topInTmuxShowsUpdatesSurvivesARestartAndQuits() async throws {
        let daemon = try DaemonProcess()
        let ctl = try CLIProcess.executable()
        let tmux = Tmux()
        try tmux.run(["new-session", "-d", "-s", "top", "-x", "100", "-y", "30",
                      "\(ctl) top --interval 200ms --socket \(daemon.socketPath)"])
        var text = await Self.until(tmux) { $0.contains("taskshedd ") && $0.contains("NEXT DUE") }
        #expect(text.contains("no callbacks yet"), "\(text)")

        let added = try await CLIProcess.run(["add", "shown-in-top", "--in", "1h", "--id", "visible-task",
                                              "--socket", daemon.socketPath])
        #expect(added.status == 0, "\(added)")
        text = await Self.until(tmux) { $0.contains("visible-task") && $0.contains("shown-in-top") }
        #expect(text.contains("visible-task") && text.contains("CALLBACK"), "\(text)")

        // The daemon goes away: top says so and keeps the last figures; it comes back: top carries on.
        #expect(try daemon.stop() == 0)
        text = await Self.until(tmux) { $0.contains("! retrying: ") }
        #expect(text.contains("! retrying: ") && text.contains("visible-task"), "\(text)")
        try daemon.restart()
        text = await Self.until(tmux) { !$0.contains("! retrying: ") && $0.contains("visible-task") }
        #expect(!text.contains("! retrying: "), "\(text)")

        try tmux.run(["send-keys", "-t", "top", "q"])
        var alive = true
        for _ in 0..<50 where alive {
            try? await Task.sleep(for: .milliseconds(100))
            alive = try tmux.run(["has-session", "-t", "top"]).status == 0
        }
        #expect(!alive, "top did not quit on q: \(tmux.screen())")
    }
}

/// `RunFigures`: the metrics text read back for `top`.
@Suite("taskshedctl top: run figures")
struct RunFiguresTests {
    @Test func samplesWithEscapedLabelsAndUnknownLinesAreRead() {
        let figures = RunFigures(text: TopTests.metrics(runs: 10, failed: 3, fast: 4))
        #expect(figures.callbacks["cb0"]?.runs == 10)
        #expect(figures.callbacks["cb0"]?.failures == 3)
        #expect(figures.callbacks["other \"q\""]?.runs == 7)
        #expect(figures.callbacks["cb0"]?.lateness.map(\.upperBound) == [0.001, 0.01, .infinity])
    }

    @Test func quantilesInterpolateWithinTheirBucket() {
        // 100 runs: 50 within 1 ms, 50 within 10 ms.
        let buckets: [(Double, Double)] = [(0.001, 50), (0.01, 100), (.infinity, 100)]
        #expect(RunFigures.quantile(0.5, buckets) == 0.001)
        #expect(abs((RunFigures.quantile(0.99, buckets) ?? 0) - 0.00982) < 1e-9)
        #expect(RunFigures.quantile(0.5, [(0.001, 0), (.infinity, 0)]) == nil)
        // Past the last finite bound: that bound.
        #expect(RunFigures.quantile(0.99, [(0.001, 1), (.infinity, 100)]) == 0.001)
    }

    @Test func ratesAreDeltasPerSecondAndNilForAnUnknownCallback() throws {
        let before = RunFigures(text: TopTests.metrics(runs: 10, failed: 1, fast: 10))
        let after = RunFigures(text: TopTests.metrics(runs: 30, failed: 5, fast: 10))
        let rates = try #require(after.rates(of: "cb0", since: before, seconds: 2))
        #expect(rates.runs == 10 && rates.failures == 2)
        // The 20 new runs all fell in the 1–10 ms bucket.
        #expect(rates.p50.map { $0 > 0.001 && $0 < 0.01 } == true)
        #expect(after.rates(of: "nobody", since: before, seconds: 2) == nil)
        #expect(after.rates(of: "cb0", since: before, seconds: 0) == nil)
    }
}
