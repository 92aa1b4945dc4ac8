import Logging
import TaskShedEventLoop

extension Server {
    /// Starts the HTTP metrics endpoint when `--metrics-listen` asks for it, and logs the URL it serves (with the
    /// kernel's port for port 0: tests and operators read it from that line).
    /// - Throws: `ServerError` naming the option and the address: `--metrics-listen 127.0.0.1:9464: address
    ///   already in use`.
    func startMetricsListener() throws(ServerError) {
        guard let address = configuration.metricsListen else { return }
        var limits = MetricsListener.Limits()
        limits.requestTimeoutMillis = UInt64(configuration.metricsRequestTimeoutMicros / 1000)
        limits.idleTimeoutMillis = UInt64(configuration.metricsIdleTimeoutMicros / 1000)
        let listener: MetricsListener
        do {
            listener = try MetricsListener(
                loop: loop, address: TCPListener.Address(host: address.host, port: address.port), limits: limits,
                logger: logger, render: { [unowned self] done in self.scrapeMetrics(done) })
        } catch {
            throw ServerError("--metrics-listen \(address): \(error.message)")
        }
        metricsListener = listener
        logger.info("metrics: serving \(listener.url)", metadata: ["taskshed.metrics.address": "\(listener.address)"])
    }
}
