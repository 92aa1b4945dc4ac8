import Foundation
import Testing
import TaskShedProtocol
import TaskShedTestSupport
@testable import TaskShedStore

/// A store that runs out of room, at its map maximum or on a full disk: adds get `storeFull` (never an internal
/// error), the requests that settle or remove tasks keep working on the reserve, the room they free is used
/// again, the data file stays within the maximum, and space that comes back is used without a reopen.
@Suite("A full store")
struct StoreFullTests {
    /// Padding that makes a task about 400 bytes, so that a few thousand fill a small map.
    static let kwargs = #"{"pad":""# + String(repeating: "x", count: 300) + #""}"#

    /// What filling a store came to.
    struct Filled {
        /// Ids added, in the order added (batch `n` holds "<prefix><n>-0" ..., in group "<prefix>g<n % groups>").
        var ids: [String] = []
        /// Every error an add ended with (the last one ended the filling).
        var errors: [StoreError] = []
    }

    /// Adds batches of `batchSize` tasks (due at `t0`) until one fails, then single tasks until one fails, so that
    /// the store is full to the last task. Batch `n` is group "\(prefix)g\(n % groups)".
    static func fill(_ store: LMDBTaskStore, prefix: String, batchSize: Int = 50, groups: Int = 5,
                     limit: Int = 1_000_000) -> Filled {
        var filled = Filled()
        var batch = 0
        for size in [batchSize, 1] {
            while filled.ids.count < limit {
                let ids = (0..<size).map { "\(prefix)\(batch)-\($0)" }
                let group = "\(prefix)g\(batch % groups)"
                do {
                    _ = try store.add(ids.map { spec($0, group: group, kwargs: kwargs) }, onConflict: .fail, now: t0)
                    filled.ids += ids
                    batch += 1
                } catch {
                    filled.errors.append(error)
                    batch += 1
                    break
                }
            }
        }
        return filled
    }

    /// The data file's size in bytes.
    static func fileBytes(_ directory: String) -> Int {
        var st = stat()
        guard stat(directory + "/data.mdb", &st) == 0 else { return -1 }
        return Int(st.st_size)
    }

    /// A small map maximum: a fifth of the tasks removed (one group, one request) makes room for more than 100 new
    /// ones, again and again. The pages a commit frees are reusable only from the next commit but one (LMDB keeps
    /// them for readers of the snapshot before it), so adds that failed alone (committing nothing) never got them.
    @Test func spaceFreedByRemovalsIsReusedByAdds() throws {
        let dir = TempDirectory()
        let max = 2 << 20
        let store = try openStore(dir, options: StoreOptions(initialMapBytes: 256 << 10, maxMapBytes: max, durable: false))
        let filled = Self.fill(store, prefix: "t")
        #expect(filled.errors.map(\.code) == [.storeFull, .storeFull])
        #expect(filled.ids.count > 2_000)
        var present = filled.ids.count
        for round in 0..<3 {
            let group = "tg\(round)"
            let removed = try store.remove(.group(group))
            #expect(removed > present / 6, "round \(round)")
            present -= removed
            for n in 0..<Int(Double(removed) * 0.8) / 100 {
                let error = storeError {
                    _ = try store.add((0..<100).map { spec("new\(round)-\(n)-\($0)", kwargs: Self.kwargs) }, now: t0)
                }
                #expect(error == nil, "round \(round), batch \(n) of 100 after removing \(removed): \(String(describing: error))")
                if error == nil { present += 100 }
            }
            #expect(Self.fileBytes(dir.store) <= max)
        }
        #expect(try store.stats(now: t0).due == UInt64(present))
        #expect(try store.verifyIndexes() == [])
    }

    /// The data file and the map stay within the maximum, also while a full store removes many tasks at once
    /// (which used to grow the map past it by a removal headroom).
    @Test func theDataFileNeverGrowsPastTheMaximum() throws {
        let dir = TempDirectory()
        let max = 1 << 20
        let store = try openStore(dir, options: StoreOptions(initialMapBytes: 256 << 10, maxMapBytes: max, durable: false))
        for round in 0..<3 {
            let filled = Self.fill(store, prefix: "r\(round)-")
            #expect(filled.errors.last?.code == .storeFull)
            #expect(Self.fileBytes(dir.store) <= max, "round \(round), full")
            // Every task but the first batch, in one request.
            #expect(try store.remove(.ids(Array(filled.ids.dropFirst(50)))) == filled.ids.count - 50)
            #expect(Self.fileBytes(dir.store) <= max, "round \(round), removed")
            #expect(try store.stats(now: t0).mapBytes <= UInt64(max))
            #expect(try store.remove(.all) == 50)
        }
        #expect(try store.verifyIndexes() == [])
    }

    /// With the store full (an add of one task fails), everything that settles or removes tasks works: ACK, FAIL
    /// (retried and dead-lettered), RELEASE, TOUCH, the end of a closed worker's and of expired leases, REMOVE
    /// and PURGE_DEAD, as single writes and as group commits of many requests.
    @Test func settlingRequestsWorkWhenTheStoreIsFull() throws {
        let dir = TempDirectory()
        let store = try openStore(dir, options: StoreOptions(initialMapBytes: 256 << 10, maxMapBytes: 2 << 20, durable: false))
        let filled = Self.fill(store, prefix: "f")
        #expect(filled.errors.last?.code == .storeFull)
        let lease = t0 + 60 * second
        let claimed = try store.claim(callbacks: ["cb"], max: 600, holder: 1, leaseDeadline: lease, now: t0)
        let closing = try store.claim(callbacks: ["cb"], max: 50, holder: 2, leaseDeadline: lease, now: t0)
        let expiring = try store.claim(callbacks: ["cb"], max: 50, holder: 3, leaseDeadline: t0 + second, now: t0)
        #expect(claimed.count == 600 && closing.count == 50 && expiring.count == 50)
        #expect(storeError { _ = try store.add((0..<50).map { spec("more\($0)", kwargs: Self.kwargs) }, now: t0) }?.code
            == .storeFull)

        var failures: [String] = []
        func settle(_ what: String, _ body: () throws -> Void) {
            if let error = storeError(body) { failures.append("\(what): \(error)") }
        }
        // One request per write, as a quiet daemon commits them.
        for task in claimed[0..<100] {
            settle("ack \(task.id)") { _ = try store.ack(id: task.id, attempt: task.attempt, holder: 1, now: t0) }
        }
        for task in claimed[100..<130] {
            settle("fail \(task.id)") {
                _ = try store.fail(id: task.id, attempt: task.attempt, holder: 1, error: "boom", retry: true, now: t0)
            }
        }
        for task in claimed[130..<160] {
            settle("fail \(task.id)") {
                _ = try store.fail(id: task.id, attempt: task.attempt, holder: 1, error: "boom", retry: false, now: t0)
            }
        }
        for task in claimed[160..<190] {
            settle("release \(task.id)") { _ = try store.release(id: task.id, attempt: task.attempt, holder: 1) }
            settle("touch") { _ = try store.touch(id: claimed[190].id, attempt: claimed[190].attempt, holder: 1, leaseDeadline: lease + 1) }
        }
        // Group commits of many requests, as a busy daemon makes them (each request isolated).
        for start in stride(from: 200, to: 600, by: 100) {
            let errors: [StoreError]
            do {
                errors = try store.write { batch in
                    var errors: [StoreError] = []
                    for (n, task) in claimed[start..<(start + 100)].enumerated() {
                        do throws(StoreError) {
                            switch n % 4 {
                            case 0, 1: _ = try batch.ack(id: task.id, attempt: task.attempt, holder: 1, now: t0)
                            case 2: _ = try batch.fail(id: task.id, attempt: task.attempt, holder: 1, error: "e",
                                                       retry: n % 8 == 2, now: t0)
                            default: _ = try batch.release(id: task.id, attempt: task.attempt, holder: 1)
                            }
                        } catch {
                            errors.append(error)
                        }
                    }
                    return errors
                }
            } catch {
                failures.append("group commit at \(start): \(error)")
                continue
            }
            if let first = errors.first { failures.append("group commit at \(start): \(errors.count) failed, first \(first)") }
        }
        settle("release holder") {
            let ended = try store.releaseHolder(2, reason: "worker disconnected", now: t0)
            #expect(ended.count == 50)
        }
        settle("expire") {
            let expired = try store.expireLeases(now: t0 + 2 * second)
            #expect(expired.count == 50)
        }
        let dead = try store.stats(now: t0).dead
        #expect(dead > 0)
        settle("purge") {
            let purged = try store.purgeDead(.all)
            #expect(purged == Int(dead))
        }
        let remaining = Set(filled.ids).subtracting(claimed[0..<100].map(\.id))
        let someIDs = Array(filled.ids.filter { remaining.contains($0) }.prefix(1_000))
        settle("remove") { _ = try store.remove(.ids(someIDs)) }
        #expect(failures.count == 0, "first: \(failures.prefix(3))")
        #expect(try store.verifyIndexes() == [])
    }

    /// The store on a real small filesystem (a 16 MiB tmpfs) with a maximum far beyond it: every add that does not
    /// fit fails with `storeFull` (an add used to fail with LMDB's "Input/output error", the short write of a full
    /// disk), finished tasks and removals still commit, removals make room for adds, and nothing is lost.
    /// With an initial map the disk cannot hold (opened without the writable map) and with one it can (the store
    /// writes through the map until the disk refuses its growth).
    @Test(.enabled(if: SmallFilesystem.isAvailable, "mounting a tmpfs needs root"), arguments: [64 << 20, 1 << 20])
    func aFullDiskIsStoreFullNeverAnIOError(initialMapBytes: Int) throws {
        let fs = try SmallFilesystem(bytes: 16 << 20)
        defer { fs.unmount() }
        let directory = fs.path + "/store"
        let options = StoreOptions(initialMapBytes: initialMapBytes, maxMapBytes: 1 << 30)
        do {
            let store = try LMDBTaskStore(directory: directory, options: options, random: SeededRandom(seed: 3))
            defer { store.close() }
            let filled = Self.fill(store, prefix: "d", batchSize: 100)
            #expect(filled.errors.count == 2)
            #expect(filled.errors.allSatisfy { $0.code == .storeFull }, "\(filled.errors)")
            #expect(filled.ids.count > 10_000)
            // Deliveries settle on the full disk.
            let claimed = try store.claim(callbacks: ["cb"], max: 300, holder: 1, leaseDeadline: t0 + second, now: t0)
            #expect(claimed.count == 300)
            var failedAcks = 0
            for task in claimed {
                if storeError({ _ = try store.ack(id: task.id, attempt: task.attempt, holder: 1, now: t0) }) != nil {
                    failedAcks += 1
                }
            }
            #expect(failedAcks == 0)
            // A removal of 5,000 tasks commits, and makes room for adds.
            let acked = Set(claimed.map(\.id))
            let removed = Array(filled.ids.lazy.filter { !acked.contains($0) }.prefix(5_000))
            #expect(try store.remove(.ids(removed)) == 5_000)
            for n in 0..<20 {
                let error = storeError { _ = try store.add((0..<100).map { spec("again\(n)-\($0)", kwargs: Self.kwargs) }, now: t0) }
                #expect(error == nil, "batch \(n): \(String(describing: error))")
            }
            #expect(try store.verifyIndexes() == [])
        }
        // Nothing half-written: a reopened store has every task it reported.
        let reopened = try LMDBTaskStore(directory: directory, options: options)
        defer { reopened.close() }
        #expect(try reopened.verifyIndexes() == [])
        #expect(try reopened.fetch(.ids(["again19-99"])).count == 1)
    }

    /// Space that comes back is used without a reopen: on a disk that another file fills, adds get `storeFull`;
    /// once that file is gone, they succeed again.
    @Test(.enabled(if: SmallFilesystem.isAvailable, "mounting a tmpfs needs root"), arguments: [false, true])
    func aStoreOnAFullDiskRecoversWhenSpaceReturns(writeMap: Bool) throws {
        let fs = try SmallFilesystem(bytes: 16 << 20)
        defer { fs.unmount() }
        var options = StoreOptions(initialMapBytes: 1 << 20, maxMapBytes: 1 << 30)
        options.writeMap = writeMap
        let store = try LMDBTaskStore(directory: fs.path + "/store", options: options, random: SeededRandom(seed: 4))
        defer { store.close() }
        // Another program leaves the store 4 MiB.
        try fs.fill(leavingBytes: 4 << 20)
        let first = Self.fill(store, prefix: "a", batchSize: 100)
        #expect(first.errors.count == 2 && first.errors.allSatisfy { $0.code == .storeFull }, "\(first.errors)")
        #expect(!first.ids.isEmpty)
        fs.removeFiller()
        let second = Self.fill(store, prefix: "b", batchSize: 100, limit: first.ids.count * 2)
        #expect(second.errors.isEmpty, "\(second.errors)")
        #expect(second.ids.count >= first.ids.count * 2)
        #expect(try store.verifyIndexes() == [])
    }
}
