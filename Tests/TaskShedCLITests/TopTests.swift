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

    @Test func aScreenShowsTheDaemonTheCallbacksWithRatesAndTheNextTasks() {
        let frame = TopScreen.Frame(stats: stats(dead: 5, at: utc(2026, 3, 8, 12)),
                                    previous: stats(dead: 3, at: utc(2026, 3, 8, 12) - 2_000_000),
                                    next: [task("a"), task("b")], error: nil, socketPath: "/run/t.sock")
        let lines = TopScreen.render(frame, width: 120, height: 40, context: context)
        #expect(lines.first == "taskshedd 0.1.0 at /run/t.sock, up 1h, 4 connections", "\(lines)")
        #expect(lines.contains { $0.hasPrefix("tasks: 3 pending, 1 due, 0 paused, 2 leased, 5 dead") })
        #expect(lines.contains { $0.contains("lag (recent runs): p50 120us, p99 900us") }, "\(lines)")
        // Two dead letters more in two seconds: 1.0 per second.
        #expect(lines.contains { $0.hasPrefix("cb0") && $0.contains(" 1.0 ") }, "\(lines)")
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
