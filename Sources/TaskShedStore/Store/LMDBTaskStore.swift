#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import TaskShedProtocol

/// The task store on LMDB: one directory holding `data.mdb`, LMDB's `lock.mdb` and `taskshed.lock`.
///
/// Layout, key encodings and the schema version are described in `LAYOUT.md` in this module.
///
/// - Important: One store object per directory and process: opening takes an exclusive lock on the directory
///   and a second opener (in any process) fails with an error naming the holder's pid. The object may be
///   shared between threads: writes are serialised (one `write` at a time, keep its body short), and reads run
///   beside a write in progress without waiting for it, its commit or its disk flush (LMDB readers never block
///   on the writer). They wait only while the map is resized, which happens between write transactions. The
///   daemon writes from one thread and reads from its event loop.
public final class LMDBTaskStore: TaskStore, @unchecked Sendable {
    /// The on-disk schema version this build reads and writes.
    public static let schemaVersion: UInt32 = 6
    /// The previous schema version, which opening upgrades in place: version 6 only adds the run history's
    /// two databases (LAYOUT.md, "Run history").
    static let upgradableSchemaVersion: UInt32 = 5

    /// The store directory.
    public let directory: String
    /// The options the store was opened with.
    public let options: StoreOptions

    // Two locks make the `@unchecked Sendable` true. `writer` serialises writes (LMDB allows one write
    // transaction at a time, and `random` is used only by writes). `access` guards `environment` and the map
    // size: reads and writes hold it shared for the life of their transaction; resizing the map
    // (`mdb_env_set_mapsize` requires that no transaction of this process is active) and `close()` hold it
    // exclusively. A write therefore never makes a read wait, except for a resize. Leaving the writable map
    // (`leaveWriteMap`) replaces `environment` and `dbs` under `access` held exclusively. `access` lets a
    // waiting exclusive holder in before new readers (`PthreadRWLock`), so no thread may take it shared twice
    // while an exclusive holder could be waiting: the only ones are the writer between attempts and `close()`,
    // which takes `writer` first, so a read inside a `write` body (a second shared hold) cannot meet one.
    private let writer = PthreadMutex()
    private let access = PthreadRWLock()
    private var environment: LMDBEnvironment?
    /// The leases (in memory only: see `Lease`). The writer changes them in place during a write transaction
    /// and rolls them back if it aborts (`LeaseTable`).
    let leaseTable = LeaseTable()
    private var directoryLock: DirectoryLock?
    private(set) var dbs: StoreDatabases
    /// The environment's flags without `writeMap`.
    private let environmentFlags: LMDBEnvironment.Flags
    /// Whether the store writes through a writable map now (`StoreOptions.writeMap`): `false` when the option
    /// is off, when the data file could not be allocated for the map, or after an isolating write found the
    /// store full.
    ///
    /// - Important: Changes only inside `write` (under the writer lock); read it from the thread that writes.
    public private(set) var usesWriteMap: Bool
    /// The room the data file may take now: `options.maxMapBytes`, or less on a disk without that much space
    /// (`measureRoom`). The map never passes it. Changes only inside `write` (under the writer lock) and `init`.
    private var roomBytes = 0
    /// Whether the last commit was a bump (`bump`): a second one in a row would free next to nothing.
    private var lastCommitWasBump = false
    let random: RandomSource
    /// See `StoreContext.indexQueueLimit` (tests lower it to exercise applying the queue in chunks). Set it
    /// before the store is shared between threads.
    var indexQueueLimit = StoreContext.defaultIndexQueueLimit

    private static let schemaKey: [UInt8] = Array("schema_version".utf8)

    /// Opens (creating if needed) the store in `directory`.
    ///
    /// Takes the directory lock, opens the LMDB environment, clears stale reader slots (`mdb_reader_check`),
    /// creates missing databases and checks the schema version. No task is read: opening takes the same time
    /// for any store size.
    /// - Parameters:
    ///   - directory: The store directory (created with mode 0700 when `options.createDirectory`).
    ///   - options: Map sizes, durability, limits, retry policy.
    ///   - random: Source of generated ids and retry jitter (default: `Xoshiro256StarStar` seeded from the
    ///     system; inject a seeded one in tests).
    /// - Throws: `internalError` when the directory is locked by another opener (the message names the pid),
    ///   when the store has another schema version, or when LMDB fails.
    public init(
        directory: String, options: StoreOptions = StoreOptions(),
        random: any RandomNumberGenerator = Xoshiro256StarStar()
    ) throws(StoreError) {
        self.directory = directory
        self.options = options
        self.random = RandomSource(random)
        if options.createDirectory {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw StoreError(
                    code: .internalError, field: "directory",
                    message: "cannot create \(directory): \(String(cString: strerror(errno)))")
            }
        }
        let lock = try DirectoryLock(directory: directory)
        var flags: LMDBEnvironment.Flags = [.noTLS]
        if !options.durable {
            flags.insert(.noSync)
        } else if options.deferMetaSync {
            flags.insert(.noMetaSync)
        }
        if options.noReadAhead { flags.insert(.noReadAhead) }
        environmentFlags = flags
        let initialMap = min(options.initialMapBytes, options.maxMapBytes)
        let wantsWriteMap = options.writeMap && !Self.overwritesNeedNewBlocks(directory)
        var opened: LMDBEnvironment?
        var writable = wantsWriteMap
        do {
            opened = try Self.openEnvironment(
                directory, mapSize: initialMap, flags: wantsWriteMap ? flags.union(.writeMap) : flags)
        } catch where wantsWriteMap && (error.lmdbCode == EFBIG || error.lmdbCode == ENOSPC) {
            // With the writable map LMDB sizes the file to the map at open, which a file size limit refuses.
            writable = false
        }
        if writable, let map = opened {
            // Blocks for the whole map, or no writable map: see `StoreOptions.writeMap`.
            do throws(LMDBError) {
                try map.preallocate(map.info().mapSize)
            } catch {
                writable = false
            }
        }
        if wantsWriteMap && !writable {
            // Closed before the reopen: LMDB must not have one file open twice in a process.
            opened = nil
            opened = try Self.openEnvironment(directory, mapSize: initialMap, flags: flags)
        }
        guard let env = opened else {
            throw StoreError(code: .internalError, message: "cannot open the store's environment in \(directory)")
        }
        usesWriteMap = writable
        try lmdb { () throws(LMDBError) in _ = try env.readerCheck() }
        let room = Self.measureRoom(env, directory: directory, maxBytes: options.maxMapBytes)
        if env.info().mapSize > room {
            // A map the disk cannot hold (an initial map larger than the disk's room, or a store reopened with a
            // smaller maximum): LMDB must stop at the room, not write past it.
            try lmdb { () throws(LMDBError) in try env.setMapSize(room) }
        }
        roomBytes = room
        self.dbs = try Self.openDatabases(env, directory: directory)
        self.environment = env
        self.directoryLock = lock
        leaseTable.commitLog(transactionID: env.info().lastTransactionID)
        // Generated ids of one run time follow creation across reopens too: the sequence goes on from the last
        // value an add committed (a store without one starts at random).
        if let last = try read({ (context, _) throws(StoreError) in try context.storedIDSequence() }) {
            self.random.resume(after: last)
        }
    }

    /// Whether `directory` is on a copy-on-write filesystem (btrfs, ZFS, bcachefs), where every overwrite of a
    /// page takes a new block: blocks allocated in advance do not make a write through the map safe from a full
    /// disk there, so the store does not use the writable map on them.
    private static func overwritesNeedNewBlocks(_ directory: String) -> Bool {
        var fs = statfs()
        guard statfs(directory, &fs) == 0 else { return false }
        switch UInt32(truncatingIfNeeded: fs.f_type) {
        case 0x9123_683E, 0x2FC1_2FC1, 0xCA45_1A4E: return true  // btrfs, zfs, bcachefs (linux/magic.h)
        default: return false
        }
    }

    private static func openEnvironment(_ directory: String, mapSize: Int, flags: LMDBEnvironment.Flags)
        throws(StoreError) -> LMDBEnvironment
    {
        try lmdb { () throws(LMDBError) in
            try LMDBEnvironment(path: directory, mapSize: mapSize, maxDatabases: 16, flags: flags)
        }
    }

    /// The names of the store's databases after `meta`, in `StoreDatabases` order.
    private static let databaseNames = [
        "tasks", "callback_wake", "callback_numbers", "paused", "dead", "groups", "counts", "history",
        "history_by_task",
    ]

    /// Opens the databases: in a read-only transaction when the store exists (no write, no fsync: opening a
    /// large store stays a few page reads), else creating them in a write transaction.
    private static func openDatabases(_ env: LMDBEnvironment, directory: String) throws(StoreError) -> StoreDatabases {
        if let dbs = try openDatabases(env, directory: directory, create: false) { return dbs }
        guard let dbs = try openDatabases(env, directory: directory, create: true) else {
            throw StoreError(code: .internalError, message: "cannot create the store's databases in \(directory)")
        }
        return dbs
    }

    private static func openDatabases(_ env: LMDBEnvironment, directory: String, create: Bool)
        throws(StoreError) -> StoreDatabases?
    {
        let txn = try lmdb { () throws(LMDBError) in try LMDBTransaction(environment: env, readOnly: !create) }
        do throws(StoreError) {
            let flags: LMDBDatabase.Flags = create ? [.create] : []
            guard let meta = try lmdb({ () throws(LMDBError) in try txn.openDatabase("meta", flags: flags) }) else {
                txn.abort()
                return nil
            }
            // The version is checked before any other database is opened: another version may have databases
            // of the same name with other flags (version 1's `callback_due` was `MDB_DUPSORT`).
            let stored = try lmdb { () throws(LMDBError) in try txn.get(meta, key: schemaKey) }
            var upgrading = false
            if let raw = stored {
                var s = ByteSource(raw)
                let found = s.u32LE()
                if found == upgradableSchemaVersion {
                    // Upgraded in the write transaction: the read-only attempt hands over to it.
                    guard create else {
                        txn.abort()
                        return nil
                    }
                    upgrading = true
                } else if found != schemaVersion {
                    throw StoreError(
                        code: .internalError, field: "schema_version",
                        message: "the store in \(directory) has schema version \(found.map(String.init) ?? "?"); "
                            + "this build reads version \(schemaVersion) and upgrades version "
                            + "\(upgradableSchemaVersion), but converts no other (see LAYOUT.md: re-add the tasks to a new "
                            + "store)")
                }
            } else if !create {
                txn.abort()
                return nil
            }
            var handles: [LMDBDatabase] = []
            for name in databaseNames {
                let opened = try lmdb { () throws(LMDBError) in try txn.openDatabase(name, flags: flags) }
                guard let db = opened else {
                    throw StoreError(
                        code: .internalError, field: "schema_version",
                        message: "the store in \(directory) has schema version \(schemaVersion) but no \"\(name)\" database")
                }
                handles.append(db)
            }
            let dbs = StoreDatabases(
                meta: meta, tasks: handles[0], callbackWake: handles[1], callbackNumbers: handles[2],
                paused: handles[3], dead: handles[4], groups: handles[5], counts: handles[6], history: handles[7],
                historyByTask: handles[8])
            if stored == nil || upgrading {
                var sink = ByteSink(capacity: 4)
                sink.u32LE(schemaVersion)
                let v = sink.bytes
                try lmdb { () throws(LMDBError) in try txn.put(dbs.meta, key: schemaKey, value: v) }
            }
            // Committing (also the read-only transaction) keeps the database handles open for the environment.
            try lmdb { () throws(LMDBError) in try txn.commit() }
            return dbs
        } catch {
            if txn.handle != nil { txn.abort() }
            throw error
        }
    }

    /// Closes the environment and releases the directory lock. Later calls fail with `internalError`.
    /// Closing twice is harmless.
    public func close() {
        writer.lock()
        defer { writer.unlock() }
        access.lockExclusive()
        defer { access.unlock() }
        environment = nil
        directoryLock?.close()
        directoryLock = nil
    }

    deinit {
        environment = nil
        directoryLock?.close()
    }

    /// The environment, read under `access`: the reference keeps it alive for the caller even if `close()`
    /// runs afterwards.
    private func sharedEnvironment() throws(StoreError) -> LMDBEnvironment {
        access.lockShared()
        defer { access.unlock() }
        return try liveEnvironment()
    }

    private func liveEnvironment() throws(StoreError) -> LMDBEnvironment {
        guard let environment else { throw StoreError(code: .internalError, message: "the store is closed") }
        return environment
    }

    // MARK: Reads

    /// Runs `body` in a read-only transaction, holding `access` shared (a write in progress does not block it).
    func read<R>(_ body: (StoreContext, LMDBEnvironment) throws(StoreError) -> R) throws(StoreError) -> R {
        access.lockShared()
        defer { access.unlock() }
        let env = try liveEnvironment()
        let txn = try beginTransaction(env, readOnly: true)
        defer { txn.abort() }
        return try body(StoreContext(txn: txn, dbs: dbs, options: options, random: random, leaseTable: leaseTable), env)
    }

    /// Begins a transaction; the caller holds `access` shared.
    ///
    /// `MDB_MAP_RESIZED` means another process grew the map: the directory lock makes that impossible for a
    /// store opened through this type, so it is reported instead of adopted (adopting needs `access`
    /// exclusively, which a caller holding it shared cannot take).
    private func beginTransaction(_ env: LMDBEnvironment, readOnly: Bool) throws(StoreError) -> LMDBTransaction {
        do {
            return try LMDBTransaction(environment: env, readOnly: readOnly)
        } catch where error.isMapResized {
            throw StoreError(code: .internalError,
                             message: "the map of \(directory) was resized by another process; reopen the store")
        } catch {
            throw .lmdb(error)
        }
    }

    /// Resizes the map; the caller holds `writer` and no transaction. Takes `access` exclusively, so it waits
    /// for the reads in progress to end.
    private func setMapSize(_ bytes: Int) throws(LMDBError) {
        access.lockExclusive()
        defer { access.unlock() }
        guard let environment else { throw LMDBError(EINVAL, "mdb_env_set_mapsize on a closed store") }
        try environment.setMapSize(bytes)
    }

    /// Allocates the data file's blocks up to `bytes` (see `LMDBEnvironment.preallocate`); `false` if that
    /// failed or the store is closed.
    private func preallocateMap(_ bytes: Int) -> Bool {
        access.lockShared()
        defer { access.unlock() }
        guard let environment else { return false }
        do throws(LMDBError) {
            try environment.preallocate(bytes)
            return true
        } catch {
            return false
        }
    }

    /// Reopens the environment without `MDB_WRITEMAP` (see `StoreOptions.writeMap`); the caller holds `writer`
    /// and no transaction. Takes `access` exclusively, so no read or flush holds the old environment.
    /// - Throws: `internalError` when the store is closed or the reopen fails; the store then reopens with the
    ///   writable map, as it was (only if that fails too is it left closed).
    private func leaveWriteMap() throws(StoreError) {
        access.lockExclusive()
        defer { access.unlock() }
        let mapSize = try liveEnvironment().info().mapSize
        // The store's reference must be the last one: LMDB must not have one file open twice in a process, so
        // the old environment has to close (on release) before the new one opens.
        guard isKnownUniquelyReferenced(&environment) else {
            throw StoreError(code: .internalError, message: "cannot reopen \(directory): its environment is in use")
        }
        environment = nil
        do {
            try reopen(mapSize: mapSize, flags: environmentFlags)
            usesWriteMap = false
        } catch {
            // Back to the writable map, so that the store stays open for everyone else; this write fails.
            try? reopen(mapSize: mapSize, flags: environmentFlags.union(.writeMap))
            throw error
        }
    }

    /// Opens the environment and its databases into `environment` and `dbs`; the caller holds `access`
    /// exclusively and has closed the previous environment.
    private func reopen(mapSize: Int, flags: LMDBEnvironment.Flags) throws(StoreError) {
        let env = try Self.openEnvironment(directory, mapSize: mapSize, flags: flags)
        dbs = try Self.openDatabases(env, directory: directory)
        environment = env
    }

    /// See `TaskStore.fetch`.
    public func fetch(_ selector: TaskSelector) throws(StoreError) -> [TaskRecord] {
        try read { (ctx, _) throws(StoreError) in try ctx.fetch(selector) }
    }

    /// `fetch(_:)` with a bound on a group's size (the daemon's `max_batch`, PROTOCOL.md 6.5): a larger group
    /// is refused after reading one task more than the bound, so a huge group costs no more than an allowed one.
    /// - Throws: `invalidArgument` naming `selector.group` for a group of more than `maxGroupTasks` tasks;
    ///   otherwise as `fetch(_:)`.
    public func fetch(_ selector: TaskSelector, maxGroupTasks: Int) throws(StoreError) -> [TaskRecord] {
        try read { (ctx, _) throws(StoreError) in try ctx.fetch(selector, maxGroupTasks: maxGroupTasks) }
    }

    /// See `TaskStore.history`.
    public func history(_ query: HistoryQuery, now: Int64) throws(StoreError) -> HistoryPage {
        try read { (ctx, _) throws(StoreError) in try ctx.history(query, now: now) }
    }

    /// See `TaskStore.list`.
    public func list(filter: TaskFilter = TaskFilter(), limit: Int, cursor: [UInt8]? = nil, now: Int64)
        throws(StoreError) -> TaskPage
    {
        try read { (ctx, _) throws(StoreError) in try ctx.list(filter: filter, limit: limit, cursor: cursor, now: now) }
    }

    /// See `TaskStore.earliestRunAt()`. One cursor seek on `callback_wake` per callback that has an unpaused
    /// scheduled task.
    public func earliestRunAt() throws(StoreError) -> Int64? {
        try read { (ctx, _) throws(StoreError) in try ctx.earliestRunAt() }
    }

    /// See `TaskStore.earliestRunAt(callback:)`. One lookup in `callback_numbers` and one cursor seek on the
    /// `callback_wake` index.
    public func earliestRunAt(callback: String) throws(StoreError) -> Int64? {
        try read { (ctx, _) throws(StoreError) in try ctx.earliestRunAt(callback: callback) }
    }

    /// See `TaskStore.earliestLeaseDeadline()`. The top of the lease table's deadline heap: O(1), no
    /// transaction.
    public func earliestLeaseDeadline() throws(StoreError) -> Int64? {
        _ = try sharedEnvironment()
        return leaseTable.earliestDeadline()
    }

    /// See `TaskStore.stats(now:)`. Reads the `counts` database (one entry per callback), looks up the record
    /// of each leased task and walks the due part of each callback's due list: O(callbacks + leased + due
    /// tasks), never a scan of all tasks.
    public func stats(now: Int64) throws(StoreError) -> StoreStats {
        try read { (ctx, env) throws(StoreError) in try ctx.stats(now: now, environment: env) }
    }

    /// The id of the last committed write transaction: it grows with every commit that changed something
    /// (a write whose transaction had nothing to write commits nothing and leaves it).
    ///
    /// In a durable store (`options.durable`), a commit that changed something flushed the data file
    /// (`fdatasync`) before writing its own meta page, so it also made every earlier commit's meta page
    /// durable: comparing this id before and after a write tells whether the write did such a flush.
    /// - Throws: `internalError` when the store is closed.
    public func lastCommittedTransactionID() throws(StoreError) -> Int {
        access.lockShared()
        defer { access.unlock() }
        return try liveEnvironment().info().lastTransactionID
    }

    /// Flushes the data file to disk (useful after writes in non-durable mode). Corresponds to `mdb_env_sync`.
    ///
    /// The flush holds the store's lock only shared: `mdb_env_sync` is one `fdatasync` (or, with the writable
    /// map, one `msync`) of the data file, safe beside a transaction on another thread, and it covers every
    /// commit that completed before it started. So a caller may flush on a helper thread while its own thread
    /// keeps reading and writing (the daemon does: its event loop must not wait for the disk). Only a map
    /// resize waits for it (an `msync` must not meet the map being remapped).
    /// - Throws: `internalError` with the I/O error, or when the store is closed.
    public func sync() throws(StoreError) {
        access.lockShared()
        defer { access.unlock() }
        let live = try liveEnvironment()
        try lmdb { () throws(LMDBError) in try live.sync(force: true) }
    }

    // MARK: Writes

    /// How a rerun batch treats a store without room.
    enum FullMode {
        /// Out of map below the room: grow and rerun.
        case normal
        /// The store is full: each request runs in a nested transaction, and one that does not fit (or that
        /// grows the store into its reserve) fails alone with `storeFull`.
        case full
    }

    /// Why a run of a write batch was aborted for want of room.
    enum Shortage {
        /// LMDB found no free page within the map (`MDB_MAP_FULL`).
        case mapFull
        /// A request that grows the store passed the room less the reserve.
        case growthLimit
        /// The disk had no room for the pages a commit wrote (see `StoreError.isOutOfDiskSpace`).
        case disk
    }

    /// The reserve of a room: `options.reserveBytes`, at most a quarter of it (see `StoreOptions.reserveBytes`).
    private func reserve(ofRoom room: Int) -> Int {
        min(options.reserveBytes, room / 4)
    }

    /// The room the data file may take: `options.maxMapBytes`, or, when that is less, the blocks the file holds
    /// plus what the disk has free (`statvfs`'s `f_bavail`); in whole pages, and never below the pages in use.
    ///
    /// The store never sets the map past it, so on a full disk LMDB stops with `MDB_MAP_FULL` at the last page
    /// the disk can hold, instead of failing a commit with `ENOSPC` or, for a short write, `EIO`. With the
    /// writable map the file already holds the map's blocks, so the map can grow by what the disk has free.
    private static func measureRoom(_ env: LMDBEnvironment, directory: String, maxBytes: Int) -> Int {
        let info = env.info()
        var room = maxBytes
        var st = stat()
        var fs = statvfs()
        if let fd = env.fileDescriptor, fstat(fd, &st) == 0, statvfs(directory, &fs) == 0 {
            let held = Int(st.st_blocks) * 512
            let (free, overflow) = Int(fs.f_bavail).multipliedReportingOverflow(by: Int(fs.f_frsize))
            if !overflow { room = min(room, held &+ free) }
        }
        room -= room % info.pageSize
        return max(room, info.usedBytes)
    }

    /// Measures the room again (see `measureRoom`); the caller holds `writer`.
    private func remeasureRoom() throws(StoreError) {
        roomBytes = Self.measureRoom(try sharedEnvironment(), directory: directory, maxBytes: options.maxMapBytes)
    }

    /// The room a run of a batch may use, from the current room and map size.
    private func writeRoom(mapSize: Int, pageSize: Int, mayBump: Bool) -> LMDBWriteBatch.Room {
        let reserve = reserve(ofRoom: roomBytes)
        let growable = roomBytes - reserve
        return LMDBWriteBatch.Room(
            growthLimitPages: mapSize > growable ? growable / pageSize : nil,
            roomBytes: roomBytes, maxBytes: options.maxMapBytes, reserveBytes: reserve,
            mayRerunAfterBump: mayBump)
    }

    /// See `TaskStore.write(isolatingRequests:_:)`.
    ///
    /// Requests run directly in the one write transaction (each operation detects its request errors before
    /// writing, so a failed request has changed nothing); the counters are written once at the end.
    ///
    /// The store's room is `options.maxMapBytes`, or less when the disk cannot give the data file that much
    /// (see `measureRoom`); its last `reserve` bytes are kept for the requests that finish or remove tasks
    /// (`StoreOptions.reserveBytes`). When a run of the batch finds no room, the transaction is aborted and:
    /// - below the room, the map doubles (up to the room) and the batch reruns;
    /// - at the room, the room is measured again (space the disk got back is used at once), and one bump
    ///   (`bump`) is committed before a rerun: LMDB reuses the pages a commit freed only from the next commit
    ///   but one, and a store whose last commit freed them would otherwise never get them while every write
    ///   fails and commits nothing;
    /// - then, with `isolatingRequests`, the batch reruns with each request in a nested transaction
    ///   (`mdb_txn_begin` with a parent) so that the requests that do not fit fail alone with `storeFull` while
    ///   the rest commit; without it, the write fails with `storeFull`. A store using the writable map leaves it
    ///   first (LMDB refuses nested transactions with it; see `StoreOptions.writeMap`).
    ///
    /// A commit that fails for want of disk space (`ENOSPC`, `EDQUOT`, `EFBIG`, or the `EIO` of a short write on
    /// a full disk) shrinks the map to the room measured afterwards and reruns, so that its requests get
    /// `storeFull` and the next runs stop at `MDB_MAP_FULL` instead.
    public func write<R>(
        isolatingRequests: Bool = true, _ body: (inout LMDBWriteBatch) throws(StoreError) -> R
    ) throws(StoreError) -> R {
        writer.lock()
        defer { writer.unlock() }
        var mode = FullMode.normal
        var bumped = false
        var diskShortages = 0
        while true {
            let mayBump = !bumped && !lastCommitWasBump
            let attempt = try attemptWrite(isolatingRequests: isolatingRequests, mode: mode, mayBump: mayBump, body)
            let shortage: Shortage
            let settling: Bool
            switch attempt {
            case .committed(let value):
                lastCommitWasBump = false
                return value
            case .needsRoom(let why, let settles):
                shortage = why
                settling = settles
            }
            let roomBefore = roomBytes
            try remeasureRoom()
            let size = try sharedEnvironment().info().mapSize
            switch shortage {
            case .mapFull:
                if size < roomBytes {
                    try growMap(from: size)
                    continue
                }
                if mayBump {
                    bumped = true
                    if bump() { continue }
                }
            case .growthLimit:
                // The disk got space back: the request may fit now.
                if roomBytes > roomBefore { continue }
            case .disk:
                diskShortages += 1
                // The map allowed more than the disk holds (another program took the space): from now on LMDB
                // stops at the disk's room with `MDB_MAP_FULL`.
                if size > roomBytes && !usesWriteMap { try? setMapSize(roomBytes) }
                if diskShortages <= 2 { continue }
            }
            if isolatingRequests && mode == .normal {
                // The modes below isolate requests in nested transactions.
                if usesWriteMap { try leaveWriteMap() }
                mode = .full
                continue
            }
            let reserve = reserve(ofRoom: roomBytes)
            if settling { throw .fullEvenForSettling(reserveBytes: reserve) }
            throw .full(roomBytes: roomBytes, maxBytes: options.maxMapBytes, reserveBytes: reserve)
        }
    }

    /// Doubles the map (to `maxMapBytes` past its half), up to the room; the caller holds `writer` and no
    /// transaction. With the writable map the file's blocks are allocated first: where that fails (a full
    /// disk), the store goes on without the writable map, so that a write that finds no room fails with an
    /// error instead of a `SIGBUS`.
    private func growMap(from size: Int) throws(StoreError) {
        let grown = min(size > options.maxMapBytes / 2 ? options.maxMapBytes : size * 2, roomBytes)
        if usesWriteMap && !preallocateMap(grown) { try leaveWriteMap() }
        try lmdb { () throws(LMDBError) in try setMapSize(grown) }
    }

    /// Commits a write transaction that changes nothing a reader can see (it writes `schema_version` again,
    /// with its value), so that the pages the last commit freed become usable; the caller holds `writer` and
    /// no transaction. `false` if it could not commit (no room even for that: the batch fails as full).
    ///
    /// LMDB gives a write the pages freed by commits older than the one before it (a reader may still use the
    /// pages of the snapshot the last commit replaced, `mdb_find_oldest`), and a write that fails commits
    /// nothing. So after a large removal, every add that needed the freed pages failed and the pages stayed
    /// out of reach until some other write committed. Costs one commit (and its flush), only at the room.
    private func bump() -> Bool {
        access.lockShared()
        defer { access.unlock() }
        guard let env = environment else { return false }
        guard let txn = try? LMDBTransaction(environment: env, readOnly: false) else { return false }
        var sink = ByteSink(capacity: 4)
        sink.u32LE(Self.schemaVersion)
        let version = sink.bytes
        do throws(LMDBError) {
            try txn.put(dbs.meta, key: Self.schemaKey, value: version)
            try txn.commit()
        } catch {
            if txn.handle != nil { txn.abort() }
            return false
        }
        lastCommitWasBump = true
        leaseTable.commitLog(transactionID: env.info().lastTransactionID)
        return true
    }

    /// What one run of a write batch came to.
    private enum WriteAttempt<R> {
        /// Committed; the body's value.
        case committed(R)
        /// Aborted for want of room; `settling`: the request that found none settles or removes tasks.
        case needsRoom(Shortage, settling: Bool)
    }

    /// Runs `body` once in a new write transaction and commits it, holding `access` shared for the life of the
    /// transaction only (the caller resizes the map between attempts, which needs it exclusively).
    private func attemptWrite<R>(
        isolatingRequests: Bool, mode: FullMode, mayBump: Bool, _ body: (inout LMDBWriteBatch) throws(StoreError) -> R
    ) throws(StoreError) -> WriteAttempt<R> {
        access.lockShared()
        defer { access.unlock() }
        let env = try liveEnvironment()
        let info = env.info()
        let top = try beginTransaction(env, readOnly: false)
        // The operations change the lease table in place; unless the transaction commits, it is rolled back.
        var committed = false
        defer { if !committed { leaseTable.rollback(to: 0) } }
        var context = StoreContext(
            txn: top, dbs: dbs, options: options, random: random, leaseTable: leaseTable,
            indexQueueLimit: indexQueueLimit)
        context.recordsIDSequence = mode == .normal
        var batch = LMDBWriteBatch(
            environment: env, top: top, isolating: isolatingRequests, mode: mode,
            room: writeRoom(mapSize: info.mapSize, pageSize: info.pageSize, mayBump: mayBump), context: context)
        let outcome: Result<R, StoreError>
        do throws(StoreError) {
            outcome = .success(try body(&batch))
        } catch {
            outcome = .failure(error)
        }
        if batch.mapFullHit {
            top.abort()
            return .needsRoom(.mapFull, settling: batch.settlingHitMapFull)
        }
        if batch.overLimit {
            top.abort()
            return .needsRoom(.growthLimit, settling: false)
        }
        do throws(StoreError) {
            let value = try outcome.get()
            if let poison = batch.poisoned { throw poison }
            try batch.context.flushIndexes()
            try batch.context.flushCounts()
            try lmdb { () throws(LMDBError) in try top.commit() }
            committed = true
            // The id of the last commit that wrote (a commit that changed only leases writes nothing).
            leaseTable.commitLog(transactionID: env.info().lastTransactionID)
            return .committed(value)
        } catch {
            if top.handle != nil { top.abort() }
            if error.isMapFull { return .needsRoom(.mapFull, settling: false) }
            if let code = error.lmdbCode, StoreError.isOutOfDiskSpace(code, directory: directory) {
                return .needsRoom(.disk, settling: false)
            }
            throw error
        }
    }
}
