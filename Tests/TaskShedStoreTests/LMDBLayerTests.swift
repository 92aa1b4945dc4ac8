import CLMDB
import Glibc
import Testing
@testable import TaskShedStore

@Suite("LMDB layer")
struct LMDBLayerTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func nestedTransactionsCommitIntoTheirParentOrRollBackAlone() throws {
        let dir = TempDirectory()
        mkdir(dir.store, 0o700)
        let env = try LMDBEnvironment(path: dir.store, mapSize: 1 << 20, maxDatabases: 4, flags: [.noTLS])
        let top = try LMDBTransaction(environment: env, readOnly: false)
        let db = try #require(try top.openDatabase("d", flags: [.create]))
        try top.put(db, key: bytes("a"), value: bytes("1"))

        let kept = try LMDBTransaction(environment: env, parent: top, readOnly: false)
        try kept.put(db, key: bytes("b"), value: bytes("2"))
        try kept.commit()

        let dropped = try LMDBTransaction(environment: env, parent: top, readOnly: false)
        try dropped.put(db, key: bytes("c"), value: bytes("3"))
        #expect(try dropped.delete(db, key: bytes("a")))
        dropped.abort()

        #expect(try top.get(db, key: bytes("a")).map(Array.init) == bytes("1"))
        #expect(try top.get(db, key: bytes("b")).map(Array.init) == bytes("2"))
        #expect(try top.get(db, key: bytes("c")) == nil)
        try top.commit()

        let read = try LMDBTransaction(environment: env, readOnly: true)
        defer { read.abort() }
        #expect(try read.entryCount(db) == 2)
    }

    @Test func insertReportsTheExistingValueAndErrorsKeepCodeAndText() throws {
        let dir = TempDirectory()
        mkdir(dir.store, 0o700)
        let env = try LMDBEnvironment(path: dir.store, mapSize: 1 << 20, maxDatabases: 4, flags: [])
        let txn = try LMDBTransaction(environment: env, readOnly: false)
        let db = try #require(try txn.openDatabase("d", flags: [.create]))
        guard case .inserted = try txn.insert(db, key: bytes("k"), value: bytes("v1")) else {
            Issue.record("first insert must store")
            return
        }
        guard case .exists(let old) = try txn.insert(db, key: bytes("k"), value: bytes("v2")) else {
            Issue.record("second insert must report the existing value")
            return
        }
        #expect(Array(old) == bytes("v1"))
        // A key longer than LMDB's limit is rejected with the raw code and mdb_strerror's text.
        let long = [UInt8](repeating: 1, count: env.maxKeySize + 1)
        do {
            try txn.put(db, key: long, value: [])
            Issue.record("an over-long key must fail")
        } catch {
            #expect(error.code == MDB_BAD_VALSIZE)
            #expect(error.operation == "mdb_put")
            #expect(error.description.contains("MDB_BAD_VALSIZE: Unsupported size"))
        }
        txn.abort()
        #expect(LMDBError(MDB_MAP_FULL, "mdb_put").isMapFull)
        #expect(LMDBError(MDB_MAP_FULL, "mdb_put").message.contains("MDB_MAP_FULL"))
    }

    /// A disk without room for the data file (or a file size limit, or a quota) is `storeFull` with a message
    /// that says so, not an internal error; other LMDB failures stay internal, and the LMDB code is kept.
    @Test(arguments: [(ENOSPC, true), (EFBIG, true), (EDQUOT, true), (EIO, false), (MDB_CORRUPTED, false)])
    func aFullDiskIsStoreFull(code: Int32, full: Bool) {
        let error = StoreError.lmdb(LMDBError(code, "mdb_txn_commit"))
        #expect(error.code == (full ? .storeFull : .internalError))
        #expect(error.lmdbCode == code)
        #expect(error.message.contains("mdb_txn_commit"))
        #expect(error.message.contains("no room on the disk") == full)
    }
}
