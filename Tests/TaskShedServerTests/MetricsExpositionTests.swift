import Foundation
import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Runs a program to its end with its standard output and error in a file.
/// - Returns: The exit status and the output.
func runToEnd(_ executable: String, _ arguments: [String], timeoutSeconds: Double = 30) throws -> (Int32, String) {
    let directory = try TemporaryDirectory.create(prefix: "run")
    defer { TemporaryDirectory.remove(directory) }
    let output = directory + "/output"
    let child = try ChildProcess(executable: executable, arguments: arguments,
                                 environment: ["PATH": "/usr/bin:/bin"], outputPath: output)
    guard let status = child.wait(timeoutSeconds: timeoutSeconds) else {
        child.killAndWait()
        throw TestSupportError("\(executable) did not end within \(timeoutSeconds) s")
    }
    return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
}

/// The metrics of a real daemon that ran tasks, as GET_METRICS and `GET /metrics` serve them, checked by Prometheus's
/// own `promtool` (Debian's `prometheus` package, from scripts/ensure-deps.sh).
@Suite struct MetricsExpositionTests {
    static let promtool = "/usr/bin/promtool"

    /// Sends GET_METRICS on a protocol version 3 connection.
    static func metricsText(_ client: Client) throws -> String {
        let reply = try client.call(.getMetrics)
        guard case .metrics(let bytes) = reply else { throw TestSupportError("GET_METRICS answered \(reply)") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Adds `count` tasks due now for `callback`, and a worker acks each delivery.
    /// - Returns: The worker, still subscribed.
    static func runTasks(_ scheduler: Client, _ daemon: DaemonProcess, callback: String, count: Int) throws -> Client {
        let worker = try Client(daemon)
        try worker.subscribe([callback], concurrency: UInt32(count))
        try scheduler.add((0..<count).map { task("\(callback)-\($0)", callback: callback, runAt: nowMicros()) })
        for _ in 0..<count {
            let delivered = try #require(try worker.nextDelivery())
            #expect(try worker.ack(delivered) == .ok)
        }
        return worker
    }

    @Test func promtoolAcceptsTheMetricsOfADaemonThatRanTasks() throws {
        #expect(access(Self.promtool, X_OK) == 0, "promtool missing: run scripts/ensure-deps.sh (Debian's prometheus)")
        let daemon = try DaemonProcess(arguments: ["--metrics-listen", "127.0.0.1:0"])
        // An ERROR for the errors counter: an ACK of a lease nobody holds.
        let client = try Client(path: daemon.socketPath, version: 3)
        let worker = try Self.runTasks(client, daemon, callback: "promtool-cb", count: 3)
        expectError(try client.call(.ack(LeaseRef(id: "nobody", attempt: 1))), .leaseLost)
        let text = try Self.metricsText(client)
        for line in [
            #"taskshed_dispatch_lateness_seconds_count{callback="promtool-cb"} 3"#,
            #"taskshed_errors_total{code="LEASE_LOST"} 1"#,
            #"taskshed_workers{callback="promtool-cb"} 1.0"#,
            "taskshed_connections 2.0",
            #"taskshed_build_info{version="\#(TaskShedVersion.current)"} 1.0"#,
        ] {
            #expect(text.contains(line + "\n"), "\(line) in:\n\(text)")
        }
        #expect(text.contains("# TYPE taskshed_store_commit_duration_seconds histogram\n"))

        let directory = try TemporaryDirectory.create(prefix: "promtool")
        defer { TemporaryDirectory.remove(directory) }
        try text.write(toFile: directory + "/metrics.prom", atomically: true, encoding: .utf8)
        // promtool reads the text on standard input; it exits 0 only when it parses and passes the lint checks
        // (names, units, _total on counters, HELP on every metric).
        let (status, output) = try runToEnd("/bin/sh", ["-c", #"exec "$0" check metrics < "$1""#, Self.promtool,
                                                        directory + "/metrics.prom"])
        #expect(status == 0, "promtool: \(output)\n\(text)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool: \(output)")

        // The HTTP endpoint serves the same metrics.
        let http = try daemon.connectMetrics()
        try http.send("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        let served = try #require(try http.readResponse())
        #expect(served.status == 200)
        #expect(served.text.contains(#"taskshed_dispatch_lateness_seconds_count{callback="promtool-cb"} 3"#))
        _ = worker
        #expect(try daemon.stop() == 0)
    }

    @Test func metricsRequestsPipelinedWithOthersAreAnsweredInOrder() throws {
        let daemon = try DaemonProcess()
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.handshake(version: 3)
        try connection.send(Frame(requestID: 1, message: .getMetrics))
        try connection.send(Frame(requestID: 2, message: .ping))
        try connection.send(Frame(requestID: 3, message: .getMetrics))
        var order: [UInt32] = []
        for _ in 0..<3 {
            let frame = try #require(try connection.receive())
            order.append(frame.requestID)
            if frame.requestID != 2 {
                guard case .metrics(let bytes) = frame.message else {
                    Issue.record("GET_METRICS answered \(frame.message)")
                    continue
                }
                #expect(String(decoding: bytes, as: UTF8.self).contains("# TYPE taskshed_start_time_seconds gauge\n"))
            }
        }
        #expect(order == [1, 2, 3])
        #expect(try daemon.stop() == 0)
    }
}
