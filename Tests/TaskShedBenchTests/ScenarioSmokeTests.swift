import Foundation
import Testing

/// Runs each scenario of the real `taskshed-bench` binary with tiny sizes and checks that it reports its
/// figures. No figure is compared with a target: speed belongs to the benchmark run, not to the test suite.
@Suite(.serialized) struct ScenarioSmokeTests {
    /// `taskshed-bench` next to the test bundle (SwiftPM builds it because this target depends on it).
    static func benchExecutable() throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("taskshed-bench").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let bundle = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("taskshed-bench").path
        if FileManager.default.isExecutableFile(atPath: bundle) { return bundle }
        throw SmokeError("taskshed-bench not found near \(CommandLine.arguments[0])")
    }

    struct SmokeError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs the bench with `--json` and returns one parsed object per scenario.
    func run(_ arguments: [String]) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.benchExecutable())
        process.arguments = arguments + ["--json"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SmokeError("taskshed-bench \(arguments) exited \(process.terminationStatus): \(errorText)")
        }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").filter { !$0.isEmpty }.map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw SmokeError("not a JSON object: \(line)")
            }
            return object
        }
    }

    func runs(_ object: [String: Any]) -> [[String: Any]] { object["runs"] as? [[String: Any]] ?? [] }

    func expectComplete(_ run: [String: Any], count: Int) {
        #expect(run["received"] as? Int == count, "\(run["name"] ?? "")")
        #expect(run["missing"] as? Int == 0)
        #expect(run["duplicates"] as? Int == 0)
        let lag = run["lag_us"] as? [String: Any]
        for key in ["p50", "p90", "p99", "p99.9", "max"] { #expect(lag?[key] is Double, "\(key) missing") }
    }

    func figures(_ object: [String: Any]) -> [[String: Any]] { object["figures"] as? [[String: Any]] ?? [] }

    func expectRates(_ object: [String: Any], rows: Int) {
        let list = figures(object)
        #expect(list.count == rows)
        for row in list {
            #expect((row["tasks_per_s"] as? Double ?? 0) > 0, "\(row["name"] ?? "")")
            #expect((row["us_per_task"] as? Double ?? 0) > 0)
        }
    }

    @Test func floorReportsEveryDeadline() throws {
        let objects = try run(["floor", "-n", "20", "-s", "1"])
        #expect(objects.count == 1)
        let floor = try #require(runs(objects[0]).first)
        expectComplete(floor, count: 20)
        #expect((floor["components"] as? [Any])?.count == 2)
    }

    @Test func lagReportsFloorAndBothWorkersWithRatios() throws {
        let objects = try run(["lag", "-n", "20", "-s", "1"])
        let all = runs(try #require(objects.first))
        #expect(all.count == 3)
        for run in all { expectComplete(run, count: 20) }
        for run in all.dropFirst() {
            let ratios = run["ratio_to_floor"] as? [String: Any]
            #expect(ratios?["p50"] is Double)
            #expect(ratios?["p99"] is Double)
        }
    }

    @Test func lagWithPollingWorkers() throws {
        let objects = try run(["lag", "-n", "20", "-s", "1", "--polling", "0.2", "--no-floor"])
        let all = runs(try #require(objects.first))
        #expect(all.count == 2)
        for run in all { expectComplete(run, count: 20) }
    }

    @Test func addReportsFourRates() throws {
        let objects = try run(["add", "--sequential", "20", "--clients", "3", "--per-client", "10", "--batch", "500"])
        let object = try #require(objects.first)
        #expect(figures(object).count == 4)
        #expect(figures(object).map { $0["tasks"] as? Int } == [20, 30, 30, 500])
        expectRates(object, rows: 4)
    }

    @Test func drainAcknowledgesEveryTaskAndReportsCPU() throws {
        let objects = try run(["drain", "-m", "300", "-k", "2"])
        let object = try #require(objects.first)
        #expect(object["acked"] as? Int == 300)
        #expect((object["delivered"] as? Int ?? 0) >= 300)
        #expect(object["daemon_cpu_us_per_task"] is Double)
        #expect(object["worker_cpu_us_per_task"] is Double)
        expectRates(object, rows: 2)
    }

    @Test func historyReportsBothConfigurationsAndTheirRatios() throws {
        let objects = try run(["history", "--rounds", "1", "--lag-count", "50", "--lag-seconds", "0.5",
                               "--drain-tasks", "300", "--drain-workers", "2"])
        let object = try #require(objects.first)
        for name in ["lag p50 (µs)", "lag p99 (µs)", "drain (tasks/s)"] {
            let figure = try #require(object[name] as? [String: Any], "no \(name)")
            let off = try #require(figure["off"] as? [Double])
            let on = try #require(figure["on"] as? [Double])
            #expect(off.count == 1 && on.count == 1)
            #expect(off.allSatisfy { $0 > 0 } && on.allSatisfy { $0 > 0 }, "\(name): \(off) \(on)")
            #expect((figure["ratio"] as? Double).map { $0 > 0 } == true)
        }
    }

    @Test func drainOfShuffledRunTimesAcknowledgesEveryTask() throws {
        let objects = try run(["drain", "-m", "300", "-k", "2", "--order", "random"])
        let object = try #require(objects.first)
        #expect(object["acked"] as? Int == 300)
        expectRates(object, rows: 2)
    }

    @Test func scaleReportsSizeMemoryAndRestart() throws {
        let objects = try run(["scale", "-p", "2000", "--drain-tasks", "100", "--batch-add", "200",
                               "--single-adds", "10", "--restarts", "1"])
        let object = try #require(objects.first)
        #expect((object["store_bytes"] as? Int ?? 0) > 0)
        #expect((object["rss_anon_kib_after_restart"] as? Int ?? 0) > 0)
        #expect((object["restart_to_ready_ms_median"] as? Double ?? 0) > 0)
        #expect(figures(object).count == 4)
        expectRates(object, rows: 4)
    }

    /// `attack` prints one line per phase (text only): the healthy side's figures and what the attacker did.
    @Test func attackReportsEveryPhase() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.benchExecutable())
        process.arguments = ["attack", "--seconds", "0.5", "--batch-tasks", "500", "--flood-tasks", "300",
                             "--half-frames", "2"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        for phase in ["quiet", "batches", "flood", "half-frames"] {
            let line = text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(phase + ":") }
            #expect(line?.contains("(250 tasks,") == true, "\(phase): \(text)")
            #expect(line?.contains("PING p50/p99/max") == true, "\(phase): \(text)")
        }
        #expect(text.contains("300 of 300 delivered"), "\(text)")
    }

    /// `read-stall` prints its three distributions as text (it has no JSON form): each with its count.
    @Test func readStallReportsPingsAloneAndBesideStats() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.benchExecutable())
        process.arguments = ["read-stall", "--due-tasks", "3000", "--pings", "200", "--seconds", "2"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        func count(_ label: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.contains(label + ":") }) else { return nil }
            return Int(line.split(separator: ":")[1].split(separator: " ")[0])
        }
        #expect(count("PING alone") == 200, "\(text)")
        #expect((count("PING while STATS is polled") ?? 0) > 0, "\(text)")
        #expect((count("STATS") ?? 0) >= 1, "\(text)")
    }
}
