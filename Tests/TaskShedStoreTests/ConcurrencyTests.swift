import Foundation
import Testing
import TaskShedProtocol
@testable import TaskShedStore

@Suite("Concurrent claims")
struct ConcurrencyTests {
    @Test func claimersOnSeveralThreadsNeverGetTheSameTask() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        let total = 3000
        for chunk in 0..<3 {
            _ = try store.add((0..<1000).map { spec("t\(chunk)-\($0)", callback: $0 % 2 == 0 ? "a" : "b", runAt: t0 - Int64($0)) }, now: t0)
        }
        let threads = 4
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var claimedBy: [[String]]
            var errors: [String] = []
            init(_ n: Int) { claimedBy = Array(repeating: [], count: n) }
        }
        let results = Results(threads)
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            var mine: [String] = []
            while true {
                do {
                    let got = try store.claim(
                        callbacks: worker % 2 == 0 ? ["a", "b"] : ["b", "a"], max: 7, holder: UInt64(worker + 1),
                        leaseDeadline: t0 + 60 * second, now: t0)
                    if got.isEmpty { break }
                    for r in got {
                        mine.append(r.id)
                        // Ack half of them right away, as a worker would.
                        if r.id.hasSuffix("0") {
                            _ = try store.ack(id: r.id, attempt: r.attempt, holder: UInt64(worker + 1), now: t0)
                        }
                    }
                } catch {
                    results.lock.lock()
                    results.errors.append("\(error)")
                    results.lock.unlock()
                    break
                }
            }
            results.lock.lock()
            results.claimedBy[worker] = mine
            results.lock.unlock()
        }
        #expect(results.errors.isEmpty)
        let claimedBy = results.claimedBy
        let all = claimedBy.flatMap { $0 }
        #expect(all.count == total)
        #expect(Set(all).count == total)
        #expect(claimedBy.filter { !$0.isEmpty }.count >= 1)
        let s = try store.stats(now: t0)
        #expect(s.due == 0 && s.leased == UInt64(total - total / 10))
    }
}
