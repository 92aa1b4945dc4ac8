import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// For every store kind in `behaviourKinds`.
@Suite("Group commit")
struct GroupCommitTests {
    @Test(arguments: behaviourKinds)
    func aFailingRequestRollsBackAloneAndOthersCommit(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("exists")], now: t0)
        func batch<S: TaskStore>(_ store: S) throws -> [Result<Int, StoreError>] {
            try store.write { (batch: inout S.WriteBatch) throws(StoreError) in
                var out: [Result<Int, StoreError>] = []
                out.append(Result { () throws(StoreError) in try batch.add([spec("r1")], onConflict: .fail, now: t0).count })
                // Stores "half" then fails on "exists": must leave nothing behind.
                out.append(Result { () throws(StoreError) in try batch.add([spec("half"), spec("exists")], onConflict: .fail, now: t0).count })
                out.append(Result { () throws(StoreError) in try batch.pause(.ids(["r1"]), now: t0) })
                out.append(Result { () throws(StoreError) in try batch.fetch(.ids(["r1"])).count })
                return out
            }
        }
        let results = try batch(store)
        #expect(try results[0].get() == 1)
        #expect((try? results[1].get()) == nil)
        if case .failure(let e) = results[1] { #expect(e.code == .taskExists) }
        #expect(try results[2].get() == 1)
        #expect(try results[3].get() == 1)
        #expect(try store.all().map(\.id).sorted() == ["exists", "r1"])
        let s = try store.stats(now: t0)
        #expect(s.due == 1 && s.paused == 1)
    }

    @Test(arguments: behaviourKinds)
    func withoutIsolationAnErrorAbortsEverything(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        _ = try store.add([spec("exists")], now: t0)
        func batch<S: TaskStore>(_ store: S) throws {
            _ = try store.write(isolatingRequests: false) { (batch: inout S.WriteBatch) throws(StoreError) -> Int in
                _ = try batch.add([spec("new")], onConflict: .fail, now: t0)
                // A caught error still poisons the batch.
                _ = try? batch.add([spec("exists")], onConflict: .fail, now: t0)
                return 0
            }
        }
        let error = storeError { try batch(store) }
        #expect(error?.code == .taskExists)
        #expect(try store.all().map(\.id) == ["exists"])
    }

    @Test(arguments: behaviourKinds)
    func aThrowingBodyAbortsTheTransaction(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        func batch<S: TaskStore>(_ store: S) throws {
            _ = try store.write { (batch: inout S.WriteBatch) throws(StoreError) -> Int in
                _ = try batch.add([spec("a")], onConflict: .replace, now: t0)
                throw StoreError(code: .invalidArgument, message: "caller gave up")
            }
        }
        let error = storeError { try batch(store) }
        #expect(error?.message == "caller gave up")
        #expect(try store.all().isEmpty)
    }
}
