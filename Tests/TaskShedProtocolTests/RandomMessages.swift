import TaskShedProtocol

/// Generates random messages of every case from a seeded PRNG, including edge values (empty and maximum-length
/// strings, non-ASCII text, extreme integers, empty and long lists).
struct MessageGenerator {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func u16() -> UInt16 { pick([0, 1, .max, UInt16.random(in: 0...UInt16.max, using: &rng)]) }
    mutating func u32() -> UInt32 { pick([0, 1, .max, UInt32.random(in: 0...UInt32.max, using: &rng)]) }
    mutating func u64() -> UInt64 { pick([0, 1, .max, UInt64.random(in: 0...UInt64.max, using: &rng)]) }
    mutating func i64() -> Int64 {
        pick([0, -1, .min, .max, t0, Int64.random(in: Int64.min...Int64.max, using: &rng)])
    }
    mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }
    mutating func optional<T>(_ make: (inout MessageGenerator) -> T) -> T? { bool() ? make(&self) : nil }

    mutating func string() -> String {
        switch int(0...9) {
        case 0: return ""
        case 1: return String(repeating: "x", count: 65_535)
        case 2: return "é日本🚀\u{0}"
        default:
            let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.:/ äß€😀")
            return String((0..<int(1...40)).map { _ in pick(alphabet) })
        }
    }

    mutating func bytes() -> [UInt8] {
        (0..<pick([0, 2, int(0...300)])).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    mutating func list<T>(_ make: (inout MessageGenerator) -> T) -> [T] {
        (0..<pick([0, 1, int(2...12)])).map { _ in make(&self) }
    }

    mutating func schedule() -> Schedule { bool() ? .once : .interval(micros: i64()) }

    mutating func selector() -> TaskSelector {
        switch int(0...2) {
        case 0: return .ids(list { $0.string() })
        case 1: return .group(string())
        default: return .all
        }
    }

    mutating func spec() -> TaskSpec {
        TaskSpec(
            id: optional { $0.string() }, callback: string(), runAt: optional { $0.i64() }, schedule: schedule(),
            kwargs: bytes(), group: optional { $0.string() }, paused: bool(), coalesce: bool(), maxAttempts: u32())
    }

    mutating func record() -> TaskRecord {
        TaskRecord(
            id: string(), callback: string(), runAt: i64(), schedule: schedule(), kwargs: bytes(),
            group: optional { $0.string() }, paused: bool(), pausedAt: optional { $0.i64() }, coalesce: bool(),
            state: pick(TaskState.allCases), attempt: u32(), maxAttempts: u32(), leaseDeadline: optional { $0.i64() },
            lastError: optional { $0.string() }, createdAt: i64(), lastRunAt: optional { $0.i64() },
            lastFailureAt: optional { $0.i64() })
    }

    mutating func runEntry() -> RunEntry {
        RunEntry(
            seq: u64(), taskID: string(), callback: string(), attempt: u32(), scheduledAt: i64(),
            deliveredAt: optional { $0.i64() }, finishedAt: i64(), outcome: pick(RunOutcome.allCases),
            then: pick(RunFollowUp.allCases), error: optional { $0.string() }, workerName: string(), workerPID: u32(),
            workerUID: u32(), daemon: string())
    }

    mutating func lease() -> LeaseRef { LeaseRef(id: string(), attempt: u32()) }

    mutating func message(_ type: MessageType) -> Message {
        switch type {
        case .hello: return .hello(Hello(minVersion: u16(), maxVersion: u16(), clientName: string()))
        case .ping: return .ping
        case .addTasks: return .addTasks(AddTasks(onConflict: pick(ConflictPolicy.allCases), tasks: list { $0.spec() }))
        case .fetchTasks: return .fetchTasks(selector())
        case .listTasks:
            return .listTasks(
                ListTasks(
                    filter: TaskFilter(
                        group: optional { $0.string() }, state: optional { $0.pick(StateFilter.allCases) },
                        callback: optional { $0.string() }, dueAfter: optional { $0.i64() },
                        dueBefore: optional { $0.i64() }),
                    limit: u32(), cursor: optional { $0.bytes() }))
        case .pauseTasks: return .pauseTasks(selector())
        case .resumeTasks: return .resumeTasks(selector())
        case .removeTasks: return .removeTasks(selector())
        case .updateRunTimes: return .updateRunTimes(list { RunTimeUpdate(id: $0.string(), runAt: $0.i64()) })
        case .retryDead: return .retryDead(selector())
        case .purgeDead: return .purgeDead(selector())
        case .getStats: return .getStats
        case .getDaemons: return .getDaemons
        case .getHistory:
            return .getHistory(
                HistoryQuery(
                    taskID: optional { $0.string() }, callback: optional { $0.string() }, failedOnly: bool(),
                    since: optional { $0.i64() }, limit: u32(), before: optional { $0.u64() }))
        case .getMetrics: return .getMetrics
        case .subscribe:
            return .subscribe(
                Subscribe(callbacks: list { $0.string() }, concurrency: u32(), leaseMicros: optional { $0.i64() }))
        case .unsubscribe: return .unsubscribe
        case .claim: return .claim(Claim(callbacks: list { $0.string() }, max: u32(), leaseMicros: optional { $0.i64() }))
        case .ack: return .ack(lease())
        case .fail: return .fail(Fail(lease: lease(), error: string(), retry: bool()))
        case .touch: return .touch(Touch(lease: lease(), extendMicros: optional { $0.i64() }))
        case .release: return .release(lease())
        case .subscribeAhead:
            return .subscribeAhead(
                Subscribe(callbacks: list { $0.string() }, concurrency: u32(), leaseMicros: optional { $0.i64() }),
                aheadMicros: i64())
        case .revoke: return .revoke(lease())
        case .helloOK:
            return .helloOK(
                HelloOK(
                    version: u16(), serverName: string(), serverVersion: string(), maxFrameBytes: u32(),
                    maxBatch: u32(), maxKwargsBytes: u32(), defaultLeaseMicros: i64(), connectionID: u64()))
        case .pong: return .pong(Pong(serverTime: i64(), nextWakeup: optional { $0.i64() }))
        case .ok: return .ok
        case .added: return .added(list { AddResult(id: $0.string(), outcome: $0.pick(AddOutcome.allCases)) })
        case .tasks: return .tasks(list { $0.record() })
        case .taskPage: return .taskPage(TaskPage(tasks: list { $0.record() }, nextCursor: optional { $0.bytes() }))
        case .affected: return .affected(u64())
        case .stats:
            return .stats(
                Stats(
                    serverVersion: string(), serverTime: i64(), startedAt: i64(), pending: u64(), due: u64(),
                    paused: u64(), leased: u64(), dead: u64(), waitingForWorker: u64(),
                    nextWakeup: optional { $0.i64() }, connections: u32(),
                    callbacks: list {
                        CallbackStats(
                            callback: $0.string(), scheduled: $0.u64(), due: $0.u64(), leased: $0.u64(),
                            dead: $0.u64(), workers: $0.u32())
                    },
                    storeFileBytes: u64(), storeMapBytes: u64(), storeUsedBytes: u64(),
                    lag: LagSummary(count: u64(), p50: i64(), p90: i64(), p99: i64(), max: i64())))
        case .daemons:
            return .daemons(list {
                DaemonInfo(name: $0.string(), host: $0.string(), pid: $0.u32(), startedAt: $0.i64(),
                           heartbeatAgeMicros: $0.i64(), leased: $0.u64(), isThisDaemon: $0.bool())
            })
        case .history: return .history(HistoryPage(runs: list { $0.runEntry() }, nextBefore: optional { $0.u64() }))
        case .metrics: return .metrics(bytes())
        case .subscribed: return .subscribed(Subscribed(leaseMicros: i64()))
        case .delivery: return .delivery(record())
        case .leaseExtended: return .leaseExtended(deadline: i64())
        case .error:
            return .error(
                ErrorReply(
                    code: ErrorCode(rawValue: u16()), field: optional { $0.string() }, message: string()))
        }
    }

    mutating func frame() -> Frame {
        Frame(requestID: u32(), message: message(pick(MessageType.allCases)))
    }
}
