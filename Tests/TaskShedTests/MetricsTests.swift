import Foundation
import TaskShed
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// `Scheduler.metrics()`: the Prometheus text of a real daemon, and the refusal of a daemon below version 3 before
/// anything is sent (a scripted daemon: no real one speaks only version 2 any more).
@Suite("Metrics", .timeLimit(.minutes(1)))
struct MetricsTests {
    @Test func metricsReturnsTheDaemonsPrometheusText() async throws {
        let daemon = try DaemonProcess()
        let scheduler = Scheduler(socketPath: daemon.socketPath, clientName: "MetricsTests")
        defer { scheduler.shutdown() }
        let text = try await scheduler.metrics()
        #expect(text.contains("# TYPE taskshed_build_info gauge\n"), "\(text)")
        #expect(text.contains(#"taskshed_build_info{version="\#(TaskShedVersion.current)"} 1.0"#))
        #expect(text.hasSuffix("\n"))
        #expect(try daemon.stop() == 0)
    }

    @Test func aDaemonBelowVersion3IsRefusedBeforeAnythingIsSent() async throws {
        let fake = try FakeDaemon(version: 2)
        defer { fake.stop() }
        let scheduler = Scheduler(socketPath: fake.socketPath)
        defer { scheduler.shutdown() }
        await #expect {
            _ = try await scheduler.metrics()
        } throws: { error in
            guard let error = error as? TaskShedError else { return false }
            return error.code == .unsupportedVersion && error.message.contains("need version 3")
        }
        // The connection is still fine for what version 2 has.
        async let affected = scheduler.pauseTasks(ids: ["t"])
        let frame = try #require(await fake.nextRequest())
        guard case .pauseTasks = frame.message else {
            Issue.record("the metrics request was sent: \(frame.message.type)")
            return
        }
        fake.send(.affected(1), requestID: frame.requestID)
        #expect(try await affected == 1)
    }
}
