// Placeholder for the metrics registry of the main branch: delete this file when merging metrics-http.

extension Server {
    /// The daemon's metrics in the Prometheus text format 0.0.4: a stand-in with one gauge, so that the HTTP
    /// endpoint builds and is tested before the registry (`Server+Metrics.swift`) is merged.
    /// - Important: Loop thread only.
    func metricsExposition() -> [UInt8] {
        Array("""
            # HELP taskshed_up Whether the daemon is serving (always 1).
            # TYPE taskshed_up gauge
            taskshed_up 1

            """.utf8)
    }
}
