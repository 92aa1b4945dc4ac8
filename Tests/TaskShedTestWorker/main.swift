// taskshed-test-worker: a worker process for the client's end-to-end tests (several workers in separate
// processes, a worker killed mid-callback). It runs an EventDrivenWorker or PollingWorker whose callbacks
// append one line per event to an output file, so the test can count runs per task across processes:
//
//   ready <pid>                      after the worker has connected (and subscribed)
//   start <task id> <attempt>        when a callback begins
//   done <task id> <attempt>         when a callback returns
//   stopped <released count>         after a graceful shutdown (SIGTERM)
//
// Usage: taskshed-test-worker --socket PATH --output FILE [--mode polling|event] [--callback NAME]...
//        [--sleep-ms N] [--concurrency N] [--polling-ms N] [--lease-ms N] [--shutdown-timeout-ms N]

import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization
import TaskShed

struct Options {
    var socket = ""
    var output = ""
    var mode = "polling"
    var callbacks: [String] = []
    var sleepMilliseconds = 0
    var concurrency = 16
    var pollingMilliseconds = 200
    var leaseMilliseconds: Int?
    var shutdownTimeoutMilliseconds = 30_000

    static func parse(_ arguments: [String]) -> Options? {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { return nil }
            switch flag {
            case "--socket": options.socket = value
            case "--output": options.output = value
            case "--mode": options.mode = value
            case "--callback": options.callbacks.append(value)
            case "--sleep-ms": options.sleepMilliseconds = Int(value) ?? 0
            case "--concurrency": options.concurrency = Int(value) ?? 16
            case "--polling-ms": options.pollingMilliseconds = Int(value) ?? 200
            case "--lease-ms": options.leaseMilliseconds = Int(value)
            case "--shutdown-timeout-ms": options.shutdownTimeoutMilliseconds = Int(value) ?? 30_000
            default: return nil
            }
        }
        if options.callbacks.isEmpty { options.callbacks = ["work"] }
        return options.socket.isEmpty || options.output.isEmpty ? nil : options
    }
}

/// Appends whole lines with O_APPEND, so lines from several processes never interleave.
final class LineLog: Sendable {
    private let fd: Int32

    init?(path: String) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { return nil }
    }

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

guard let options = Options.parse(Array(CommandLine.arguments.dropFirst())),
    let log = LineLog(path: options.output)
else {
    FileHandle.standardError.write(Data("usage: taskshed-test-worker --socket PATH --output FILE [options]\n".utf8))
    exit(2)
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}

let sleep = Duration.milliseconds(options.sleepMilliseconds)
var callbackMap: [String: TaskCallback] = [:]
for name in options.callbacks {
    callbackMap[name] = { task in
        log.write("start \(task.id) \(task.attempt)")
        if sleep > .zero { try await Task.sleep(for: sleep) }
        log.write("done \(task.id) \(task.attempt)")
    }
}

let lease = options.leaseMilliseconds.map { Duration.milliseconds($0) }
let start: @Sendable () async throws -> Void
let stop: @Sendable (Duration) async -> Int
switch options.mode {
case "event":
    let worker = try EventDrivenWorker(
        callbackMap: callbackMap, socketPath: options.socket, concurrency: options.concurrency, lease: lease)
    start = { try await worker.start() }
    stop = { await worker.shutdown(timeout: $0) }
default:
    let worker = try PollingWorker(
        callbackMap: callbackMap, pollingInterval: .milliseconds(options.pollingMilliseconds), socketPath: options.socket,
        concurrency: options.concurrency, lease: lease)
    start = { try await worker.start() }
    stop = { await worker.shutdown(timeout: $0) }
}

let (stopRequests, stopContinuation) = AsyncStream<Void>.makeStream()
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
// On the main queue: top-level code, and so this handler, is main-actor isolated.
let signalSources = [SIGTERM, SIGINT].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
    source.setEventHandler { stopContinuation.yield() }
    source.resume()
    return source
}

try await start()
log.write("ready \(getpid())")
for await _ in stopRequests { break }
let released = await stop(.milliseconds(options.shutdownTimeoutMilliseconds))
log.write("stopped \(released)")
withExtendedLifetime(signalSources) {}
