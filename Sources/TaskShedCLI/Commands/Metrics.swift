import ArgumentParser
import TaskShed

/// `taskshedctl metrics`.
public struct Metrics: ClientCommand {
    /// Help and examples.
    public static let configuration = CommandConfiguration(
        abstract: "Print the daemon's metrics in the Prometheus text format.",
        discussion: """
            Prints what the daemon's HTTP endpoint (taskshedd --metrics-listen) serves on GET /metrics, fetched \
            over the daemon's socket instead: for node_exporter's textfile collector or a cron job when the \
            daemon does not listen on TCP. Write to a temporary file and rename it, so that the collector never \
            reads half a file. --json does not apply: the text is Prometheus's own format.

            Examples:
              taskshedctl metrics
              taskshedctl metrics > /var/lib/node_exporter/taskshed.prom.$$ && \\
                mv /var/lib/node_exporter/taskshed.prom.$$ /var/lib/node_exporter/taskshed.prom
            """)
    /// Shared options.
    @OptionGroup public var global: GlobalOptions
    /// Creates the command (the parser does this).
    public init() {}
    /// Fetches and prints the metrics.
    public func execute(_ session: CommandSession) async throws {
        session.write(try await session.scheduler.metrics())
    }
}
