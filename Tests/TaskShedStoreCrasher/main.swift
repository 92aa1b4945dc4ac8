// A child process for the store's crash test: commits numbered batches to a store until it is killed.
//
// Usage: taskshed-store-crasher <store-directory> <prefix> <tasks-per-batch> <report-file>
//        taskshed-store-crasher --file-size-limit <bytes> <store-directory> <initial-map-bytes> (see below)
// Batch n adds <tasks-per-batch> tasks in group "<prefix>-<n>" and removes group "<prefix>-<n-3>", in one
// durable transaction; after the commit returns it appends "n\n" to the report file. The parent SIGKILLs it at
// a random moment and checks that every reported batch is present in full and none is half-applied.
#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol
import TaskShedStore

func fail(_ message: String, code: Int32) -> Never {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(code)
}

let args = CommandLine.arguments

// Second use, for the writable map's fallbacks: taskshed-store-crasher --file-size-limit <bytes> <dir> <initial-map>
// Opens the store under a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so that writes past it fail with EFBIG
// as on a full disk instead of killing the process), adds batches of 50 tasks until one fails, and prints
// "open <usesWriteMap>", one "added <n> <usesWriteMap>" per batch, and "failed <code> <message>".
if args.count == 5 && args[1] == "--file-size-limit" {
    guard let limit = rlim_t(args[2]), let initialMap = Int(args[4]) else {
        fail("usage: taskshed-store-crasher --file-size-limit <bytes> <dir> <initial-map>", code: 2)
    }
    signal(SIGXFSZ, SIG_IGN)
    var rl = rlimit(rlim_cur: limit, rlim_max: limit)
    guard setrlimit(Int32(RLIMIT_FSIZE.rawValue), &rl) == 0 else { fail("setrlimit failed", code: 2) }
    func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
    let kwargs = Array(("{\"pad\":\"" + String(repeating: "q", count: 400) + "\"}").utf8)
    do {
        let store = try LMDBTaskStore(
            directory: args[3], options: StoreOptions(initialMapBytes: initialMap, maxMapBytes: 64 << 20))
        say("open \(store.usesWriteMap)")
        var n = 0
        while n < 10_000 {
            let specs = (0..<50).map { i in TaskSpec(id: "l-\(n)-\(i)", callback: "cb", runAt: 1, kwargs: kwargs) }
            do {
                _ = try store.add(specs, now: 1)
            } catch {
                say("failed \(error.code) \(error.message)")
                exit(0)
            }
            n += 1
            say("added \(n) \(store.usesWriteMap)")
        }
        say("no failure")
    } catch {
        fail("open failed: \(error)", code: 1)
    }
    exit(0)
}

guard args.count == 5, let perBatch = Int(args[3]) else {
    fail("usage: taskshed-store-crasher <dir> <prefix> <tasks-per-batch> <report-file>", code: 2)
}
let prefix = args[2]
let report = open(args[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
guard report >= 0 else {
    fail("cannot open report file", code: 2)
}
let kwargs = Array(("{\"pad\":\"" + String(repeating: "p", count: 300) + "\"}").utf8)
do {
    let store = try LMDBTaskStore(
        directory: args[1], options: StoreOptions(initialMapBytes: 1 << 20, maxMapBytes: 1 << 30))
    var n = 0
    while true {
        let specs = (0..<perBatch).map { i in
            TaskSpec(id: "\(prefix)-\(n)-\(i)", callback: "cb", runAt: Int64(n), kwargs: kwargs, group: "\(prefix)-\(n)")
        }
        let batch = n
        try store.write(isolatingRequests: false) { (b: inout LMDBWriteBatch) throws(StoreError) in
            _ = try b.add(specs, onConflict: .fail, now: 1)
            if batch >= 3 { _ = try b.remove(.group("\(prefix)-\(batch - 3)")) }
        }
        let line = Array("\(n)\n".utf8)
        _ = line.withUnsafeBytes { write(report, $0.baseAddress, $0.count) }
        n += 1
    }
} catch {
    fail("crasher: \(error)", code: 1)
}
