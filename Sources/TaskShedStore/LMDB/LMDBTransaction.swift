import CLMDB

/// Makes an `MDB_val` that points into `bytes` (LMDB never writes through a key or input value pointer).
@inline(__always)
func mdbVal(_ bytes: UnsafeRawBufferPointer) -> MDB_val {
    MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
}

/// Views an `MDB_val` returned by LMDB as bytes.
@inline(__always)
func bytes(of val: MDB_val) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: val.mv_data, count: val.mv_size)
}

/// An LMDB transaction: read-only, read-write, or a nested read-write child of another write transaction.
///
/// - Important: A transaction belongs to the thread that began it. It ends exactly once, by `commit()` or
///   `abort()` (or by deinit, which aborts). A failed commit has already freed the transaction in LMDB, so it is
///   never aborted afterwards (this wrapper takes care of that). While a child is open, its parent must not be
///   used. Bytes returned by `get` and by cursors point into the map: copy them before the transaction ends or
///   the same transaction writes again.
package final class LMDBTransaction {
    /// The `MDB_txn` pointer, `nil` once the transaction has ended.
    private(set) var handle: OpaquePointer?
    /// Whether the transaction was begun with `MDB_RDONLY`.
    package let isReadOnly: Bool

    /// Begins a transaction.
    ///
    /// Corresponds to `mdb_txn_begin`. A write transaction waits for the environment's single writer lock.
    /// - Parameters:
    ///   - environment: The environment.
    ///   - parent: For a nested transaction, the open write transaction it is a child of.
    ///   - readOnly: `MDB_RDONLY`.
    /// - Throws: `LMDBError` (`MDB_MAP_RESIZED`, `MDB_READERS_FULL`, `ENOMEM`, `MDB_PANIC`).
    package init(environment: LMDBEnvironment, parent: LMDBTransaction? = nil, readOnly: Bool) throws(LMDBError) {
        precondition(parent == nil || (!readOnly && parent?.isReadOnly == false), "a child must be read-write")
        var txn: OpaquePointer?
        let flags: UInt32 = readOnly ? UInt32(MDB_RDONLY) : 0
        try lmdbCheck(mdb_txn_begin(environment.handle, parent?.handle, flags, &txn), "mdb_txn_begin")
        self.handle = txn
        self.isReadOnly = readOnly
    }

    deinit {
        if let handle { mdb_txn_abort(handle) }
    }

    /// The transaction's id (`mdb_txn_id`): for a read-only one, the id of the committed write it sees.
    var id: Int { Int(mdb_txn_id(live)) }

    /// The live handle; using an ended transaction is a programmer error.
    @inline(__always)
    var live: OpaquePointer {
        guard let handle else { preconditionFailure("LMDB transaction used after it ended") }
        return handle
    }

    /// Commits. The transaction has ended afterwards whether or not the commit succeeded.
    ///
    /// Corresponds to `mdb_txn_commit`. A child's changes become part of its parent; a top-level write
    /// transaction is durable on return unless the environment was opened with `MDB_NOSYNC`.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL` while writing the free list, `EIO`, `ENOSPC`, `ENOMEM`).
    package func commit() throws(LMDBError) {
        let txn = live
        handle = nil
        try lmdbCheck(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    /// Aborts (discards every change). Corresponds to `mdb_txn_abort`. Ending an ended transaction traps.
    package func abort() {
        let txn = live
        handle = nil
        mdb_txn_abort(txn)
    }

    /// Opens (or with `.create`, creates) a named database.
    ///
    /// Corresponds to `mdb_dbi_open`.
    /// - Returns: The handle, or `nil` when the database does not exist and `.create` was not given.
    /// - Throws: `LMDBError` (`MDB_DBS_FULL`, `MDB_INCOMPATIBLE` for mismatched flags).
    package func openDatabase(_ name: String?, flags: LMDBDatabase.Flags) throws(LMDBError) -> LMDBDatabase? {
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(live, name, flags.rawValue, &dbi)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_dbi_open(\(name ?? "main"))")
        return LMDBDatabase(dbi: dbi)
    }

    /// Reads the value of `key` (the first value for a `MDB_DUPSORT` key).
    ///
    /// Corresponds to `mdb_get`.
    /// - Returns: Bytes inside the map (valid until this transaction writes or ends), or `nil` if absent.
    /// - Throws: `LMDBError` (`EINVAL` for a bad key).
    package func get(_ db: LMDBDatabase, key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var v = MDB_val()
        let txn = live
        let rc = key.withUnsafeBytes { kb in
            var k = mdbVal(kb)
            return mdb_get(txn, db.dbi, &k, &v)
        }
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_get")
        return bytes(of: v)
    }

    /// The result of a put that must not overwrite.
    package enum InsertResult {
        /// The pair was stored.
        case inserted
        /// The key existed; its current value (valid until this transaction writes or ends).
        case exists(UnsafeRawBufferPointer)
    }

    /// Stores a pair only if the key is absent (`MDB_NOOVERWRITE`); otherwise reports the existing value.
    ///
    /// Corresponds to `mdb_put` with `MDB_NOOVERWRITE`.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES` in a read-only transaction, `EINVAL`).
    package func insert(_ db: LMDBDatabase, key: [UInt8], value: [UInt8]) throws(LMDBError) -> InsertResult {
        var v = MDB_val()
        let txn = live
        let rc = key.withUnsafeBytes { kb in
            value.withUnsafeBytes { vb in
                var k = mdbVal(kb)
                v = mdbVal(vb)
                return mdb_put(txn, db.dbi, &k, &v, UInt32(MDB_NOOVERWRITE))
            }
        }
        if rc == MDB_KEYEXIST { return .exists(bytes(of: v)) }
        try lmdbCheck(rc, "mdb_put")
        return .inserted
    }

    /// Stores a pair, replacing the key's value (for a `MDB_DUPSORT` database: adding the value to the key).
    ///
    /// Corresponds to `mdb_put`.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES` in a read-only transaction, `EINVAL`).
    package func put(_ db: LMDBDatabase, key: [UInt8], value: [UInt8]) throws(LMDBError) {
        let txn = live
        let rc = key.withUnsafeBytes { kb in
            value.withUnsafeBytes { vb in
                var k = mdbVal(kb)
                var v = mdbVal(vb)
                return mdb_put(txn, db.dbi, &k, &v, 0)
            }
        }
        try lmdbCheck(rc, "mdb_put")
    }

    /// Deletes a key (with `value`: only that value of a `MDB_DUPSORT` key).
    ///
    /// Corresponds to `mdb_del`.
    /// - Returns: `false` if there was nothing to delete.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`: deleting also needs free pages; `EACCES`, `EINVAL`).
    @discardableResult
    package func delete(_ db: LMDBDatabase, key: [UInt8], value: [UInt8]? = nil) throws(LMDBError) -> Bool {
        let txn = live
        let rc = key.withUnsafeBytes { kb in
            var k = mdbVal(kb)
            guard let value else { return mdb_del(txn, db.dbi, &k, nil) }
            return value.withUnsafeBytes { vb in
                var v = mdbVal(vb)
                return mdb_del(txn, db.dbi, &k, &v)
            }
        }
        if rc == MDB_NOTFOUND { return false }
        try lmdbCheck(rc, "mdb_del")
        return true
    }

    /// Removes every entry of a database, keeping the database. Corresponds to `mdb_drop` with `del = 0`.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `EACCES`).
    package func empty(_ db: LMDBDatabase) throws(LMDBError) {
        try lmdbCheck(mdb_drop(live, db.dbi, 0), "mdb_drop")
    }

    /// Number of entries of a database. Corresponds to `mdb_stat`.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func entryCount(_ db: LMDBDatabase) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try lmdbCheck(mdb_stat(live, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Pages of a database's B-tree in this transaction's view: branch, leaf and overflow pages (pages freed
    /// by copy-on-write are not in a tree, so they do not count). Corresponds to `mdb_stat`.
    /// - Throws: `LMDBError` (`EINVAL` for a handle this transaction does not know).
    package func pageCount(_ db: LMDBDatabase) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try lmdbCheck(mdb_stat(live, db.dbi, &stat), "mdb_stat")
        return stat.ms_branch_pages + stat.ms_leaf_pages + stat.ms_overflow_pages
    }

    // MARK: Raw-pointer variants (no array needed for keys that already live in contiguous memory)

    /// `get` with a key given as raw bytes. Corresponds to `mdb_get`.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func get(_ db: LMDBDatabase, rawKey: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var k = mdbVal(rawKey)
        var v = MDB_val()
        let rc = mdb_get(live, db.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_get")
        return bytes(of: v)
    }

    /// `put` with raw key and value bytes. Corresponds to `mdb_put`.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES`, `EINVAL`).
    package func put(_ db: LMDBDatabase, rawKey: UnsafeRawBufferPointer, rawValue: UnsafeRawBufferPointer)
        throws(LMDBError)
    {
        var k = mdbVal(rawKey)
        var v = mdbVal(rawValue)
        try lmdbCheck(mdb_put(live, db.dbi, &k, &v, 0), "mdb_put")
    }

    /// `delete` with raw key (and optional value) bytes. Corresponds to `mdb_del`.
    /// - Returns: `false` if there was nothing to delete.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `EACCES`, `EINVAL`).
    @discardableResult
    package func delete(_ db: LMDBDatabase, rawKey: UnsafeRawBufferPointer, rawValue: UnsafeRawBufferPointer?)
        throws(LMDBError) -> Bool
    {
        var k = mdbVal(rawKey)
        let rc: Int32
        if let rawValue {
            var v = mdbVal(rawValue)
            rc = mdb_del(live, db.dbi, &k, &v)
        } else {
            rc = mdb_del(live, db.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        try lmdbCheck(rc, "mdb_del")
        return true
    }
}
