#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// What an interrupted benchmark leaves behind — child processes (daemons, workers) and temporary run
/// directories — and the SIGINT/SIGTERM handling that removes it.
///
/// Without it, Ctrl-C on a long scenario would orphan a `taskshedd` and its store in `/tmp`.
public enum InterruptCleanup {
    struct Registry {
        var children: Set<pid_t> = []
        var directories: Set<String> = []
        /// Programs to run (and wait for) first, e.g. stopping a PostgreSQL server started for the bench.
        var commands: [[String]] = []
    }

    static let registry = Mutex(Registry())
    static let sources = Mutex<[any DispatchSourceSignal]>([])

    /// Records a running child to kill on interrupt.
    static func register(child: pid_t) { registry.withLock { _ = $0.children.insert(child) } }
    /// Forgets a child that has been reaped.
    static func unregister(child: pid_t) { registry.withLock { _ = $0.children.remove(child) } }
    /// Records a directory tree to remove on interrupt.
    static func register(directory: String) { registry.withLock { _ = $0.directories.insert(directory) } }
    /// Forgets a directory that has been removed.
    static func unregister(directory: String) { registry.withLock { _ = $0.directories.remove(directory) } }

    /// Records a command to run on interrupt, before the children are killed.
    static func register(command: [String]) { registry.withLock { $0.commands.append(command) } }
    /// Forgets a command registered with `register(command:)`.
    static func unregister(command: [String]) { registry.withLock { $0.commands.removeAll { $0 == command } } }

    /// Installs the handlers (once per process): on SIGINT or SIGTERM every registered child gets SIGKILL and is
    /// reaped, every registered directory is removed, and the process exits with 128 + the signal.
    /// - Important: Call from the bench's own scenario commands, not from helper processes (their parent owns
    ///   the cleanup).
    public static func install() {
        sources.withLock { sources in
            guard sources.isEmpty else { return }
            for signalNumber in [SIGINT, SIGTERM] {
                // The signal must not run its default action; the dispatch source then sees it.
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { cleanUpAndExit(signalNumber) }
                source.resume()
                sources.append(source)
            }
        }
    }

    static func cleanUpAndExit(_ signalNumber: Int32) {
        let snapshot = registry.withLock { $0 }
        for command in snapshot.commands {
            if let child = try? BenchProcess(executable: command[0], arguments: Array(command.dropFirst())) {
                _ = child.wait(timeoutSeconds: 10)
            }
        }
        for child in snapshot.children {
            kill(child, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(child, &status, 0)
        }
        for directory in snapshot.directories { BenchDaemon.removeTree(directory) }
        exit(128 + signalNumber)
    }
}
