import Testing
import TaskShedPostgres
import TaskShedProtocol
import TaskShedTestSupport
@testable import TaskShedStore

/// A kind of task store: the behaviour tests run once per kind in `behaviourKinds`, so that every store gets the
/// same checks.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    /// `LMDBTaskStore` in a temporary directory.
    case lmdb
    /// `PostgresTaskStore` in a schema of its own on the test process's shared server (`PostgresTestServer`).
    case postgres

    var testDescription: String {
        switch self {
        case .lmdb: "LMDB"
        case .postgres: "PostgreSQL"
        }
    }
}

/// The store kinds that every behaviour test runs against (`@Test(arguments: behaviourKinds)`).
let behaviourKinds: [StoreKind] = [.lmdb, .postgres]

/// Where one test's store lives (an LMDB directory, or a PostgreSQL schema), with the store objects opened on it.
///
/// `open` opens a store object on that place: the first call gets an empty store, later ones "the same store"
/// again (LMDB: the same directory; PostgreSQL: a new store object on the same schema, the same daemon restarting).
/// When the fixture is freed it closes every store it opened, then removes the directory or drops the schema.
///
/// - Important: Keep the fixture in a local for as long as its stores are used (as with `TempDirectory`). Close a
///   store before opening the next one on the same fixture (`reopen` does): an LMDB directory has one opener at a
///   time, and a PostgreSQL daemon name one connected store.
final class StoreFixture {
    /// Where the store lives.
    private enum Place {
        /// The LMDB store's parent directory.
        case directory(TempDirectory)
        /// The PostgreSQL server and the schema.
        case schema(connectionString: String, name: String)
    }

    let kind: StoreKind
    private let place: Place
    private var opened: [any TaskStore] = []

    /// Makes a fresh place for a store of `kind`; nothing is opened yet.
    /// - Throws: For `.postgres`, what `PostgresTestServer.sharedConnectionString()` throws (no server).
    init(_ kind: StoreKind) throws {
        self.kind = kind
        switch kind {
        case .lmdb:
            place = .directory(TempDirectory())
        case .postgres:
            place = .schema(
                connectionString: try PostgresTestServer.sharedConnectionString(),
                name: PostgresTestServer.uniqueSchemaName("store"))
        }
    }

    deinit {
        for store in opened { store.close() }
        if case .schema(let connectionString, let name) = place {
            _ = try? PostgresTestServer.psql(connectionString, "DROP SCHEMA IF EXISTS \(name) CASCADE")
        }
    }

    /// Opens a store object on this fixture's place: empty the first time, the same store again afterwards.
    /// - Parameters:
    ///   - options: `testOptions(...)`; with PostgreSQL only the retry policy, the kwargs settings and the history
    ///     limits apply.
    ///   - seed: Seeds the store's random source (generated ids, retry jitter).
    func open(options: StoreOptions = testOptions(), seed: UInt64 = 1) throws -> any TaskStore {
        let store: any TaskStore
        switch place {
        case .directory(let directory):
            store = try LMDBTaskStore(directory: directory.store, options: options, random: SeededRandom(seed: seed))
        case .schema(let connectionString, let name):
            store = try openPostgresStore(connectionString: connectionString, schema: name, options: options, seed: seed)
        }
        opened.append(store)
        return store
    }

    /// Closes `store` and opens the same store again: the daemon restarting.
    func reopen(_ store: any TaskStore, options: StoreOptions = testOptions(), seed: UInt64 = 1) throws
        -> any TaskStore
    {
        store.close()
        return try open(options: options, seed: seed)
    }
}

// MARK: - The PostgreSQL store

/// Opens a `PostgresTaskStore` for `StoreFixture`: the one place the behaviour tests create PostgreSQL stores.
///
/// A store on `schema` of `connectionString`, with `options.retry`, `options.maxKwargsBytes` and
/// `options.checksKwargsJSON` (the LMDB-only settings have no counterpart: PostgreSQL commits are always
/// durable), a random source of `SeededRandom(seed: seed)`, and one daemon name for every store of a schema, so
/// that a reopen is that daemon restarting (it voids its previous run's leases, as a new LMDB store object has
/// none).
func openPostgresStore(connectionString: String, schema: String, options: StoreOptions, seed: UInt64) throws
    -> any TaskStore
{
    var postgres = PostgresStoreOptions(
        connectionString: connectionString, schema: schema, daemonName: "store-tests",
        maxKwargsBytes: options.maxKwargsBytes, checksKwargsJSON: options.checksKwargsJSON, retry: options.retry)
    postgres.history = options.history
    return try PostgresTaskStore(options: postgres, random: SeededRandom(seed: seed))
}

// MARK: - Reads that both stores have beyond `TaskStore`

/// The group fetch with a bound that the daemon uses (`max_batch`), which both stores have but `TaskStore` does not
/// require.
protocol BoundedGroupFetching {
    func fetch(_ selector: TaskSelector, maxGroupTasks: Int) throws(StoreError) -> [TaskRecord]
}

extension LMDBTaskStore: BoundedGroupFetching {}
extension PostgresTaskStore: BoundedGroupFetching {}
