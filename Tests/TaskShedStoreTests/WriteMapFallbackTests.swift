import Foundation
import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// The writable map's fallbacks (`StoreOptions.writeMap`), driven through a child process that opens the store
/// under a file size limit: writes past the limit fail with `EFBIG` as writes on a full disk fail with `ENOSPC`,
/// without filling the machine's disk.
@Suite("Writable map fallbacks")
struct WriteMapFallbackTests {
    /// What the child printed: whether the store used the writable map at open and after each batch of 50
    /// tasks it added, and the error that ended it.
    struct ChildReport {
        var openedWithWriteMap: Bool?
        var batches: [Bool] = []
        var failure: String?
    }

    static func runChild(limit: Int, initialMap: Int, directory: String) throws -> ChildReport {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CrashTests.crasherPath)
        process.arguments = ["--file-size-limit", "\(limit)", directory, "\(initialMap)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "output: \(output)")
        var report = ChildReport()
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            switch words.first {
            case "open": report.openedWithWriteMap = words.count > 1 && words[1] == "true"
            case "added": report.batches.append(words.count > 2 && words[2] == "true")
            case "failed": report.failure = words.dropFirst().joined(separator: " ")
            default: Issue.record("unexpected line \(line)")
            }
        }
        return report
    }

    /// After the child's last write failed, the store holds exactly the batches it reported, and its indexes
    /// agree with its records.
    static func expectReportedBatches(_ report: ChildReport, in directory: String) throws {
        let store = try LMDBTaskStore(directory: directory, options: StoreOptions(initialMapBytes: 1 << 20))
        let ids = Set(try store.all(now: 1).map(\.id))
        let expected = Set((0..<report.batches.count).flatMap { n in (0..<50).map { "l-\(n)-\($0)" } })
        #expect(ids == expected)
        #expect(try store.verifyIndexes() == [])
    }

    /// A file too small for the initial map: LMDB cannot size the file to the map, so the store opens without
    /// the writable map, adds until the limit, then fails with an error (not a SIGBUS) and loses nothing.
    @Test func aStoreThatCannotSizeItsFileOpensWithoutTheWritableMap() throws {
        let dir = TempDirectory()
        let report = try Self.runChild(limit: 512 << 10, initialMap: 1 << 20, directory: dir.store)
        #expect(report.openedWithWriteMap == false)
        #expect(!report.batches.isEmpty && report.batches.allSatisfy { !$0 })
        #expect(report.failure != nil)
        try Self.expectReportedBatches(report, in: dir.store)
    }

    /// Room for the initial map but not for a grown one: the store opens with the writable map, cannot allocate
    /// the grown map's blocks, goes on without it, and fails at the limit with an error, losing nothing.
    @Test func aMapThatCannotGrowItsFileLeavesTheWritableMap() throws {
        let dir = TempDirectory()
        let report = try Self.runChild(limit: 3 << 20, initialMap: 1 << 20, directory: dir.store)
        #expect(report.openedWithWriteMap == true)
        let firstWithout = try #require(report.batches.firstIndex(of: false))
        #expect(firstWithout > 0 && report.batches[firstWithout...].allSatisfy { !$0 })
        #expect(report.failure != nil)
        try Self.expectReportedBatches(report, in: dir.store)
    }
}
