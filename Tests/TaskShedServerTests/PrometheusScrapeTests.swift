import Foundation
import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// A real Prometheus server (Debian's `prometheus`, from scripts/ensure-deps.sh) on loopback, scraping a real
/// daemon's `--metrics-listen` endpoint once a second; the test asks Prometheus's own HTTP API what it scraped.
final class PrometheusServer: @unchecked Sendable {
    static let executable = "/usr/bin/prometheus"

    let directory: String
    let port: UInt16
    private let process: ChildProcess

    /// Starts Prometheus with a configuration that scrapes `target` (`host:port`) as job `taskshed` every second,
    /// its storage in a temporary directory, its web API on a free loopback port.
    init(target: String) throws {
        directory = try TemporaryDirectory.create(prefix: "prom")
        let config = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: taskshed
                static_configs:
                  - targets: ["\(target)"]

            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        // Prometheus cannot listen on port 0 and report the port: take a free one from the kernel first.
        port = try Self.freePort()
        process = try ChildProcess(
            executable: Self.executable,
            arguments: ["--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                        "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory], outputPath: directory + "/prometheus.log")
    }

    /// Stops Prometheus (SIGTERM, then SIGKILL) and removes its directory.
    func stop() {
        process.send(SIGTERM)
        if process.wait(timeoutSeconds: 10) == nil { process.killAndWait() }
        TemporaryDirectory.remove(directory)
    }

    var log: String { (try? String(contentsOfFile: directory + "/prometheus.log", encoding: .utf8)) ?? "" }

    /// A port nobody listens on now: bound to port 0 and closed again.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TestSupportError("bind: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// The value of an instant query's single sample, or `nil` when the query has no result (yet) or
    /// Prometheus does not answer (yet).
    func value(of query: String) -> Double? {
        guard let escaped = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics),
              let http = try? RawHTTPConnection(port: port) else { return nil }
        defer { http.close() }
        // HTTP/1.0: the body ends with the connection, whatever framing the server would choose for 1.1.
        guard (try? http.send("GET /api/v1/query?query=\(escaped) HTTP/1.0\r\n\r\n")) != nil,
              let raw = try? http.readUntilClosed(timeoutSeconds: 5),
              let split = raw.firstRange(of: Array("\r\n\r\n".utf8)),
              let json = try? JSONSerialization.jsonObject(with: Data(raw[split.upperBound...])) as? [String: Any],
              json["status"] as? String == "success",
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              result.count == 1, let sample = result[0]["value"] as? [Any], sample.count == 2,
              let text = sample[1] as? String
        else { return nil }
        return Double(text)
    }

    /// Waits until `query` has the value `expected`.
    /// - Returns: The last value seen.
    @discardableResult
    func waitFor(_ query: String, toBe expected: Double, timeoutSeconds: Double = 20) -> Double? {
        let deadline = monotonic() + timeoutSeconds
        var last: Double?
        while monotonic() < deadline {
            last = value(of: query)
            if last == expected { return last }
            pause(0.2)
        }
        return last
    }
}

@Suite struct PrometheusScrapeTests {
    /// A daemon with an HTTP metrics endpoint, a worker that ran `count` tasks of `callback`, and Prometheus
    /// scraping it; `body` runs with both and Prometheus is stopped however it ends.
    static func withScrapedDaemon(callback: String, count: Int,
                                  _ body: (DaemonProcess, PrometheusServer) throws -> Void) throws {
        #expect(access(PrometheusServer.executable, X_OK) == 0,
                "prometheus missing: run scripts/ensure-deps.sh (Debian's prometheus)")
        let daemon = try DaemonProcess(arguments: ["--metrics-listen", "127.0.0.1:0"])
        let address = try daemon.metricsAddress()
        let scheduler = try Client(daemon)
        let worker = try MetricsExpositionTests.runTasks(scheduler, daemon, callback: callback, count: count)
        let prometheus = try PrometheusServer(target: "\(address.host):\(address.port)")
        defer { prometheus.stop() }
        try body(daemon, prometheus)
        _ = worker
        #expect(try daemon.stop() == 0)
    }

    @Test func prometheusScrapesTheDaemonAndSeesItsDeliveries() throws {
        try Self.withScrapedDaemon(callback: "scraped", count: 4) { daemon, prometheus in
            let up = prometheus.waitFor(#"up{job="taskshed"}"#, toBe: 1)
            #expect(up == 1, "target not up; Prometheus log:\n\(prometheus.log)\ndaemon log:\n\(daemon.log())")
            let deliveries = prometheus.waitFor(#"taskshed_dispatch_lateness_seconds_count{callback="scraped"}"#,
                                                toBe: 4)
            #expect(deliveries == 4, "\(prometheus.log)")
            #expect(prometheus.waitFor(#"taskshed_workers{callback="scraped"}"#, toBe: 1) == 1)
        }
    }

    /// The run counter comes from the run history's ended runs (`ServerMetrics.observeEndedRuns`, fed by the
    /// store job that records them).
    @Test func prometheusSeesTheSucceededRunsCounter() throws {
        try Self.withScrapedDaemon(callback: "counted", count: 3) { _, prometheus in
            #expect(prometheus.waitFor(#"up{job="taskshed"}"#, toBe: 1) == 1, "\(prometheus.log)")
            let runs = prometheus.waitFor(#"taskshed_runs_total{callback="counted",outcome="succeeded"}"#, toBe: 3)
            #expect(runs == 3, "\(prometheus.log)")
        }
    }
}
