import ArgumentParser
import Foundation
import Glibc
import TaskShed
import TaskShedProtocol

/// `taskshedctl top`: a live view of the daemon, refreshed every `--interval` in the terminal.
public struct Top: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "A live view of the daemon: tasks and workers per callback, lag, the next tasks due.",
        discussion: """
            Refreshes every --interval (default 1s) on the terminal's alternate screen: the daemon's version, \
            uptime, connections and store use; task counts by state; recent lag percentiles; per callback the \
            scheduled, due, leased and dead tasks, the runs and failed runs per second since the last refresh \
            (RUNS/S, FAILED/S), the dispatch lateness p50/p99 of those runs (LATE P50, LATE P99, from the \
            daemon's metrics) and the connected workers; and the next tasks due. It follows a resized terminal, cuts what does not fit, and \
            keeps running while the daemon restarts (saying it is retrying). q (or Ctrl-C) quits. --once prints \
            one screen to standard output and exits (for scripts; no terminal needed).

            Examples:
              taskshedctl top
              taskshedctl top --interval 5s
              taskshedctl top --once
            """)

    /// Shared options.
    @OptionGroup public var global: GlobalOptions

    /// The refresh interval.
    @Option(name: .long, help: ArgumentHelp("Time between refreshes (100ms … 1h).", valueName: "duration"))
    public var interval: String = "1s"

    /// One screen, no terminal control.
    @Flag(name: .long, help: "Print one screen to standard output and exit.")
    public var once = false

    /// Creates the command (the parser does this).
    public init() {}

    /// Checks `--interval`.
    public func validate() throws {
        let micros = try Self.intervalMicros(interval)
        guard (100_000...3_600_000_000).contains(micros) else {
            throw ValidationError("--interval must be between 100ms and 1h, not \(interval)")
        }
    }

    static func intervalMicros(_ text: String) throws -> Int64 {
        do {
            return try DurationParser.parsePositiveMicros(text)
        } catch {
            throw ValidationError("--interval: \(error)")
        }
    }

    /// Shows the view until `q`, or prints one screen with `--once`.
    public func execute(_ session: CommandSession) async throws {
        if once {
            let frame = await Self.refresh(session, previous: nil, previousRuns: nil)
            if let error = frame.error, frame.stats == nil {
                throw CLIError("the daemon at \(session.socketPath) did not answer: \(error)", status: .unavailable)
            }
            let lines = TopScreen.render(frame, width: 200, height: 1000, context: .current(), interactive: false)
            session.write(lines.joined(separator: "\n") + "\n")
            return
        }
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            throw CLIError("top needs a terminal on standard input and output; use --once for one screen",
                           status: .usage)
        }
        let terminal = try RawTerminal()
        defer { terminal.restore() }
        let intervalMillis = Int32(try Self.intervalMicros(interval) / 1000)
        var frame = TopScreen.Frame(stats: nil, previous: nil, next: [], error: nil, socketPath: session.socketPath)
        while true {
            let fresh = await Self.refresh(session, previous: frame.stats, previousRuns: frame.runs)
            // A refresh without an answer keeps the last figures on screen, under the error.
            frame = fresh.stats == nil ? TopScreen.Frame(stats: frame.stats, previous: frame.previous, next: frame.next,
                                                          error: fresh.error, socketPath: session.socketPath,
                                                          runs: frame.runs, previousRuns: frame.previousRuns) : fresh
            let size = terminal.size()
            let lines = TopScreen.render(frame, width: size.columns, height: size.rows, context: .current())
            terminal.draw(lines)
            if terminal.waitForQuit(milliseconds: intervalMillis) { return }
        }
    }

    /// One refresh: the statistics, the run figures (`nil` from a daemon that serves no metrics) and the next
    /// tasks due, or the error that stopped them.
    static func refresh(_ session: CommandSession, previous: Stats?, previousRuns: RunFigures?) async
        -> TopScreen.Frame
    {
        do {
            let stats = try await session.scheduler.stats().wire
            // The due index is per callback; a short page in run-time order holds the next ones due, with
            // paused, leased and dead tasks among them, which are left out.
            let page = try await session.scheduler.listTasks(limit: 50)
            let next = page.tasks.filter { $0.state == .scheduled && !$0.paused }.prefix(TopScreen.nextTaskCount)
            // A daemon older than protocol version 3 has no metrics: the rates show "-".
            let runs = (try? await session.scheduler.metrics()).map { RunFigures(text: $0) }
            return TopScreen.Frame(stats: stats, previous: previous, next: next.map(\.record), error: nil,
                                   socketPath: session.socketPath, runs: runs, previousRuns: previousRuns)
        } catch {
            let failure = CLIErrorMapping.map(error, socketPath: session.socketPath)
            return TopScreen.Frame(stats: nil, previous: nil, next: [], error: failure.message,
                                   socketPath: session.socketPath)
        }
    }
}

/// The terminal in raw mode on its alternate screen, for `top`; `restore` puts everything back.
final class RawTerminal {
    /// The settings found at start, put back by `restore`.
    private var saved = termios()

    /// Switches off echo, line editing and signal keys (Ctrl-C arrives as a byte and quits), enters the alternate
    /// screen and hides the cursor.
    init() throws {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else {
            throw CLIError("cannot read the terminal's settings: \(String(cString: strerror(errno)))", status: .software)
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        raw.c_cc.6 = 0  // VMIN: read returns what is there
        raw.c_cc.5 = 0  // VTIME
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else {
            throw CLIError("cannot set the terminal to raw mode: \(String(cString: strerror(errno)))", status: .software)
        }
        write("\u{1B}[?1049h\u{1B}[?25l")
    }

    /// Leaves the alternate screen, shows the cursor and restores the settings `init` found.
    func restore() {
        write("\u{1B}[?25h\u{1B}[?1049l")
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }

    /// The terminal's size (80 × 24 when the kernel cannot tell).
    func size() -> (columns: Int, rows: Int) {
        var window = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0, window.ws_row > 0 else {
            return (80, 24)
        }
        return (Int(window.ws_col), Int(window.ws_row))
    }

    /// Redraws the whole screen with `lines` (already cut to its size).
    func draw(_ lines: [String]) {
        write("\u{1B}[H\u{1B}[2J" + lines.joined(separator: "\r\n"))
    }

    /// Waits up to `milliseconds` for a key; `true` when it was `q`, `Q` or Ctrl-C. Other keys end the wait early
    /// (a refresh on demand). A resize shows at the next refresh, which reads the size again.
    func waitForQuit(milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, milliseconds) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(STDIN_FILENO, &buffer, buffer.count)
        // End of input (the terminal went away) quits too.
        if count == 0 { return true }
        return buffer.prefix(max(0, count)).contains { $0 == UInt8(ascii: "q") || $0 == UInt8(ascii: "Q") || $0 == 3 }
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
