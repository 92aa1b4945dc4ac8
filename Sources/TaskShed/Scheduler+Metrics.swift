import TaskShedProtocol

extension Scheduler {
    /// The daemon's metrics in the Prometheus text exposition format 0.0.4: the same text its HTTP endpoint
    /// (`--metrics-listen`) serves on `GET /metrics`.
    ///
    /// The counters and histograms are the answering daemon's own since it started (runs by outcome, dispatch
    /// lateness, store commit times, errors…); the task gauges are the datastore's, as `stats()` counts them.
    /// Read the text as Prometheus text (for example, write it to a file for node_exporter's textfile collector),
    /// not by line position: families come in no fixed order.
    /// - Returns: The text, UTF-8.
    /// - Throws: `.unsupportedVersion` when the daemon speaks a protocol version below 3 (it predates the
    ///   request); connection errors; `CancellationError`.
    public func metrics() async throws -> String {
        let connection = try await connection.get()
        let version = connection.helloOK?.version ?? 1
        guard version >= MessageType.getMetrics.sinceVersion else {
            throw TaskShedError(
                .unsupportedVersion,
                message: "the daemon speaks protocol version \(version); metrics need version \(MessageType.getMetrics.sinceVersion) (a newer taskshedd)")
        }
        let reply = try await connection.request(.getMetrics)
        guard case .metrics(let text) = reply else { throw unexpected(reply, to: "GET_METRICS") }
        return String(decoding: text, as: UTF8.self)
    }
}
