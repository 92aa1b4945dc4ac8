#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import TaskShedProtocol

/// What one heavy or hostile client costs the others (issue 17): a healthy worker and a healthy pinger run
/// alone, then beside each attack in turn, and the run reports the healthy side's delivery lateness and `PING`
/// round trips in each phase, with the daemon's RssAnon.
///
/// Attacks, each in threads of this process on their own connections:
/// - `batches`: `ADD_TASKS` of `batchTasks` tasks (500-byte kwargs, run times a day ahead), one after the other;
/// - `flood`: a worker subscribed with concurrency `floodTasks` to `floodTasks` due tasks of 4 KiB kwargs,
///   reading and acknowledging as fast as it can;
/// - `half-frames`: `halfFrames` connections each send all but 4 MiB of a maximum-size frame and go silent,
///   and as many more try the same before `HELLO`.
///
/// The healthy worker subscribes to its own callback; its tasks are added a second ahead of their run times,
/// one every `healthySpacingMicros`, and lateness is the time from the run time to the `read` that returned the
/// delivery. The pinger sends one `PING` every millisecond on another connection.
public enum AttackBenchmark {
    /// The sizes of a run.
    public struct Config: Sendable {
        /// Seconds each phase is measured.
        public var seconds: Double = 5
        /// Tasks per `ADD_TASKS` of the `batches` attack.
        public var batchTasks = 100_000
        /// Due tasks (and the subscription's concurrency) of the `flood` attack.
        public var floodTasks = 50_000
        /// Connections of the `half-frames` attack (and as many again without `HELLO`).
        public var halfFrames = 40
        /// Which attacks run (names as above).
        public var attacks = ["batches", "flood", "half-frames"]

        /// The defaults of issue 17.
        public init() {}
    }

    /// The healthy side's figures of one phase.
    public struct Phase: Sendable {
        /// `quiet` or the attack's name.
        public var name: String
        /// Delivery lateness of the healthy worker's tasks (µs).
        public var lateness: LagDistribution
        /// Healthy tasks not delivered by the end of the phase.
        public var missing: Int
        /// `PING` round trips (µs).
        public var pings: LagDistribution
        /// The daemon's RssAnon at the end of the phase (KiB), and the most seen during it.
        public var rssAnonKiB: Int
        /// The most RssAnon seen during the phase (KiB).
        public var peakRssAnonKiB: Int
        /// What the attacker achieved (requests, deliveries, closed connections).
        public var attacker: String

        /// One report line.
        public var line: String {
            func ps(_ d: LagDistribution) -> String {
                [50.0, 99, 100].map { formatDecimal(($0 == 100 ? d.max : d.percentile($0)) ?? 0, digits: 0) }
                    .joined(separator: " / ")
            }
            return "\(name): lateness p50/p99/max \(ps(lateness)) µs (\(lateness.count) tasks, \(missing) missing); "
                + "PING p50/p99/max \(ps(pings)) µs (\(pings.count)); RssAnon \(rssAnonKiB / 1024) MiB "
                + "(peak \(peakRssAnonKiB / 1024) MiB); attacker: \(attacker)"
        }
    }

    /// A flag the threads poll.
    final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
        var isRaised: Bool { raised.load(ordering: .relaxed) }
        func raise() { raised.store(true, ordering: .relaxed) }
    }

    /// A counter the attack threads report through.
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
        func add(_ n: Int) { value.add(n, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    /// Spacing of the healthy worker's tasks.
    public static let healthySpacingMicros: Int64 = 2_000

    /// Runs the quiet phase, then each attack of `config`, against `daemon`.
    /// - Throws: `BenchError` when the healthy side's requests fail or an attack cannot be set up.
    public static func run(daemon: BenchDaemon, config: Config, progress: (String) -> Void = { _ in }) throws
        -> [Phase]
    {
        var phases: [Phase] = []
        phases.append(try phase("quiet", daemon: daemon, config: config, attack: nil))
        progress(phases.last!.line)
        for name in config.attacks {
            let attack: Attack
            switch name {
            case "batches": attack = try batches(daemon: daemon, tasks: config.batchTasks)
            case "flood": attack = try flood(daemon: daemon, tasks: config.floodTasks)
            case "half-frames": attack = try halfFrames(daemon: daemon, count: config.halfFrames)
            default: throw BenchError("unknown attack \(name); known: batches, flood, half-frames")
            }
            phases.append(try phase(name, daemon: daemon, config: config, attack: attack))
            progress(phases.last!.line)
        }
        return phases
    }

    /// An attack in progress: threads started by its set-up, told to stop by `stop`, reporting via `report`.
    struct Attack {
        let stop: Flag
        let threads: [Thread]
        let finished: Counter
        let report: () -> String
        /// Runs after the threads stopped (closes connections, removes tasks).
        let cleanUp: () throws -> Void
    }

    static func startThreads(_ count: Int, _ body: @escaping @Sendable (Int, Flag) -> Void) -> (Flag, [Thread], Counter) {
        let stop = Flag()
        let finished = Counter()
        let threads = (0..<count).map { index in
            Thread {
                body(index, stop)
                finished.add(1)
            }
        }
        threads.forEach { $0.start() }
        return (stop, threads, finished)
    }

    /// One phase: healthy tasks for `config.seconds`, pings meanwhile, the attack (if any) running throughout.
    static func phase(_ name: String, daemon: BenchDaemon, config: Config, attack: Attack?) throws -> Phase {
        let scheduler = try daemon.connect(name: "taskshed-bench attack healthy scheduler")
        let worker = try daemon.connect(name: "taskshed-bench attack healthy worker")
        let callback = "healthy-\(name)"
        let subscribeID = worker.makeRequestID()
        try worker.send([Frame(requestID: subscribeID, message: .subscribe(Subscribe(callbacks: [callback],
                                                                                     concurrency: 1_000)))])
        let start = BenchTime.realtimeNanos() / 1000 + 1_000_000
        let count = Int(config.seconds * 1e6) / Int(healthySpacingMicros)
        var runAt: [String: Int64] = [:]
        let specs = (0..<count).map { index -> TaskSpec in
            let at = start + Int64(index) * healthySpacingMicros
            let id = "\(callback)-\(index)"
            runAt[id] = at
            return TaskSpec(id: id, callback: callback, runAt: at, kwargs: Array("{}".utf8))
        }
        try scheduler.expectSuccess(.addTasks(AddTasks(tasks: specs)))

        let pingStop = Flag()
        let pingBox = PingBox()
        let socketPath = daemon.socketPath
        let pinger = Thread {
            guard let connection = try? BenchConnection(path: socketPath),
                  (try? connection.handshake(clientName: "taskshed-bench attack pinger")) != nil else { return }
            var times: [Double] = []
            while !pingStop.isRaised {
                let begin = BenchTime.monotonicNanos()
                guard (try? connection.expectSuccess(.ping)) != nil else { break }
                times.append(Double(BenchTime.monotonicNanos() - begin) / 1000)
                var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&pause, nil)
            }
            pingBox.set(times)
        }
        pinger.start()

        var lateness: [Double] = []
        var peak = 0
        let end = start + Int64(count) * healthySpacingMicros + 2_000_000
        var acks: [Frame] = []
        while lateness.count < count && BenchTime.realtimeNanos() / 1000 < end {
            let (frames, received) = try worker.receive(timeoutMillis: 100)
            for frame in frames where frame.requestID == subscribeID {
                guard case .delivery(let task) = frame.message, let due = runAt[task.id] else { continue }
                lateness.append(Double(received / 1000 - due))
                acks.append(Frame(requestID: worker.makeRequestID(), message: .ack(LeaseRef(id: task.id,
                                                                                           attempt: task.attempt))))
            }
            if !acks.isEmpty {
                try worker.send(acks)
                acks.removeAll(keepingCapacity: true)
            }
            peak = max(peak, ProcFacts.statusKiB("RssAnon", pid: daemon.pid) ?? 0)
        }
        pingStop.raise()
        while !pingBox.isSet { usleep(1_000) }
        let rss = ProcFacts.statusKiB("RssAnon", pid: daemon.pid) ?? -1
        var attacker = "none"
        if let attack {
            attack.stop.raise()
            attacker = attack.report()
            while attack.finished.count < attack.threads.count { usleep(1_000) }
            try attack.cleanUp()
        }
        return Phase(name: name, lateness: LagDistribution(micros: lateness), missing: count - lateness.count,
                     pings: LagDistribution(micros: pingBox.times), rssAnonKiB: rss, peakRssAnonKiB: max(peak, rss),
                     attacker: attacker)
    }

    /// The pinger thread's result.
    final class PingBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [Double]?
        func set(_ times: [Double]) { lock.withLock { stored = times } }
        var isSet: Bool { lock.withLock { stored != nil } }
        var times: [Double] { lock.withLock { stored ?? [] } }
    }

    /// `ADD_TASKS` of `tasks` tasks, back to back (the same ids each time, replaced: the store does not grow).
    static func batches(daemon: BenchDaemon, tasks: Int) throws -> Attack {
        let socketPath = daemon.socketPath
        let requests = Counter()
        let kwargs = Array(("{\"pad\":\"" + String(repeating: "b", count: 488) + "\"}").utf8)
        let later = BenchTime.realtimeNanos() / 1000 + 86_400_000_000
        let specs = (0..<tasks).map { TaskSpec(id: "bulk-\($0)", callback: "bulk", runAt: later + Int64($0), kwargs: kwargs) }
        var frame: [UInt8] = []
        FrameEncoder.encode(Frame(requestID: 1, message: .addTasks(AddTasks(onConflict: .replace, tasks: specs))),
                            into: &frame)
        let bytes = frame
        let (stop, threads, finished) = startThreads(1) { _, stop in
            guard let connection = try? BenchConnection(path: socketPath),
                  (try? connection.handshake(clientName: "taskshed-bench attack batches")) != nil else { return }
            while !stop.isRaised {
                guard (try? connection.send(bytes: bytes)) != nil else { return }
                guard let reply = try? connection.receive().frames.first, case .added = reply.message else { return }
                requests.add(1)
            }
        }
        return Attack(stop: stop, threads: threads, finished: finished,
                      report: { "\(requests.count) ADD_TASKS of \(tasks) tasks (\(bytes.count / 1_000_000) MB each)" },
                      cleanUp: {
                          let cleaner = try daemon.connect(name: "taskshed-bench attack cleaner")
                          try cleaner.expectSuccess(.removeTasks(.all))
                      })
    }

    /// A worker with concurrency `tasks` subscribed to `tasks` due tasks of 4 KiB, reading and acking at once.
    static func flood(daemon: BenchDaemon, tasks: Int) throws -> Attack {
        let filler = try daemon.connect(name: "taskshed-bench attack flood filler")
        let kwargs = Array(("{\"pad\":\"" + String(repeating: "f", count: 4_084) + "\"}").utf8)
        let now = BenchTime.realtimeNanos() / 1000
        for chunk in stride(from: 0, to: tasks, by: 10_000) {
            let specs = (chunk..<min(tasks, chunk + 10_000)).map {
                TaskSpec(id: "flood-\($0)", callback: "flood", runAt: now + Int64($0), kwargs: kwargs)
            }
            try filler.expectSuccess(.addTasks(AddTasks(tasks: specs)))
        }
        let socketPath = daemon.socketPath
        let delivered = Counter()
        let errors = Counter()
        let (stop, threads, finished) = startThreads(1) { _, stop in
            guard let connection = try? BenchConnection(path: socketPath),
                  (try? connection.handshake(clientName: "taskshed-bench attack flood")) != nil else { return }
            let id = connection.makeRequestID()
            guard (try? connection.send([Frame(requestID: id, message: .subscribe(
                Subscribe(callbacks: ["flood"], concurrency: UInt32(tasks)))) ])) != nil else { return }
            while !stop.isRaised {
                guard let (frames, _) = try? connection.receive(timeoutMillis: 50) else { return }
                var acks: [Frame] = []
                for frame in frames {
                    switch frame.message {
                    case .delivery(let task):
                        delivered.add(1)
                        acks.append(Frame(requestID: 7, message: .ack(LeaseRef(id: task.id, attempt: task.attempt))))
                    case .error where frame.requestID == 0:
                        errors.add(1)
                        return
                    default: break
                    }
                }
                if !acks.isEmpty, (try? connection.send(acks)) == nil { return }
            }
        }
        return Attack(stop: stop, threads: threads, finished: finished,
                      report: { "\(delivered.count) of \(tasks) delivered, \(errors.count) disconnected" },
                      cleanUp: { try filler.expectSuccess(.removeTasks(.all)) })
    }

    /// `count` connections that send all but 4 MiB of a maximum frame after `HELLO`, and `count` that try before.
    static func halfFrames(daemon: BenchDaemon, count: Int) throws -> Attack {
        let probe = try daemon.connect(name: "taskshed-bench attack probe")
        let maxFrame = Int(probe.serverLimits?.maxFrameBytes ?? ProtocolLimits.defaultMaxFrameBytes)
        let socketPath = daemon.socketPath
        let closed = Counter()
        let (stop, threads, finished) = startThreads(count * 2) { index, stop in
            guard let connection = try? BenchConnection(path: socketPath) else { return }
            if index < count, (try? connection.handshake(clientName: "taskshed-bench attack half-frame")) == nil {
                return
            }
            let length = UInt32(maxFrame)
            var header: [UInt8] = withUnsafeBytes(of: length.bigEndian) { Array($0) }
            header += [0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]
            var sent = (try? connection.send(bytes: header)) != nil
            let chunk = [UInt8](repeating: 0x41, count: 1 << 20)
            var total = 0
            while sent && total + chunk.count <= maxFrame - (4 << 20) && !stop.isRaised {
                sent = (try? connection.send(bytes: chunk)) != nil
                total += chunk.count
            }
            if !sent { closed.add(1) }
            while !stop.isRaised { usleep(10_000) }
            withExtendedLifetime(connection) {}
        }
        return Attack(stop: stop, threads: threads, finished: finished,
                      report: { "\(count * 2) connections, \(closed.count) closed by the daemon while sending" },
                      cleanUp: {})
    }
}
