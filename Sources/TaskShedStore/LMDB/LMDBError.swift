import CLMDB

/// An error returned by an LMDB call: the raw return code, the C function that returned it, and LMDB's own
/// description of the code (`mdb_strerror`).
package struct LMDBError: Error, Hashable, CustomStringConvertible {
    /// The raw return code (an LMDB code such as `MDB_MAP_FULL`, or an `errno` value).
    package var code: Int32
    /// The C function that failed, e.g. `"mdb_put"`.
    package var operation: String

    /// Wraps a return code of `operation`.
    package init(_ code: Int32, _ operation: String) {
        self.code = code
        self.operation = operation
    }

    /// LMDB's text for the code. Corresponds to `mdb_strerror` (which also covers `errno` values).
    package var message: String {
        guard let text = mdb_strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    /// "operation: message (code)".
    package var description: String { "\(operation): \(message) (\(code))" }

    /// The map is full (`MDB_MAP_FULL`): the caller should abort, grow the map and retry.
    package var isMapFull: Bool { code == MDB_MAP_FULL }

    /// Another process grew the map (`MDB_MAP_RESIZED`): set the map size to 0 to adopt it and retry.
    package var isMapResized: Bool { code == MDB_MAP_RESIZED }
}

/// Throws an `LMDBError` for a nonzero return code.
@inline(__always)
func lmdbCheck(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(rc, operation()) }
}
