import Glibc
import Testing
import TaskShedProtocol
@testable import TaskShedStore

/// LMDB's indexes, callback numbers, index queue and schema versions: LMDB only.
@Suite("Index consistency, callback numbers, schema versions")
struct IndexConsistencyTests {
    /// Random operations in group commits (isolating or not, requests that fail included): after every batch
    /// and after a reopen, each index, the callback numbers and the counters agree exactly with the records.
    /// The last seed runs without the writable map (`StoreOptions.writeMap`), LMDB's copying write path.
    @Test(arguments: zip([UInt64(3), 17, 99, 5], [true, true, true, false]))
    func indexesAndCountersMatchTheRecordsAfterRandomOperations(seed: UInt64, writeMap: Bool) throws {
        let dir = TempDirectory()
        var options = testOptions()
        options.writeMap = writeMap
        var store = try openStore(dir, options: options, seed: seed)
        #expect(store.usesWriteMap == writeMap)
        var rng = SeededRandom(seed: seed &* 7919)
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        let callbacks = ["a", "b", "c", "d", "e"]
        var leased: [(id: String, attempt: UInt32, holder: UInt64)] = []
        var now = t0
        // The indexes answer like a scan of the records would: leased tasks (whose `callback_wake` entries
        // stay, skipped through the claim frontiers) are neither the next wake-up nor listed as due.
        func checkAgainstScan(_ round: Int) throws {
            let all = try store.all(now: now)
            let due = all.filter { $0.state == .scheduled && !$0.paused }
            #expect(try store.earliestRunAt() == due.map(\.runAt).min(), "after round \(round)")
            for c in callbacks {
                #expect(try store.earliestRunAt(callback: c) == due.filter { $0.callback == c }.map(\.runAt).min(),
                        "after round \(round)")
                let listed = try store.all(now: now, filter: TaskFilter(state: .due, callback: c))
                #expect(listed.map(\.id) == due.filter { $0.callback == c && $0.runAt <= now }
                    .sorted { positionPrecedes(($0.runAt, $0.id), ($1.runAt, $1.id)) }.map(\.id), "after round \(round)")
            }
            let stats = try store.stats(now: now)
            let leasedTasks = all.filter { $0.state == .leased }
            #expect(stats.leased == UInt64(leasedTasks.count), "after round \(round)")
            #expect(try store.earliestLeaseDeadline() == leasedTasks.compactMap(\.leaseDeadline).min(),
                    "after round \(round)")
            #expect(stats.due == UInt64(due.filter { $0.runAt <= now }.count), "after round \(round)")
        }
        for round in 0..<40 {
            if round == 20 {
                store.close()
                store = try openStore(dir, options: options, seed: seed + 1)
                #expect(try store.verifyIndexes() == [])
            }
            now += Int64(rng.next() % 5) * second
            let isolating = rng.next() % 2 == 0
            // Without isolation a failed request aborts the whole batch (write throws it): nothing of it stays.
            let body = { (batch: inout LMDBWriteBatch) throws(StoreError) -> [(TaskRecord, UInt64)] in
                var claimed: [(TaskRecord, UInt64)] = []
                for _ in 0..<(5 + Int(rng.next() % 15)) {
                    let id = "t\(rng.next() % 60)"
                    switch rng.next() % 14 {
                    case 0, 1, 2:
                        // Several tasks, random run times (some tied), named and generated ids.
                        var specs: [TaskSpec] = []
                        var used = Set<String>()
                        for _ in 0..<(1 + Int(rng.next() % 8)) {
                            let named = rng.next() % 3 != 0
                            let tid = "t\(rng.next() % 60)"
                            if named && !used.insert(tid).inserted { continue }
                            specs.append(
                                spec(
                                    named ? tid : nil, callback: pick(callbacks),
                                    runAt: now + Int64(rng.next() % 20) * second - 10 * second,
                                    schedule: rng.next() % 4 == 0 ? .interval(micros: 3 * second) : .once,
                                    group: rng.next() % 3 == 0 ? pick(["g1", "g2", "g-long-name"]) : nil,
                                    paused: rng.next() % 6 == 0, maxAttempts: UInt32(1 + rng.next() % 3)))
                        }
                        let policy = pick([ConflictPolicy.replace, .keep, .fail])
                        _ = request { () throws(StoreError) in try batch.add(specs, onConflict: policy, now: now) }
                    case 3:
                        let holder = UInt64(1 + rng.next() % 2)
                        let picked = Array(callbacks.shuffled(using: &rng).prefix(1 + Int(rng.next() % 5)))
                        if let got = request({ () throws(StoreError) in
                            try batch.claim(
                                callbacks: picked, max: rng.next() % 4 == 0 ? 40 : 1 + Int(rng.next() % 6), holder: holder,
                                leaseDeadline: now + Int64(rng.next() % 8) * second, now: now)
                        }) {
                            claimed += got.map { ($0, holder) }
                        }
                    case 4 where !leased.isEmpty:
                        let l = leased.remove(at: Int(rng.next() % UInt64(leased.count)))
                        _ = request { () throws(StoreError) in
                            try batch.ack(id: l.id, attempt: l.attempt, holder: l.holder, now: now)
                        }
                    case 5 where !leased.isEmpty:
                        let l = leased.remove(at: Int(rng.next() % UInt64(leased.count)))
                        _ = request { () throws(StoreError) in
                            try batch.fail(
                                id: l.id, attempt: l.attempt, holder: l.holder, error: "boom",
                                retry: rng.next() % 3 != 0, now: now)
                        }
                    case 6 where !leased.isEmpty:
                        let l = pick(leased)
                        _ = request { () throws(StoreError) in
                            try batch.touch(id: l.id, attempt: l.attempt, holder: l.holder, leaseDeadline: now + 9 * second)
                        }
                    case 7 where !leased.isEmpty:
                        let l = leased.remove(at: Int(rng.next() % UInt64(leased.count)))
                        _ = request { () throws(StoreError) in
                            try batch.release(id: l.id, attempt: l.attempt, holder: l.holder)
                        }
                    case 8:
                        _ = request { () throws(StoreError) in
                            try batch.pause(pick([.ids([id, "t\(rng.next() % 60)"]), .group("g1")]), now: now)
                        }
                    case 9:
                        _ = request { () throws(StoreError) in
                            try batch.resume(pick([.ids([id]), .group(pick(["g1", "g2"]))]))
                        }
                    case 10:
                        _ = request { () throws(StoreError) in
                            try batch.remove(pick([.ids([id]), .group("g-long-name")]))
                        }
                    case 11:
                        // The same id twice: the last update wins.
                        _ = request { () throws(StoreError) in
                            try batch.updateRunTimes([
                                RunTimeUpdate(id: id, runAt: now + 1), RunTimeUpdate(id: id, runAt: now - 2 * second),
                            ])
                        }
                    case 12:
                        _ = request { () throws(StoreError) in try batch.expireLeases(now: now) }
                        if rng.next() % 3 == 0 {
                            _ = request { () throws(StoreError) in
                                try batch.releaseHolder(2, reason: "gone", now: now)
                            }
                        }
                    default:
                        if rng.next() % 2 == 0 {
                            _ = request { () throws(StoreError) in try batch.retryDead(.all, now: now) }
                        } else {
                            _ = request { () throws(StoreError) in try batch.purgeDead(.ids([id])) }
                        }
                    }
                }
                return claimed
            }
            let claimedNow = isolating ? try store.write(isolatingRequests: true, body)
                : request { () throws(StoreError) in try store.write(isolatingRequests: false, body) } ?? []
            leased += claimedNow.map { ($0.0.id, $0.0.attempt, $0.1) }
            #expect(try store.verifyIndexes() == [], "after round \(round)")
            try checkAgainstScan(round)
        }
    }

    /// Runs one request that may fail as a request (a task that exists, is gone, or whose lease moved on; an
    /// invalid argument): `nil` then. Any other error (a corrupt store, an LMDB failure) is a test failure, so
    /// that a request failing for a wrong reason before it wrote anything cannot pass unseen.
    private func request<T>(_ body: () throws(StoreError) -> T) -> T? {
        do {
            return try body()
        } catch {
            let expected: [ErrorCode] = [.taskExists, .taskNotFound, .leaseLost, .invalidArgument]
            #expect(expected.contains(error.code), "unexpected \(error.code): \(error.message)")
            return nil
        }
    }

    @Test func callbackNumbersSurviveReopenAndRestartAfterRemoveAll() throws {
        let dir = TempDirectory()
        do {
            let store = try openStore(dir)
            _ = try store.add([spec("a1", callback: "alpha", runAt: t0 - 3), spec("b1", callback: "beta", runAt: t0 - 2)], now: t0)
            store.close()
        }
        let store = try openStore(dir)
        let before = try store.read { (ctx, _) throws(StoreError) in
            [try ctx.lookUpCallbackNumber("alpha"), try ctx.lookUpCallbackNumber("beta")]
        }
        #expect(before == [0, 1])
        _ = try store.add(
            [spec("g1", callback: "gamma", runAt: t0 - 5), spec("a2", callback: "alpha", runAt: t0 - 4)], now: t0)
        let after = try store.read { (ctx, _) throws(StoreError) in
            [
                try ctx.lookUpCallbackNumber("alpha"), try ctx.lookUpCallbackNumber("beta"),
                try ctx.lookUpCallbackNumber("gamma"), try ctx.lookUpCallbackNumber("delta"),
            ]
        }
        #expect(after == [0, 1, 2, nil])
        #expect(try store.earliestRunAt(callback: "alpha") == t0 - 4)
        #expect(try store.earliestRunAt(callback: "gamma") == t0 - 5)
        #expect(try store.earliestRunAt(callback: "delta") == nil)
        // Each callback's claim sees only its own tasks, across the number boundary of the keys.
        #expect(try store.claim(callbacks: ["beta"], max: 9, holder: 1, leaseDeadline: t0 + 9, now: t0).map(\.id) == ["b1"])
        #expect(try store.claim(callbacks: ["alpha", "delta"], max: 9, holder: 1, leaseDeadline: t0 + 9, now: t0).map(\.id) == ["a2", "a1"])
        // A callback whose tasks are all gone keeps its number; remove(.all) clears the numbers.
        #expect(try store.remove(.all) == 4)
        #expect(try store.verifyIndexes() == [])
        _ = try store.add([spec("d1", callback: "delta", runAt: t0 - 1)], now: t0)
        let renumbered = try store.read { (ctx, _) throws(StoreError) in
            [try ctx.lookUpCallbackNumber("delta"), try ctx.lookUpCallbackNumber("alpha")]
        }
        #expect(renumbered == [0, nil])
        #expect(try store.claim(callbacks: ["delta"], max: 9, holder: 1, leaseDeadline: t0 + 9, now: t0).map(\.id) == ["d1"])
        #expect(try store.verifyIndexes() == [])
    }

    @Test func aNumberAssignedInARolledBackRequestIsNotKept() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        _ = try store.add([spec("x")], now: t0)
        // Without isolation a failed request aborts the batch, and with it the number given to "fresh".
        _ = storeError {
            _ = try store.write(isolatingRequests: false) { (batch: inout LMDBWriteBatch) throws(StoreError) -> Int in
                _ = try batch.add([spec("n1", callback: "fresh")], onConflict: .fail, now: t0)
                _ = try batch.add([spec("x")], onConflict: .fail, now: t0)
                return 0
            }
        }
        let fresh = try store.read { (ctx, _) throws(StoreError) in try ctx.lookUpCallbackNumber("fresh") }
        #expect(fresh == nil)
        _ = try store.add([spec("n2", callback: "other")], now: t0)
        let other = try store.read { (ctx, _) throws(StoreError) in try ctx.lookUpCallbackNumber("other") }
        #expect(other == 1)
        #expect(try store.verifyIndexes() == [])
    }

    /// A store of schema version 1 (whose `callback_due` database was `MDB_DUPSORT`) is refused with the schema
    /// error, not with LMDB's flag mismatch: the version is read before the other databases are opened.
    @Test func aVersionOneStoreIsRefusedWithTheSchemaError() throws {
        let dir = TempDirectory()
        mkdir(dir.store, 0o700)
        do {
            let env = try LMDBEnvironment(path: dir.store, mapSize: 1 << 20, maxDatabases: 16, flags: [])
            let txn = try LMDBTransaction(environment: env, readOnly: false)
            let meta = try #require(try txn.openDatabase("meta", flags: [.create]))
            try txn.put(meta, key: Array("schema_version".utf8), value: [1, 0, 0, 0])
            let due = try #require(try txn.openDatabase("callback_due", flags: [.create, .dupSort]))
            try txn.put(due, key: Array("cb".utf8), value: [0x80, 0, 0, 0, 0, 0, 0, 1, 0x61])
            _ = try #require(try txn.openDatabase("tasks", flags: [.create]))
            try txn.commit()
        }
        let error = storeError { _ = try openStore(dir) }
        #expect(error?.code == .internalError)
        #expect(error?.field == "schema_version")
        #expect(error?.message.contains("schema version 1;") == true)
        #expect(error?.message.contains("reads version \(LMDBTaskStore.schemaVersion)") == true)
    }

    /// Many index changes in one operation take the sorted, appending path; a later batch inserts between and
    /// below existing keys, and a remove by group deletes through the same path.
    @Test func largeBatchesAppendAndInsertInOrder() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        var rng = SeededRandom(seed: 5)
        func batch(_ prefix: String, _ n: Int) -> [TaskSpec] {
            (0..<n).map { i in
                spec(
                    i % 3 == 0 ? nil : "\(prefix)\(i)", callback: "cb\(i % 4)",
                    runAt: t0 + Int64(rng.next() % 1000) * second, group: i % 5 == 0 ? "g\(prefix)" : nil,
                    paused: i % 7 == 0)
            }
        }
        _ = try store.add(batch("a", 500), now: t0)
        #expect(try store.verifyIndexes() == [])
        _ = try store.add(batch("b", 500), now: t0)
        _ = try store.add(batch("a", 300), onConflict: .replace, now: t0)
        #expect(try store.verifyIndexes() == [])
        #expect(try store.remove(.group("gb")) == 100)
        #expect(try store.verifyIndexes() == [])
        let claimed = try store.claim(
            callbacks: ["cb0", "cb1", "cb2", "cb3"], max: 1000, holder: 1, leaseDeadline: t0, now: t0 + 2000 * second)
        #expect(claimed.map(\.runAt) == claimed.map(\.runAt).sorted())
        #expect(try store.verifyIndexes() == [])
        #expect(try store.stats(now: t0 + 2000 * second).due == 0)
    }

    /// Index keys that tie in their first 24 bytes (the integer prefix the index queue sorts by) are ordered by
    /// their bytes and then their length, as LMDB orders them: ids with a long common prefix, ids that are
    /// prefixes of others, a NUL byte after the prefix. Claims then walk them in that order.
    @Test func keysTiedInTheSortPrefixKeepLMDBOrder() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        let base = String(repeating: "p", count: 30)
        let ids = [base + "b", base, base + "a", base + "\u{0}", base + "a\u{0}", base + "aa", "q", base + "0", "pp"]
        _ = try store.add(ids.map { spec($0, runAt: t0, group: "g") }, now: t0)
        #expect(try store.verifyIndexes() == [])
        let want = ids.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(try store.fetch(.group("g")).map(\.id) == want)
        let claimed = try store.claim(callbacks: ["cb"], max: 100, holder: 1, leaseDeadline: t0 + 10, now: t0)
        #expect(claimed.map(\.id) == want)
        #expect(try store.verifyIndexes() == [])
        for r in claimed { _ = try store.ack(id: r.id, attempt: r.attempt, holder: 1, now: t0) }
        #expect(try store.verifyIndexes() == [] && store.all().isEmpty)
    }

    /// The index queue applies each index's changes in (key bytes, arrival) order, as LMDB orders keys: checked
    /// against a brute-force sort for `callback_wake` changes of 1 to 24 callback numbers (the grouped sort and
    /// its fallback past 16), with tied times, ids that share long prefixes or are prefixes of others, and puts
    /// and deletions of one key.
    @Test func indexQueueOrdersChangesByKeyThenArrival() {
        var rng = SeededRandom(seed: 99)
        for round in 0..<200 {
            var buffer = IndexWriteBuffer()
            var want: [(key: [UInt8], isPut: Bool, arrival: Int)] = []
            let numbers = 1 + Int(rng.next() % 24)
            for arrival in 0..<(1 + Int(rng.next() % 120)) {
                let n = UInt32(rng.next() % UInt64(numbers)) * 7
                let t = t0 + Int64(rng.next() % 4)
                let id = String(repeating: "v", count: Int(rng.next() % 20)) + (rng.next() % 2 == 0 ? "" : "\(rng.next() % 3)")
                let put = rng.next() % 2 == 0
                buffer.callback(put: put, n, t, id)
                var key = ByteSink(capacity: 12 + id.utf8.count)
                key.u32BE(n)
                key.timeKey(t)
                key.raw(id)
                want.append((key.bytes, put, arrival))
            }
            want.sort { x, y in
                x.key == y.key ? x.arrival < y.arrival : x.key.lexicographicallyPrecedes(y.key)
            }
            let got = buffer.applyOrder(.callbackWake)
            #expect(got.map(\.key) == want.map(\.key), "round \(round)")
            #expect(got.map(\.isPut) == want.map(\.isPut), "round \(round)")
        }
    }

    /// The index queue sorts `callback_wake` changes by callback number first (a counting sort while at most 16
    /// numbers occur, a comparison sort past that), then each number's changes if they arrived out of order.
    /// Acks in one write batch, shuffled, delete entries of 5 and of 20 callbacks; random adds put them.
    @Test(arguments: [5, 20]) func callbackWakeChangesOfManyCallbacksInOneBatchLandExactly(callbacks: Int) throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        var rng = SeededRandom(seed: UInt64(callbacks))
        let names = (0..<callbacks).map { "cb\($0)" }
        let specs = (0..<600).map { i in
            spec(nil, callback: names[i % callbacks], runAt: t0 - Int64(rng.next() % 400) * second,
                 group: i % 6 == 0 ? "g" : nil)
        }
        _ = try store.add(specs, now: t0)
        #expect(try store.verifyIndexes() == [])
        let claimed = try store.claim(callbacks: names, max: 400, holder: 1, leaseDeadline: t0 + 60 * second, now: t0)
        #expect(claimed.count == 400)
        var order = claimed
        for i in order.indices.reversed() { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        _ = try store.write { (batch: inout LMDBWriteBatch) throws(StoreError) -> Int in
            for r in order { _ = try batch.ack(id: r.id, attempt: r.attempt, holder: 1, now: t0) }
            return order.count
        }
        #expect(try store.verifyIndexes() == [])
        let left = try store.claim(callbacks: names, max: 1000, holder: 2, leaseDeadline: t0 + 60 * second, now: t0)
        #expect(Set(left.map(\.id)) == Set(try store.all().map(\.id)))
        #expect(left.count == 200)
        #expect(left.map(\.runAt) == left.map(\.runAt).sorted())
    }

    /// With a tiny queue limit, `save` applies the index queue many times within one operation (as a huge
    /// removal or batch does past 32 MiB of keys): the indexes stay exact.
    @Test func indexQueueAppliedInChunksKeepsIndexesExact() throws {
        let dir = TempDirectory()
        let store = try openStore(dir)
        store.indexQueueLimit = 300
        var rng = SeededRandom(seed: 11)
        let specs = (0..<400).map { i in
            spec(
                i % 2 == 0 ? nil : "c\(i)", callback: "cb\(i % 3)", runAt: t0 - Int64(rng.next() % 500) * second,
                group: i % 4 == 0 ? "big" : nil, paused: i % 9 == 0)
        }
        _ = try store.add(specs, now: t0)
        #expect(try store.verifyIndexes() == [])
        let claimed = try store.claim(callbacks: ["cb0", "cb1", "cb2"], max: 150, holder: 3, leaseDeadline: t0 + 5, now: t0)
        #expect(claimed.count == 150)
        #expect(claimed.map(\.runAt) == claimed.map(\.runAt).sorted())
        #expect(try store.verifyIndexes() == [])
        #expect(try store.remove(.group("big")) == 100)
        _ = try store.expireLeases(now: t0 + 10)
        #expect(try store.verifyIndexes() == [])
        #expect(try store.stats(now: t0).leased == 0)
    }
}

/// For every store kind in `behaviourKinds` (the indexes are checked for LMDB only).
@Suite("Callback names are bytes")
struct CallbackNameBytesTests {
    /// "é" precomposed and "e" + combining accent are equal Swift strings (canonical equivalence) but different
    /// keys: each gets its own callback number, counter and due list.
    @Test(arguments: behaviourKinds)
    func canonicallyEquivalentNamesStayDistinct(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        let lmdb = store as? LMDBTaskStore
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        _ = try store.add([spec("a", callback: composed), spec("b", callback: decomposed)], now: t0)
        if let lmdb { #expect(try lmdb.verifyIndexes() == []) }
        func claim(_ callback: String) throws -> [String] {
            try store.claim(callbacks: [callback], max: 10, holder: 1, leaseDeadline: t0 + 10, now: t0).map(\.id)
        }
        #expect(try claim(decomposed) == ["b"])
        #expect(try claim(composed) == ["a"])
        let stats = try store.stats(now: t0)
        #expect(stats.callbacks.count == 2 && stats.leased == 2)
        if let lmdb { #expect(try lmdb.verifyIndexes() == []) }
    }

    /// Ids and groups likewise: two canonically equivalent ids in one batch are two tasks (not a duplicate), and
    /// filters and selectors match bytes.
    @Test(arguments: behaviourKinds)
    func canonicallyEquivalentIdsAndGroupsStayDistinct(kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        let lmdb = store as? LMDBTaskStore
        let composed = "r\u{E9}sum\u{E9}"
        let decomposed = "re\u{301}sume\u{301}"
        let results = try store.add(
            [spec(composed, runAt: t0, group: composed), spec(decomposed, runAt: t0 + 1, group: decomposed)], now: t0)
        #expect(results.map(\.outcome) == [.inserted, .inserted])
        let fetched = try store.fetch(.ids([decomposed, composed, decomposed]))
        #expect(fetched.map(\.id.utf8.count) == [decomposed.utf8.count, composed.utf8.count])
        #expect(try store.fetch(.group(decomposed)).map(\.runAt) == [t0 + 1])
        #expect(try store.all(filter: TaskFilter(group: composed)).map(\.runAt) == [t0])
        #expect(try store.remove(.ids([composed])) == 1)
        #expect(try store.all().map(\.runAt) == [t0 + 1])
        if let lmdb { #expect(try lmdb.verifyIndexes() == []) }
    }
}
