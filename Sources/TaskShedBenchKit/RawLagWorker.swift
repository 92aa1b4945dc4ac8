#if canImport(Glibc)
import Glibc
#endif
import TaskShedProtocol

/// The lag scenario's worker on the raw protocol (run in its own process by `taskshed-bench _lag-worker`).
///
/// Event-driven: it subscribes and records, for each `DELIVERY`, the instant the `read` that completed the frame
/// returned, then acknowledges everything read in one write. Polling: it sends `CLAIM` every interval and
/// records when the `TASKS` reply arrived. Either way nothing but the socket, the decoder and the clock stand
/// between the daemon and the figure.
public enum RawLagWorker {
    /// One received delivery.
    public struct Receipt: Sendable {
        /// The task id.
        public var id: String
        /// The task's due time (µs since the epoch).
        public var runAtMicros: Int64
        /// When the frame arrived (`CLOCK_REALTIME` ns).
        public var receivedNanos: Int64
        /// When the callback started (client-library workers), or the arrival time (raw workers).
        public var startedNanos: Int64

        /// Creates a receipt.
        public init(id: String, runAtMicros: Int64, receivedNanos: Int64, startedNanos: Int64) {
            self.id = id
            self.runAtMicros = runAtMicros
            self.receivedNanos = receivedNanos
            self.startedNanos = startedNanos
        }
    }

    /// Receives until `expected` distinct tasks arrived (plus a short wait for duplicates) or the deadline.
    /// - Parameters:
    ///   - socketPath: The daemon's socket.
    ///   - callback: The callback name to serve.
    ///   - expected: Distinct tasks to wait for.
    ///   - deadlineNanos: `CLOCK_REALTIME` instant after which it stops regardless.
    ///   - pollingIntervalMicros: `nil` for event-driven (SUBSCRIBE); else the CLAIM interval.
    ///   - onReady: Called once subscribed (or connected, when polling).
    /// - Returns: Every delivery received, in arrival order.
    /// - Throws: `BenchError` on a connection or protocol failure.
    public static func run(socketPath: String, callback: String, expected: Int, deadlineNanos: Int64,
                           pollingIntervalMicros: Int64?, onReady: () -> Void) throws -> [Receipt] {
        let connection = try BenchConnection(path: socketPath)
        try connection.handshake(clientName: "taskshed-bench lag worker")
        var receipts: [Receipt] = []
        receipts.reserveCapacity(expected)
        var distinct = Set<String>()
        var acks: [UInt8] = []
        var doneAt: Int64?
        // After the last expected task, listen a little longer so late duplicates are counted.
        let duplicateWindow: Int64 = 300_000_000
        func record(_ task: TaskRecord, _ received: Int64) {
            receipts.append(Receipt(id: task.id, runAtMicros: task.runAt, receivedNanos: received,
                                    startedNanos: received))
            distinct.insert(task.id)
            FrameEncoder.encode(
                Frame(requestID: connection.makeRequestID(), message: .ack(LeaseRef(id: task.id, attempt: task.attempt))),
                into: &acks)
        }
        if let interval = pollingIntervalMicros {
            onReady()
            var nextClaim = BenchTime.monotonicNanos()
            var claimID: UInt32 = 0
            while BenchTime.realtimeNanos() < deadlineNanos {
                if doneAt == nil && distinct.count >= expected { doneAt = BenchTime.realtimeNanos() }
                if let doneAt, BenchTime.realtimeNanos() - doneAt > duplicateWindow { break }
                let now = BenchTime.monotonicNanos()
                if claimID == 0 && now >= nextClaim {
                    claimID = connection.makeRequestID()
                    try connection.send([Frame(requestID: claimID, message: .claim(
                        Claim(callbacks: [callback], max: 10_000, leaseMicros: nil)))])
                    nextClaim += interval * 1000
                }
                let wait = claimID != 0 ? 100 : max(0, (nextClaim - BenchTime.monotonicNanos()) / 1_000_000)
                let (frames, received) = try connection.receive(timeoutMillis: Int32(min(wait, 100)))
                for frame in frames {
                    if frame.requestID == claimID, case .tasks(let tasks) = frame.message {
                        claimID = 0
                        for task in tasks { record(task, received) }
                    } else if case .error(let error) = frame.message {
                        throw BenchError("daemon error: \(error.code) \(error.message)")
                    }
                }
                if !acks.isEmpty {
                    try connection.send(bytes: acks)
                    acks.removeAll(keepingCapacity: true)
                }
            }
            return receipts
        }
        let subscribeID = connection.makeRequestID()
        try connection.send([Frame(requestID: subscribeID, message: .subscribe(
            Subscribe(callbacks: [callback], concurrency: 10_000, leaseMicros: nil)))])
        var subscribed = false
        while BenchTime.realtimeNanos() < deadlineNanos {
            if doneAt == nil && distinct.count >= expected { doneAt = BenchTime.realtimeNanos() }
            if let doneAt, BenchTime.realtimeNanos() - doneAt > duplicateWindow { break }
            let (frames, received) = try connection.receive(timeoutMillis: 100)
            for frame in frames {
                switch frame.message {
                case .delivery(let task): record(task, received)
                case .subscribed:
                    if !subscribed {
                        subscribed = true
                        onReady()
                    }
                case .error(let error): throw BenchError("daemon error: \(error.code) \(error.message)")
                default: break
                }
            }
            if !acks.isEmpty {
                try connection.send(bytes: acks)
                acks.removeAll(keepingCapacity: true)
            }
        }
        return receipts
    }

    /// The report file's text: one line per receipt, `index runAtMicros receivedNanos startedNanos`, where the
    /// index is the number after the last `-` of the id (the lag scenario names its tasks `lag-<index>`).
    /// - Parameter receipts: The receipts.
    /// - Returns: The text.
    public static func reportText(_ receipts: [Receipt]) -> String {
        var out = ""
        for receipt in receipts {
            let index = receipt.id.split(separator: "-").last.flatMap { Int($0) } ?? -1
            out += "\(index) \(receipt.runAtMicros) \(receipt.receivedNanos) \(receipt.startedNanos)\n"
        }
        return out
    }
}
