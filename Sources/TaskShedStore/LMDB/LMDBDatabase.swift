import CLMDB

/// A handle of a named database inside an environment (`MDB_dbi`).
///
/// Handles are opened once, in a write transaction that commits, and stay valid for the environment's
/// lifetime (LMDB's rule: a handle opened in an aborted transaction is closed with it).
package struct LMDBDatabase: Sendable, Hashable {
    /// Flags for `mdb_dbi_open`.
    package struct Flags: OptionSet, Sendable {
        package var rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `MDB_CREATE`: create the database if it does not exist (write transactions only).
        package static let create = Flags(rawValue: UInt32(MDB_CREATE))
        /// `MDB_DUPSORT`: a key may hold many sorted values.
        package static let dupSort = Flags(rawValue: UInt32(MDB_DUPSORT))
    }

    /// The raw `MDB_dbi`.
    package let dbi: MDB_dbi

    /// LMDB's free-page database (`FREE_DBI`, handle 0 in every environment): its records list the pages that
    /// commits freed. Not named in `lmdb.h`; LMDB's own `mdb_stat -f` reads it through this handle. Only for
    /// `LMDBTransaction.pageCount`: the store never reads or writes its records.
    package static let freePages = LMDBDatabase(dbi: 0)
    /// The main database (`MAIN_DBI`, handle 1, what `mdb_dbi_open` returns for no name): it holds the named
    /// databases' roots.
    package static let main = LMDBDatabase(dbi: 1)

    /// Wraps an opened handle.
    package init(dbi: MDB_dbi) {
        self.dbi = dbi
    }
}
