import Foundation
import Testing
import TaskShedProtocol
@testable import TaskShedStore

@Suite("Crash safety")
struct CrashTests {
    /// The helper executable built next to the test binary.
    static var crasherPath: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("taskshed-store-crasher").path
    }

    @Test func batchesReportedCommittedSurviveSIGKILLAndNoneIsHalfApplied() throws {
        let dir = TempDirectory()
        let perBatch = 120
        var random = SeededRandom(seed: 77)
        for round in 0..<6 {
            let prefix = "r\(round)"
            let reportPath = dir.path + "/report-\(round)"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.crasherPath)
            process.arguments = [dir.store, prefix, "\(perBatch)", reportPath]
            try process.run()
            // Let it commit at least once, then kill it at a random moment.
            var waited = 0
            while (try? FileManager.default.attributesOfItem(atPath: reportPath)[.size] as? Int) ?? 0 == 0 {
                #expect(process.isRunning, "the crasher exited early")
                if !process.isRunning || waited > 30_000 { break }
                usleep(5_000)
                waited += 5
            }
            usleep(UInt32.random(in: 1_000...250_000, using: &random))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            let reported = (try String(contentsOfFile: reportPath, encoding: .utf8))
                .split(separator: "\n").compactMap { Int($0) }
            #expect(reported == Array(0..<reported.count), "batches are reported in order")
            let last = try #require(reported.last)

            let store = try LMDBTaskStore(directory: dir.store, options: StoreOptions(initialMapBytes: 1 << 20))
            // The batch in flight at the kill may have committed without being reported.
            let inFlight = try store.fetch(.group("\(prefix)-\(last + 1)")).count
            #expect(inFlight == 0 || inFlight == perBatch)
            let committedThrough = inFlight == perBatch ? last + 1 : last
            var total = 0
            for n in 0...(committedThrough + 2) {
                let present = try store.fetch(.group("\(prefix)-\(n)"))
                let expected = n <= committedThrough && n > committedThrough - 3 ? perBatch : 0
                #expect(present.count == expected, "round \(round) batch \(n) of \(committedThrough)")
                if present.count == perBatch {
                    #expect(Set(present.map(\.id)) == Set((0..<perBatch).map { "\(prefix)-\(n)-\($0)" }))
                }
                total += present.count
            }
            // Counters and indexes agree with the tasks after the crash.
            let stats = try store.stats(now: .max)
            let previousRounds = try store.all(now: .max).filter { !$0.id.hasPrefix(prefix + "-") }.count
            #expect(stats.due == UInt64(total + previousRounds))
            store.close()
        }
    }
}
