import CLMDB

/// A cursor over one database inside one transaction.
///
/// - Important: Close it (`close()`) before its transaction ends; it must not outlive the transaction. Bytes it
///   returns point into the map and are valid until the transaction writes or ends.
package final class LMDBCursor {
    private var handle: OpaquePointer?

    /// Opens a cursor. Corresponds to `mdb_cursor_open`.
    /// - Throws: `LMDBError` (`EINVAL`, `ENOMEM`).
    package init(transaction: LMDBTransaction, database: LMDBDatabase) throws(LMDBError) {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(transaction.live, database.dbi, &cursor), "mdb_cursor_open")
        self.handle = cursor
    }

    /// Closes the cursor. Corresponds to `mdb_cursor_close`. Must run before the transaction ends.
    package func close() {
        if let handle { mdb_cursor_close(handle) }
        handle = nil
    }

    /// A key and value the cursor points at.
    package typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    /// Moves the cursor without a search key (`MDB_FIRST`, `MDB_NEXT`, `MDB_NEXT_DUP`, `MDB_NEXT_NODUP`,
    /// `MDB_GET_CURRENT`, `MDB_LAST`, ...).
    ///
    /// Corresponds to `mdb_cursor_get`.
    /// - Returns: The entry, or `nil` at the end (`MDB_NOTFOUND`).
    /// - Throws: `LMDBError` (`EINVAL`).
    package func move(_ op: MDB_cursor_op) throws(LMDBError) -> Entry? {
        var k = MDB_val()
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return (bytes(of: k), bytes(of: v))
    }

    /// Positions at the first key >= `key` (`MDB_SET_RANGE`), or exactly at `key` (`MDB_SET_KEY`).
    ///
    /// Corresponds to `mdb_cursor_get`.
    /// - Returns: The entry, or `nil` when there is none.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func seek(_ key: [UInt8], exact: Bool = false) throws(LMDBError) -> Entry? {
        var k = MDB_val()
        var v = MDB_val()
        let cursor = handle
        let rc = key.withUnsafeBytes { kb in
            k = mdbVal(kb)
            return mdb_cursor_get(cursor, &k, &v, exact ? MDB_SET_KEY : MDB_SET_RANGE)
        }
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return (bytes(of: k), bytes(of: v))
    }

    /// In a `MDB_DUPSORT` database, positions at `key` and its first value >= `value` (`MDB_GET_BOTH_RANGE`).
    ///
    /// Corresponds to `mdb_cursor_get`.
    /// - Returns: The entry, or `nil` when `key` is absent or has no such value.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func seek(_ key: [UInt8], valueAtLeast value: [UInt8]) throws(LMDBError) -> Entry? {
        var k = MDB_val()
        var v = MDB_val()
        let cursor = handle
        let rc = key.withUnsafeBytes { kb in
            value.withUnsafeBytes { vb in
                k = mdbVal(kb)
                v = mdbVal(vb)
                return mdb_cursor_get(cursor, &k, &v, MDB_GET_BOTH_RANGE)
            }
        }
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return (bytes(of: k), bytes(of: v))
    }

    /// Positions exactly at `key` (`MDB_SET_KEY`), with the key given as raw bytes.
    ///
    /// Corresponds to `mdb_cursor_get`.
    /// - Returns: The entry, or `nil` when the key is absent.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func seek(exactRawKey key: UnsafeRawBufferPointer) throws(LMDBError) -> Entry? {
        var k = mdbVal(key)
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, MDB_SET_KEY)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return (bytes(of: k), bytes(of: v))
    }

    /// Replaces the value of the entry the cursor is at (`MDB_CURRENT`; the size may change). `key` must be that
    /// entry's key. Saves the tree search a `put` would make.
    ///
    /// Corresponds to `mdb_cursor_put` with `MDB_CURRENT`. Not for `MDB_DUPSORT` databases.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES` in a read-only transaction, `EINVAL` when
    ///   the cursor is not positioned).
    package func replaceCurrent(rawKey: UnsafeRawBufferPointer, rawValue: UnsafeRawBufferPointer) throws(LMDBError) {
        var k = mdbVal(rawKey)
        var v = mdbVal(rawValue)
        try lmdbCheck(mdb_cursor_put(handle, &k, &v, UInt32(MDB_CURRENT)), "mdb_cursor_put")
    }

    /// Stores a pair (replacing the key's value) and leaves the cursor at it.
    ///
    /// Corresponds to `mdb_cursor_put` with flags 0. Not for `MDB_DUPSORT` databases.
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES` in a read-only transaction, `EINVAL`).
    package func put(rawKey: UnsafeRawBufferPointer, rawValue: UnsafeRawBufferPointer) throws(LMDBError) {
        var k = mdbVal(rawKey)
        var v = mdbVal(rawValue)
        try lmdbCheck(mdb_cursor_put(handle, &k, &v, 0), "mdb_cursor_put")
    }

    /// Positions at the first key >= `key` (`MDB_SET_RANGE`), with the key given as raw bytes.
    ///
    /// Corresponds to `mdb_cursor_get`.
    /// - Returns: The entry, or `nil` when every key is smaller.
    /// - Throws: `LMDBError` (`EINVAL`).
    package func seek(atLeastRawKey key: UnsafeRawBufferPointer) throws(LMDBError) -> Entry? {
        var k = mdbVal(key)
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, MDB_SET_RANGE)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return (bytes(of: k), bytes(of: v))
    }

    /// Deletes the entry the cursor is at. Corresponds to `mdb_cursor_del` (flags 0).
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `EACCES`, `EINVAL` when the cursor is not positioned).
    package func deleteCurrent() throws(LMDBError) {
        try lmdbCheck(mdb_cursor_del(handle, 0), "mdb_cursor_del")
    }

    /// Stores a pair after the database's last key (`MDB_APPEND`): no key search, and a full page splits at
    /// the end, so that ascending inserts leave full pages behind.
    ///
    /// Corresponds to `mdb_cursor_put` with `MDB_APPEND`. Not for `MDB_DUPSORT` databases.
    /// - Returns: `false`, having written nothing, when `key` does not sort after the last key (LMDB's
    ///   `MDB_KEYEXIST` here says only that; the key may or may not exist).
    /// - Throws: `LMDBError` (`MDB_MAP_FULL`, `MDB_TXN_FULL`, `EACCES` in a read-only transaction, `EINVAL`).
    package func append(rawKey: UnsafeRawBufferPointer, rawValue: UnsafeRawBufferPointer) throws(LMDBError) -> Bool {
        var k = mdbVal(rawKey)
        var v = mdbVal(rawValue)
        let rc = mdb_cursor_put(handle, &k, &v, UInt32(MDB_APPEND))
        if rc == MDB_KEYEXIST { return false }
        try lmdbCheck(rc, "mdb_cursor_put")
        return true
    }
}
