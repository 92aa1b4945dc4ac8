import Foundation
import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// A deterministic generator (SplitMix64) so ids and jitter repeat from run to run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh directory under the system temp dir, removed when the value is freed.
final class TempDirectory {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "taskshed-store-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The store's own directory inside this one.
    var store: String { path + "/store" }
}

/// One second in microseconds.
let second: Int64 = 1_000_000
/// A fixed "now" for tests (2026-01-01T00:00:00Z).
let t0: Int64 = 1_767_225_600 * second

/// Test options: durable off for speed where durability is not what the test is about, jitter off so that retry
/// delays are exact.
func testOptions(
    durable: Bool = false, retry: RetryPolicy = RetryPolicy(minJitter: 1.0),
    maxKwargsBytes: Int = Int(ProtocolLimits.defaultMaxKwargsBytes)
) -> StoreOptions {
    StoreOptions(initialMapBytes: 1 << 20, maxMapBytes: 1 << 30, durable: durable, maxKwargsBytes: maxKwargsBytes,
                 retry: retry)
}

/// An LMDB store in `dir`, for the tests of what only LMDB does (behaviour tests open theirs with `StoreFixture`).
func openStore(_ dir: TempDirectory, options: StoreOptions = testOptions(), seed: UInt64 = 1) throws -> LMDBTaskStore {
    try LMDBTaskStore(directory: dir.store, options: options, random: SeededRandom(seed: seed))
}

func spec(
    _ id: String?, callback: String = "cb", runAt: Int64? = t0, schedule: Schedule = .once, group: String? = nil,
    paused: Bool = false, coalesce: Bool = true, maxAttempts: UInt32 = 0, kwargs: String = ""
) -> TaskSpec {
    TaskSpec(
        id: id, callback: callback, runAt: runAt, schedule: schedule, kwargs: Array(kwargs.utf8), group: group,
        paused: paused, coalesce: coalesce, maxAttempts: maxAttempts)
}

extension LMDBTaskStore {
    /// Deletes the id sequence the store keeps in `meta`, so that the next opening with the same seed draws the
    /// ids this one drew (the tests force collisions of generated ids with it).
    func forgetIDSequence() throws {
        try write { (batch: inout LMDBWriteBatch) throws(StoreError) in
            let txn = batch.context.txn
            let meta = batch.context.dbs.meta
            _ = try lmdb { () throws(LMDBError) in try txn.delete(meta, key: StoreContext.idSequenceKey) }
        }
    }
}

extension TaskStore {
    /// The one task with this id (fails the test's expectation by returning nil if absent).
    func one(_ id: String) throws -> TaskRecord? {
        try fetch(.ids([id])).first
    }

    /// Every task, through list pagination.
    func all(now: Int64 = t0, filter: TaskFilter = TaskFilter(), pageSize: Int = 1000) throws -> [TaskRecord] {
        var out: [TaskRecord] = []
        var cursor: [UInt8]?
        repeat {
            let page = try list(filter: filter, limit: pageSize, cursor: cursor, now: now)
            out += page.tasks
            cursor = page.nextCursor
        } while cursor != nil
        return out
    }
}

/// Runs `body` and returns the `StoreError` it throws, or nil.
func storeError(_ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        Issue.record("expected a StoreError, got \(error)")
        return nil
    }
}
