import Logging
import TaskShedEventLoop
import TaskShedProtocol
import TaskShedStore

/// A read answered on a thread-pool thread (see `Server.readsInBackground(_:)`), waiting for its turn or
/// running.
struct BackgroundRead {
    let session: ClientSession
    let requestID: UInt32
    let message: Message
    /// When its connection's turn came: the store part is read as of this instant.
    let now: Int64
    /// `STATS` and `DAEMONS`: the server's part, taken when its connection's turn came.
    let server: ServerStatistics?
}

/// The server's own fields of a `STATS` or `DAEMONS` reply (`Server.serverStatistics(for:)`).
struct ServerStatistics: Sendable {
    /// This daemon's `DAEMONS` entry, for a datastore that keeps no registry (LMDB).
    var daemon: DaemonInfo
    var startedAt: Int64
    var connections: UInt32
    var lag: LagSummary
    /// Subscribed connections per callback.
    var workers: [String: UInt32]
}

/// The bounds a store read answers within (`Server.readLimits`).
struct ReadLimits: Sendable {
    /// `max_batch`: a FETCH_TASKS group of more is refused.
    var maxBatch: Int
    /// `max_frame_bytes` as announced to clients: a HISTORY reply is cut to fit.
    var maxReplyBytes: Int
}

/// What the store answered to a read (`Server.storeRead(_:store:now:limits:)`). Computed on a pool thread or on the
/// loop thread; turned into the reply on the loop thread (`Server.readReply(_:server:now:)`).
enum StoreReadResult: Sendable {
    /// `STATS`: the store's part (the server fills in its own fields).
    case stats(Stats)
    /// `DAEMONS`.
    case daemons([DaemonInfo])
    /// `FETCH_TASKS`.
    case tasks([TaskRecord])
    /// `LIST_TASKS`.
    case page(TaskPage)
    /// `GET_HISTORY`.
    case history(HistoryPage)
    /// The error reply.
    case failed(ErrorReply)
}

/// The result of a background read, handed from the pool thread to the loop thread (libuv orders the two: the
/// work happens before its completion runs).
private final class StoreReadBox: @unchecked Sendable {
    var result: StoreReadResult?
}

extension Server {
    /// Most reads on the thread pool at once. libuv's pool has 4 threads, shared with the store job, the flush
    /// and the heap trim: one read at a time never keeps a write from a thread.
    static let maxBackgroundReads = 1

    /// Whether `message` is a read whose cost grows with the store (`STATS` walks every due task, `LIST_TASKS`
    /// and `FETCH_TASKS` decode up to a page or a batch of records): it is answered on the thread pool, so that
    /// the loop keeps pushing due tasks meanwhile (a `STATS` beside 1M due tasks took ~150 ms). `PING` reads one
    /// key per callback and stays on the loop.
    static func readsInBackground(_ message: Message) -> Bool {
        switch message {
        case .getStats, .getDaemons, .fetchTasks, .listTasks, .getHistory: return true
        default: return false
        }
    }

    /// Answers `message` on the thread pool, in turn with the other background reads. The connection's later
    /// requests wait for its reply (`queuedRequests`, `ClientSession.readInFlight`), so that a write sent after
    /// it never shows in it, and everything the connection sent before it is in it (the caller starts it only
    /// once those were applied).
    func startBackgroundRead(_ message: Message, requestID: UInt32, on session: ClientSession) {
        session.queuedRequests += 1
        session.readInFlight = true
        waitingReads.append(BackgroundRead(session: session, requestID: requestID, message: message,
                                           now: WallClock.nowMicros(), server: serverStatistics(for: message)))
        startWaitingReads()
    }

    /// Starts waiting reads while fewer than `maxBackgroundReads` run (none once shutting down: `finishShutdown`
    /// answers the rest on the loop thread).
    func startWaitingReads() {
        while readsInFlight < Self.maxBackgroundReads, !isShuttingDown, !waitingReads.isEmpty, let loop {
            let read = waitingReads.removeFirst()
            if read.session.isClosing {
                // Its reply would not be sent: do not read for it.
                finishRead(read, .failed(ErrorReply(code: .shuttingDown, message: "the connection is closing")))
                continue
            }
            readsInFlight += 1
            guard let store else {
                backgroundReadFinished(read, .failed(ErrorReply(code: .shuttingDown, message: "the store is closed")))
                continue
            }
            let message = read.message
            let now = read.now
            let serverPart = read.server
            let limits = readLimits
            let box = StoreReadBox()
            do {
                try BackgroundWork.run(on: loop, {
                    box.result = Self.storeRead(message, store: store, server: serverPart, now: now, limits: limits)
                }, completion: { [unowned self] in self.backgroundReadFinished(read, box.result!) })
            } catch {
                logger.warning("no thread-pool thread for a read; answering it on the loop thread: \(error)")
                backgroundReadFinished(read, Self.storeRead(message, store: store, server: read.server, now: now,
                                                            limits: limits))
            }
        }
    }

    /// A background read ended (loop thread): replies, lets the connection's queued requests go (the
    /// end-of-iteration store job takes them), and starts the next waiting read.
    func backgroundReadFinished(_ read: BackgroundRead, _ result: StoreReadResult) {
        readsInFlight -= 1
        finishRead(read, result)
        if isShuttingDown {
            finishShutdown()
        } else {
            startWaitingReads()
        }
    }

    /// Answers the waiting reads on the loop thread (shutdown: everything read so far is answered before the
    /// goodbye). The caller made sure that none runs.
    func answerWaitingReadsNow() {
        while !waitingReads.isEmpty {
            let read = waitingReads.removeFirst()
            let result: StoreReadResult
            if let store, !read.session.isClosing {
                result = Self.storeRead(read.message, store: store, server: read.server, now: read.now,
                                        limits: readLimits)
            } else {
                result = .failed(ErrorReply(code: .shuttingDown, message: "the store is closed"))
            }
            finishRead(read, result)
        }
    }

    private func finishRead(_ read: BackgroundRead, _ result: StoreReadResult) {
        read.session.readInFlight = false
        read.session.queuedRequests -= 1
        guard !read.session.isClosing else { return }
        let reply = Self.readReply(result, server: read.server, now: read.now)
        send(Frame(requestID: read.requestID, message: reply), to: read.session)
    }

    /// The store's answer to `STATS`, `DAEMONS`, `FETCH_TASKS`, `LIST_TASKS` or `GET_HISTORY` (any thread: it
    /// touches only `store`). `limits.maxBatch` bounds a FETCH_TASKS group (PROTOCOL.md 6.5: a larger one is
    /// `INVALID_ARGUMENT`); a HISTORY page is cut to `limits.maxReplyBytes` (6.18).
    static func storeRead(_ message: Message, store: ServerStore, server: ServerStatistics?, now: Int64,
                          limits: ReadLimits) -> StoreReadResult
    {
        do {
            switch message {
            case .getStats:
                return .stats(storeStatistics(try store.stats(now: now), now: now))
            case .getDaemons:
                guard let server else { preconditionFailure("a DAEMONS read without the server's part") }
                return .daemons(try store.daemons(local: server.daemon, now: now))
            case .fetchTasks(let selector):
                return .tasks(try store.fetch(selector, maxGroupTasks: limits.maxBatch))
            case .listTasks(let request):
                return .page(try store.list(filter: request.filter, limit: Int(request.limit), cursor: request.cursor,
                                            now: now))
            case .getHistory(let query):
                return .history(fitting(try store.history(query, now: now), into: limits.maxReplyBytes))
            default:
                return .failed(ErrorReply(code: .unknownMessageType, message: "\(message.type.name) is not a store read"))
            }
        } catch {
            return .failed(RequestError(error).reply)
        }
    }

    /// `page` cut to the entries that fit one HISTORY frame of at most `maxReplyBytes`, and at least one (an
    /// entry is far smaller than the smallest frame limit), so that a client paging with `next_before` always
    /// moves on. A cut page points its `next_before` at its last entry: older matches exist.
    static func fitting(_ page: HistoryPage, into maxReplyBytes: Int) -> HistoryPage {
        // The frame's length counts type, flags and request id (8 bytes), the list's count (4) and
        // `next_before` (an option tag and a u64).
        var room = maxReplyBytes - ProtocolLimits.headerBytesAfterLength - 4 - 9
        var kept = 0
        var writer = ByteWriter(capacity: 512)
        for run in page.runs {
            writer.bytes.removeAll(keepingCapacity: true)
            run.encode(to: &writer)
            room -= writer.count
            if room < 0 && kept > 0 { break }
            kept += 1
        }
        guard kept < page.runs.count else { return page }
        let runs = Array(page.runs.prefix(kept))
        return HistoryPage(runs: runs, nextBefore: runs.last?.seq)
    }

    /// The reply to a store read: for `STATS`, the store's part with the server's own fields (`server`:
    /// connections, workers per callback, lag).
    static func readReply(_ result: StoreReadResult, server: ServerStatistics?, now: Int64) -> Message {
        switch result {
        case .stats(let storePart):
            guard let server else { preconditionFailure("a STATS read without the server's part") }
            return .stats(statistics(storePart, server: server, now: now))
        case .daemons(let daemons): return .daemons(daemons)
        case .tasks(let tasks): return .tasks(tasks)
        case .page(let page): return .taskPage(page)
        case .history(let page): return .history(page)
        case .failed(let reply): return .error(reply)
        }
    }
}
