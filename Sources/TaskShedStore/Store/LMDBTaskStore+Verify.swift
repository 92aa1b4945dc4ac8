import CLMDB
import TaskShedProtocol

extension LMDBTaskStore {
    /// Checks that every index, the callback numbers and the counters agree exactly with the `tasks` database,
    /// and that every lease and claim frontier agrees with them (a full scan: for tests and diagnosis, never on
    /// a hot path).
    /// - Returns: One line per disagreement; empty when the store is consistent.
    /// - Throws: LMDB errors; `internalError` for a record that does not decode.
    func verifyIndexes() throws(StoreError) -> [String] {
        try read { (ctx, _) throws(StoreError) in try ctx.verifyIndexes() }
    }
}

extension StoreContext {
    /// See `LMDBTaskStore.verifyIndexes()`.
    func verifyIndexes() throws(StoreError) -> [String] {
        var problems: [String] = []
        // Callback numbers: name -> number, numbers distinct and below the count of names.
        // Keyed by bytes (`NameKey`), as the databases are.
        var numberOf: [NameKey: UInt32] = [:]
        let names = try entries(dbs.callbackNumbers)
        var seenNumbers = Set<UInt32>()
        for (k, v) in names {
            let name = String(decoding: k, as: UTF8.self)
            let n: UInt32? = v.withUnsafeBytes { b in
                var s = ByteSource(b)
                guard let n = s.u32LE(), s.isAtEnd else { return nil }
                return n
            }
            guard let n else {
                problems.append("callback_numbers: bad value for \"\(name)\"")
                continue
            }
            if !seenNumbers.insert(n).inserted { problems.append("callback_numbers: number \(n) used twice") }
            if n >= UInt32(names.count) { problems.append("callback_numbers: number \(n) >= \(names.count) names") }
            numberOf[NameKey(name)] = n
        }

        // What the indexes and counters should hold, from the records.
        var expected: [IndexKind: [[UInt8]: [UInt8]]] = [:]
        for kind in IndexKind.allCases { expected[kind] = [:] }
        var counts: [NameKey: CallbackCounts] = [:]
        // Leases: each must belong to a scheduled task, with its callback and paused flag.
        var leaseOf: [NameKey: Lease] = [:]
        for (id, lease) in allLeases() { leaseOf[NameKey(id)] = lease }
        for (k, v) in try entries(dbs.tasks) {
            let id = String(decoding: k, as: UTF8.self)
            guard var task = v.withUnsafeBytes({ StoredTask.decode(id: id, $0) }) else {
                throw .corrupt("task \"\(id)\"")
            }
            if let lease = leaseOf.removeValue(forKey: NameKey(id)) {
                // Checked field by field, not through `currentLease`: the checker must not share the code it checks.
                let r = task.record
                if r.state != .scheduled || !sameBytes(lease.callback, r.callback) || lease.paused != r.paused
                    || lease.runAt != r.runAt || !sameBytes(lease.group, r.group)
                    || lease.recurring != r.schedule.isRecurring
                {
                    problems.append("leases: the lease of \"\(id)\" does not match its \(task.record.state) record")
                }
                lease.apply(to: &task)
            }
            let r = task.record
            counts[NameKey(r.callback), default: CallbackCounts()].add(task, 1)
            func timeKey(_ t: Int64) -> [UInt8] {
                var sink = ByteSink(capacity: 8 + id.utf8.count)
                sink.timeKey(t)
                sink.raw(id)
                return sink.bytes
            }
            let slots = Self.indexSlots(task)
            if let t = slots.wake {
                if let n = numberOf[NameKey(r.callback)] {
                    var sink = ByteSink(capacity: 12 + id.utf8.count)
                    sink.u32BE(n)
                    sink.timeKey(t)
                    sink.raw(id)
                    expected[.callbackWake]![sink.bytes] = []
                } else {
                    problems.append("callback_numbers: no number for \"\(r.callback)\" of scheduled task \"\(id)\"")
                }
            }
            if let t = slots.paused { expected[.paused]![timeKey(t)] = [] }
            if let t = slots.dead { expected[.dead]![timeKey(t)] = [] }
            if let g = r.group {
                var sink = ByteSink(capacity: 1 + g.utf8.count + id.utf8.count)
                sink.u8(UInt8(g.utf8.count))
                sink.raw(g)
                sink.raw(id)
                expected[.groups]![sink.bytes] = []
            }
        }
        for id in leaseOf.keys.map(\.name).sorted() { problems.append("leases: lease of missing task \"\(id)\"") }
        problems += leaseTable.indexProblems()
        // Claim frontiers: every `callback_wake` entry of the callback up to its bound is leased or a hole.
        for (n, frontier) in leaseTable.allFrontiers() {
            // As `callback_wake` keys: compared by bytes, as the index compares them.
            let holes = Set(frontier.holes.map { (hole) -> [UInt8] in
                var sink = ByteSink(capacity: 12 + hole.id.utf8.count)
                sink.u32BE(n)
                sink.timeKey(hole.runAt)
                sink.raw(hole.id)
                return sink.bytes
            })
            if holes.count != frontier.holes.count
                || zip(frontier.holes, frontier.holes.dropFirst()).contains(where: { !positionPrecedes($0, $1) })
                || frontier.holes.contains(where: { !frontier.covers($0) })
            {
                problems.append("frontiers: callback number \(n) has holes out of order or past its bound")
            }
            for key in expected[.callbackWake]!.keys {
                let covered: Bool? = key.withUnsafeBytes { b in
                    var s = ByteSource(b)
                    guard s.u32BE() == n, let t = s.timeKey() else { return nil }
                    let id = s.restString()
                    guard frontier.covers((t, id)) else { return nil }
                    return lease(of: id) != nil || holes.contains(Array(b))
                }
                if covered == false {
                    problems.append("frontiers: callback number \(n) has an unleased entry at or below its bound that is no hole")
                }
            }
        }
        for kind in IndexKind.allCases {
            var actual: [[UInt8]: [UInt8]] = [:]
            for (k, v) in try entries(dbs.index(kind)) { actual[k] = v }
            let want = expected[kind]!
            for (k, v) in want where actual[k] != v {
                problems.append("\(kind): missing or wrong entry \(k.map { String($0, radix: 16) }.joined(separator: " "))")
            }
            for k in actual.keys where want[k] == nil {
                problems.append("\(kind): extra entry \(k.map { String($0, radix: 16) }.joined(separator: " "))")
            }
        }
        let storedCounts = try decodedEntries(dbs.counts, "counts", &problems) { CallbackCounts.decode($0) }
        for (name, c) in counts where !c.isZero && storedCounts[name] != c {
            problems.append("counts: \"\(name.name)\" is \(String(describing: storedCounts[name])), records say \(c)")
        }
        for (name, c) in storedCounts where counts[name] ?? CallbackCounts() != c {
            problems.append("counts: \"\(name.name)\" stored \(c) but records say \(String(describing: counts[name]))")
        }
        return problems
    }

    /// The values of a database keyed by names, decoded by `decode`; a value that does not decode is reported in
    /// `problems` ("`label`: bad value for "name"") and left out.
    private func decodedEntries<Value>(
        _ db: LMDBDatabase, _ label: String, _ problems: inout [String],
        _ decode: (UnsafeRawBufferPointer) -> Value?
    ) throws(StoreError) -> [NameKey: Value] {
        var out: [NameKey: Value] = [:]
        for (k, v) in try entries(db) {
            let name = String(decoding: k, as: UTF8.self)
            guard let value = v.withUnsafeBytes({ decode($0) }) else {
                problems.append("\(label): bad value for \"\(name)\"")
                continue
            }
            out[NameKey(name)] = value
        }
        return out
    }

    /// Every (key, value) of a database, copied.
    private func entries(_ db: LMDBDatabase) throws(StoreError) -> [([UInt8], [UInt8])] {
        try withCursor(db) { (c) throws(StoreError) -> [([UInt8], [UInt8])] in
            var out: [([UInt8], [UInt8])] = []
            var entry = try lmdb { () throws(LMDBError) in try c.move(MDB_FIRST) }
            while let e = entry {
                out.append((Array(e.key), Array(e.value)))
                entry = try lmdb { () throws(LMDBError) in try c.move(MDB_NEXT) }
            }
            return out
        }
    }
}
