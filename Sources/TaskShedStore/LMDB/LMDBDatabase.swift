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

    /// Wraps an opened handle.
    package init(dbi: MDB_dbi) {
        self.dbi = dbi
    }
}
