#if canImport(Glibc)
import Glibc
#endif
import CLMDB
import TaskShedStore

/// Raw LMDB figures for the store's index shapes, to tell LMDB's share of a store operation from the store's.
public enum LMDBMicroBenchmarks {
    /// Pops `count` entries from the front of an index in transactions of `batch`: a plain `time ++ id` index
    /// versus a `MDB_DUPSORT` index of 10 keys holding `time ++ id` values.
    public static func frontDeletes(directory: String, count: Int = 100_000, batch: Int = 100) throws -> [BenchResult] {
        var results: [BenchResult] = []
        for dup in [false, true] {
            let path = directory + "/micro-\(dup)"
            mkdir(path, 0o700)
            defer {
                unlink(path + "/data.mdb")
                unlink(path + "/lock.mdb")
                rmdir(path)
            }
            let env = try LMDBEnvironment(path: path, mapSize: 1 << 30, maxDatabases: 4, flags: [.noSync])
            var txn = try LMDBTransaction(environment: env, readOnly: false)
            guard let db = try txn.openDatabase("i", flags: dup ? [.create, .dupSort] : [.create]) else { return [] }
            func entry(_ i: Int) -> (key: [UInt8], value: [UInt8]) {
                var bytes: [UInt8] = []
                withUnsafeBytes(of: (UInt64(i) ^ (1 << 63)).bigEndian) { bytes.append(contentsOf: $0) }
                bytes.append(contentsOf: Array("0123456789abcdef0123456789abcdef".utf8))
                if dup { return (Array("callback-\(i % 10)".utf8), bytes) }
                return (bytes, [])
            }
            for i in 0..<count {
                let e = entry(i)
                try txn.put(db, key: e.key, value: e.value)
            }
            try txn.commit()
            let (_, wall, cpu) = try measure { () throws -> Void in
                var i = 0
                while i < count {
                    txn = try LMDBTransaction(environment: env, readOnly: false)
                    for j in i..<min(count, i + batch) {
                        let e = entry(j)
                        _ = try txn.delete(db, key: e.key, value: dup ? e.value : nil)
                    }
                    try txn.commit()
                    i += batch
                }
            }
            results.append(BenchResult(
                name: "raw LMDB front deletes, \(dup ? "MDB_DUPSORT 10 keys" : "plain time++id index"), txns of \(batch)",
                tasks: count, nanos: wall, cpuNanos: cpu))
        }
        return results
    }
}
