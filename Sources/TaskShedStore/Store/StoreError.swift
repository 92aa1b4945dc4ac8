#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import TaskShedProtocol

/// An error from a task store: a protocol error code, the request field at fault, and a readable message.
///
/// A struct wrapping a code (not an enum) so that new codes do not break callers. The codes a store uses are
/// `invalidArgument`, `taskNotFound`, `taskExists`, `leaseLost`, `storeFull` and `internalError`; the daemon
/// sends them to clients as they are.
public struct StoreError: Error, Hashable, CustomStringConvertible {
    /// The protocol error code.
    public var code: ErrorCode
    /// The request field at fault ("tasks[3].interval"), when there is one.
    public var field: String?
    /// What was wrong and what is allowed.
    public var message: String
    /// The LMDB return code behind an `internalError` or `storeFull`, if any (the store's own bookkeeping).
    var lmdbCode: Int32?

    /// Creates an error.
    public init(code: ErrorCode, field: String? = nil, message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    /// Whether this wraps `MDB_MAP_FULL` (the store grows the map and reruns the write).
    var isMapFull: Bool { lmdbCode == MDB_MAP_FULL }

    /// "CODE field: message".
    public var description: String {
        if let field { return "\(code.name) \(field): \(message)" }
        return "\(code.name): \(message)"
    }

    package static func invalid(_ field: String, _ message: String) -> StoreError {
        StoreError(code: .invalidArgument, field: field, message: message)
    }

    package static func notFound(_ id: String, field: String? = nil) -> StoreError {
        StoreError(code: .taskNotFound, field: field, message: "no task with id \"\(id)\"")
    }

    package static func leaseLost(_ id: String, attempt: UInt32) -> StoreError {
        StoreError(
            code: .leaseLost, field: "id",
            message: "task \"\(id)\" attempt \(attempt) is not leased to this holder any more")
    }

    /// The store has no room for a request: the request changed nothing.
    /// - Parameters:
    ///   - roomBytes: The room the data file may take now (`maxBytes`, or less on a disk without more space).
    ///   - maxBytes: `StoreOptions.maxMapBytes`.
    ///   - reserveBytes: The end of the room kept for the requests that finish or remove tasks.
    static func full(roomBytes: Int, maxBytes: Int, reserveBytes: Int) -> StoreError {
        let kept = "of which the last \(reserveBytes) are kept for finishing and removing tasks"
        let message = roomBytes < maxBytes
            ? "the disk holding the store is full: its data file can take \(roomBytes) bytes (maximum \(maxBytes)), "
                + "\(kept); free disk space or remove tasks"
            : "the store reached its maximum size (\(maxBytes) bytes, \(kept)); remove tasks or raise the maximum"
        return StoreError(code: .storeFull, message: message)
    }

    /// A request that finishes or removes tasks did not fit even in the reserve: LMDB copies every page it
    /// changes, and this request changes more pages than the store has free (a removal of many tasks
    /// scattered over the store can). It changed nothing.
    static func fullEvenForSettling(reserveBytes: Int) -> StoreError {
        StoreError(
            code: .storeFull,
            message: "the store is full and this request changes more pages than it has free, its reserve of "
                + "\(reserveBytes) bytes included; remove fewer tasks per request, free disk space or raise the maximum")
    }

    /// Whether an LMDB failure means that the disk has no room for the data file: `ENOSPC`, `EDQUOT`, `EFBIG`,
    /// or `EIO` while the disk is (nearly) full, which is what LMDB returns for a short write (`mdb_page_flush`:
    /// "short write, filesystem full?").
    /// - Parameter directory: The store's directory, whose filesystem `statvfs` asks for its free space.
    static func isOutOfDiskSpace(_ code: Int32, directory: String) -> Bool {
        switch code {
        case ENOSPC, EDQUOT, EFBIG: return true
        case EIO:
            // A short write leaves the disk with (almost) nothing free; a failing disk usually has room.
            var fs = statvfs()
            guard statvfs(directory, &fs) == 0 else { return false }
            return Int(fs.f_bavail) * Int(fs.f_frsize) < 1 << 20
        default: return false
        }
    }

    /// An LMDB failure as a store error: `storeFull` when the disk (or the file size limit, or the user's disk
    /// quota) has no room for the data file, so that a client sees "retry later" rather than an internal error;
    /// `internalError` for everything else.
    static func lmdb(_ error: LMDBError) -> StoreError {
        var e: StoreError
        switch error.code {
        case ENOSPC, EFBIG, EDQUOT:
            e = StoreError(
                code: .storeFull,
                message: "no room on the disk for the store's data file (LMDB \(error.description)); "
                    + "free disk space or remove tasks")
        default:
            e = StoreError(code: .internalError, message: "LMDB \(error.description)")
        }
        e.lmdbCode = error.code
        return e
    }

    package static func corrupt(_ what: String) -> StoreError {
        StoreError(code: .internalError, message: "the store holds an undecodable \(what)")
    }
}
