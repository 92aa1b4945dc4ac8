#if canImport(Glibc)
import Glibc
#endif
import CLMDB

/// An LMDB environment: one data file (plus LMDB's lock file) mapped into memory.
///
/// - Important: Open one environment per data file per process (LMDB's rule; `LMDBTaskStore` enforces it with
///   a directory lock). The environment must outlive every transaction begun on it. Changing the map size
///   (`setMapSize`) requires that no transaction of this process is active.
package final class LMDBEnvironment {
    /// Flags for `mdb_env_open`.
    package struct Flags: OptionSet, Sendable {
        package var rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `MDB_NOSYNC`: do not fsync on commit (fast, not durable across a system crash).
        package static let noSync = Flags(rawValue: UInt32(MDB_NOSYNC))
        /// `MDB_NOMETASYNC`: fsync data but not the meta page on commit.
        package static let noMetaSync = Flags(rawValue: UInt32(MDB_NOMETASYNC))
        /// `MDB_NORDAHEAD`: no read-ahead on the map (better for stores larger than memory).
        package static let noReadAhead = Flags(rawValue: UInt32(MDB_NORDAHEAD))
        /// `MDB_NOTLS`: read transactions are not tied to a thread's reader slot.
        package static let noTLS = Flags(rawValue: UInt32(MDB_NOTLS))
        /// `MDB_WRITEMAP`: write transactions change the map in place instead of copying pages to the heap and
        /// `pwrite`-ing them at commit. LMDB then refuses nested transactions, and sizes the data file to the map
        /// (sparse) at every map change.
        package static let writeMap = Flags(rawValue: UInt32(MDB_WRITEMAP))
    }

    /// Size facts from `mdb_env_info` and `mdb_env_stat`.
    package struct Info: Sendable, Hashable {
        /// The current map size in bytes.
        package var mapSize: Int
        /// Number of the last used page (the high-water mark of the data file).
        package var lastPageNumber: Int
        /// The page size.
        package var pageSize: Int
        /// Id of the last committed write transaction (`me_last_txnid`): it grows by one per commit that wrote.
        package var lastTransactionID: Int = 0
        /// Bytes up to the high-water mark: `(lastPageNumber + 1) * pageSize`.
        package var usedBytes: Int { (lastPageNumber + 1) * pageSize }
    }

    /// The `MDB_env` pointer. Valid until deinit.
    let handle: OpaquePointer

    /// Creates and opens an environment in the existing directory `path`.
    ///
    /// Corresponds to `mdb_env_create`, `mdb_env_set_maxdbs`, `mdb_env_set_mapsize` and `mdb_env_open`; the
    /// environment is closed again (`mdb_env_close`) if any step fails.
    /// - Parameters:
    ///   - path: Directory holding `data.mdb` and `lock.mdb`.
    ///   - mapSize: Initial map size in bytes (LMDB keeps the larger of this and the file's recorded size).
    ///   - maxDatabases: Most named databases.
    ///   - flags: Environment flags.
    ///   - mode: File mode for newly created files.
    /// - Throws: `LMDBError` with the failing call's code (for example `ENOENT`, `EACCES`, `MDB_INVALID`).
    package init(path: String, mapSize: Int, maxDatabases: UInt32, flags: Flags, mode: mode_t = 0o600)
        throws(LMDBError)
    {
        var env: OpaquePointer?
        try lmdbCheck(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(ENOMEM, "mdb_env_create") }
        do {
            try lmdbCheck(mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)), "mdb_env_set_maxdbs")
            try lmdbCheck(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            try lmdbCheck(mdb_env_open(env, path, flags.rawValue, mode), "mdb_env_open")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
    }

    deinit {
        mdb_env_close(handle)
    }

    /// Clears reader slots left by dead processes or threads and returns how many were cleared.
    ///
    /// Corresponds to `mdb_reader_check`.
    /// - Throws: `LMDBError` if the lock table cannot be read.
    @discardableResult
    package func readerCheck() throws(LMDBError) -> Int {
        var dead: Int32 = 0
        try lmdbCheck(mdb_reader_check(handle, &dead), "mdb_reader_check")
        return Int(dead)
    }

    /// Sets the map size; 0 adopts the size recorded by another process.
    ///
    /// Corresponds to `mdb_env_set_mapsize`. LMDB raises a size below the data in use to that size.
    /// - Important: No transaction of this process may be active.
    /// - Throws: `LMDBError` (for example `EINVAL` while a write transaction is active, or `ENOMEM`).
    package func setMapSize(_ bytes: Int) throws(LMDBError) {
        try lmdbCheck(mdb_env_set_mapsize(handle, bytes), "mdb_env_set_mapsize")
    }

    /// Map size, high-water mark and page size. Corresponds to `mdb_env_info` and `mdb_env_stat`.
    package func info() -> Info {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        // Both calls only read the environment's memory and cannot fail for a valid env.
        _ = mdb_env_info(handle, &info)
        _ = mdb_env_stat(handle, &stat)
        return Info(mapSize: info.me_mapsize, lastPageNumber: info.me_last_pgno, pageSize: Int(stat.ms_psize),
                    lastTransactionID: info.me_last_txnid)
    }

    /// Flushes buffers to disk; with `force` even when the environment was opened with `noSync`.
    ///
    /// Corresponds to `mdb_env_sync`.
    /// - Throws: `LMDBError` with the I/O error.
    package func sync(force: Bool) throws(LMDBError) {
        try lmdbCheck(mdb_env_sync(handle, force ? 1 : 0), "mdb_env_sync")
    }

    /// Allocates disk blocks for the first `bytes` of the data file (`posix_fallocate`), so that writing
    /// through a writable map (`writeMap`) can never meet a full disk: that would be a `SIGBUS` at the store's
    /// first touch of the page, not an error. Blocks already allocated stay as they are.
    /// - Throws: `LMDBError` with the `posix_fallocate` error (`ENOSPC`, `EFBIG`, ...), or `EBADF` when the
    ///   environment has no file descriptor.
    package func preallocate(_ bytes: Int) throws(LMDBError) {
        guard let fd = fileDescriptor else { throw LMDBError(EBADF, "mdb_env_get_fd") }
        let rc = posix_fallocate(fd, 0, off_t(bytes))
        if rc != 0 { throw LMDBError(rc, "posix_fallocate") }
    }

    /// The largest key (and `MDB_DUPSORT` value) LMDB accepts. Corresponds to `mdb_env_get_maxkeysize`.
    package var maxKeySize: Int { Int(mdb_env_get_maxkeysize(handle)) }

    /// The data file's descriptor, for `fstat`. Corresponds to `mdb_env_get_fd`.
    package var fileDescriptor: Int32? {
        var fd: Int32 = -1
        guard mdb_env_get_fd(handle, &fd) == 0, fd >= 0 else { return nil }
        return fd
    }
}
