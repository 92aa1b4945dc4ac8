import TaskShedPostgres
import TaskShedProtocol
import TaskShedStore

/// The daemon's datastore: the embedded LMDB store, or a PostgreSQL database shared with other daemons. The
/// server reaches either through `TaskStore` (the store jobs) and the reads here; what differs is said where
/// it differs:
/// - LMDB is read on the loop thread (an index seek costs microseconds) and made durable by the server's own
///   flushes (`Server.startFlush`): commits defer their meta-page sync.
/// - PostgreSQL is never touched from the loop thread (every call is a network round trip): due times and
///   lease deadlines come from `SharedHints` that each store job reads after its commit, and every COMMIT is
///   durable when it returns, so replies need no flush.
enum ServerStore: @unchecked Sendable {
    case lmdb(LMDBTaskStore)
    case postgres(PostgresTaskStore)

    /// Whether other daemons change the store too (and the loop must not read it).
    var isShared: Bool {
        if case .postgres = self { return true }
        return false
    }

    /// The LMDB store, when that is the datastore.
    var lmdb: LMDBTaskStore? {
        if case .lmdb(let store) = self { return store }
        return nil
    }

    func fetch(_ selector: TaskSelector, maxGroupTasks: Int) throws(StoreError) -> [TaskRecord] {
        switch self {
        case .lmdb(let store): return try store.fetch(selector, maxGroupTasks: maxGroupTasks)
        case .postgres(let store): return try store.fetch(selector, maxGroupTasks: maxGroupTasks)
        }
    }

    func list(filter: TaskFilter, limit: Int, cursor: [UInt8]?, now: Int64) throws(StoreError) -> TaskPage {
        switch self {
        case .lmdb(let store): return try store.list(filter: filter, limit: limit, cursor: cursor, now: now)
        case .postgres(let store): return try store.list(filter: filter, limit: limit, cursor: cursor, now: now)
        }
    }

    func history(_ query: HistoryQuery, now: Int64) throws(StoreError) -> HistoryPage {
        switch self {
        case .lmdb(let store): return try store.history(query, now: now)
        case .postgres(let store): return try store.history(query, now: now)
        }
    }

    func stats(now: Int64) throws(StoreError) -> StoreStats {
        switch self {
        case .lmdb(let store): return try store.stats(now: now)
        case .postgres(let store): return try store.stats(now: now)
        }
    }

    /// The daemons sharing the datastore: the PostgreSQL registry; with LMDB only `local`, this daemon, with
    /// its leased count read from the store.
    func daemons(local: DaemonInfo, now: Int64) throws(StoreError) -> [DaemonInfo] {
        switch self {
        case .lmdb(let store):
            var entry = local
            entry.leased = try store.stats(now: now).leased
            return [entry]
        case .postgres(let store):
            return try store.daemons()
        }
    }

    func earliestRunAt() throws(StoreError) -> Int64? {
        switch self {
        case .lmdb(let store): return try store.earliestRunAt()
        case .postgres(let store): return try store.earliestRunAt()
        }
    }

    func earliestRunAt(callback: String) throws(StoreError) -> Int64? {
        switch self {
        case .lmdb(let store): return try store.earliestRunAt(callback: callback)
        case .postgres(let store): return try store.earliestRunAt(callback: callback)
        }
    }

    func earliestLeaseDeadline() throws(StoreError) -> Int64? {
        switch self {
        case .lmdb(let store): return try store.earliestLeaseDeadline()
        case .postgres(let store): return try store.earliestLeaseDeadline()
        }
    }

    /// Makes every commit so far durable: LMDB's deferred meta-page flush; nothing for PostgreSQL, whose
    /// COMMIT is durable when it returns.
    func sync() throws(StoreError) {
        if case .lmdb(let store) = self { try store.sync() }
    }

    func close() {
        switch self {
        case .lmdb(let store): store.close()
        case .postgres(let store): store.close()
        }
    }
}

/// What a shared store's job read after its commit, for the loop to plan dispatch and arm its timer without
/// reading the store itself (`Server.storeEarliestRunAt(callback:)`).
struct SharedHints: Sendable {
    /// The earliest due time of each callback the job was asked about (`nil`: nothing scheduled).
    var runAt: [String: Int64?] = [:]
    /// The earliest deadline of this daemon's leases.
    var leaseDeadline: Int64?
    /// The earliest due time of any task (PING's `next_wakeup`).
    var nextWakeup: Int64?

}
