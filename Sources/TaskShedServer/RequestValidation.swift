import TaskShedEventLoop
import TaskShedProtocol
import TaskShedStore

/// A request the server refuses, with the protocol error to reply.
struct RequestError: Error {
    /// The reply.
    var reply: ErrorReply

    init(_ code: ErrorCode, field: String? = nil, _ message: String) {
        reply = ErrorReply(code: code, field: field, message: message)
    }

    static func invalid(_ field: String, _ message: String) -> RequestError {
        RequestError(.invalidArgument, field: field, message)
    }
}

/// Field checks the codec does not make (it only checks that bytes are well formed): lengths, counts, ranges,
/// JSON kwargs. Each failure names the field with the specification's path (`tasks[3].callback`).
struct RequestValidation: Sendable {
    /// 9999-12-31T23:59:59.999999Z, the last instant a request may carry (PROTOCOL.md, Limits).
    static let maxInstant: Int64 = 253_402_300_799_999_999
    /// 100 years, the longest interval.
    static let maxIntervalMicros: Int64 = 3_153_600_000_000_000
    /// Longest delivery lead a SUBSCRIBE_AHEAD may ask for (1 s, the longest configurable dispatch lead).
    static let maxAheadMicros: Int64 = 1_000_000
    /// Longest LIST_TASKS cursor.
    static let maxCursorBytes = 1024

    let maxBatch: UInt32
    let maxKwargsBytes: UInt32

    /// Field checks of a request before it is read or queued (any thread: a large request is checked where it
    /// was decoded, off the loop).
    func request(_ message: Message) throws(RequestError) {
        switch message {
        case .hello:
            throw RequestError(.invalidArgument, field: nil, "HELLO was already accepted on this connection")
        case .addTasks(let request): try self.addTasks(request)
        case .fetchTasks(let selector): try self.selector(selector, "selector", allowAll: false)
        case .listTasks(let request): try self.list(request)
        case .pauseTasks(let selector), .resumeTasks(let selector), .removeTasks(let selector),
             .retryDead(let selector), .purgeDead(let selector):
            try self.selector(selector, "selector", allowAll: true)
        case .updateRunTimes(let updates): try self.updates(updates)
        case .getHistory(let query): try self.history(query)
        case .subscribe(let request): try self.subscribe(request)
        case .subscribeAhead(let request, let ahead):
            try self.subscribe(request)
            if ahead < 1 || ahead > Self.maxAheadMicros {
                throw .invalid("ahead_us", "must be between 1 µs and 1 s (1 … \(Self.maxAheadMicros) µs), got \(ahead)")
            }
        case .claim(let request): try self.claim(request)
        case .ack(let lease), .release(let lease): try self.lease(lease, "")
        case .fail(let request): try self.lease(request.lease, "lease")
        case .touch(let request):
            try self.lease(request.lease, "lease")
            try self.leaseDuration(request.extendMicros, "extend_us")
        default: break
        }
    }

    func name(_ value: String, _ field: String) throws(RequestError) {
        let length = value.utf8.count
        if length == 0 { throw .invalid(field, "must not be empty") }
        if length > ProtocolLimits.maxNameBytes {
            throw .invalid(field, "is \(length) bytes; at most \(ProtocolLimits.maxNameBytes) are allowed")
        }
    }

    func count(_ count: Int, _ field: String) throws(RequestError) {
        if count == 0 { throw .invalid(field, "must not be empty") }
        if count > Int(maxBatch) { throw .invalid(field, "has \(count) entries; at most \(maxBatch) per request") }
    }

    func callbacks(_ names: [String], _ field: String) throws(RequestError) {
        try count(names.count, field)
        var seen = Set<String>()
        for (index, callback) in names.enumerated() {
            try name(callback, "\(field)[\(index)]")
            if !seen.insert(callback).inserted { throw .invalid("\(field)[\(index)]", "duplicate callback '\(callback)'") }
        }
    }

    /// A lease length: 1 ms … 24 h (PROTOCOL.md, SUBSCRIBE/CLAIM/TOUCH).
    func leaseDuration(_ micros: Int64?, _ field: String) throws(RequestError) {
        guard let micros else { return }
        if micros < 1_000 || micros > 86_400_000_000 {
            throw .invalid(field, "must be between 1 ms and 24 h (1000 … 86400000000 µs), got \(micros)")
        }
    }

    func selector(_ selector: TaskSelector, _ field: String, allowAll: Bool) throws(RequestError) {
        switch selector {
        case .ids(let ids):
            try count(ids.count, "\(field).ids")
            for (index, id) in ids.enumerated() { try name(id, "\(field).ids[\(index)]") }
        case .group(let group):
            try name(group, "\(field).group")
        case .all:
            if !allowAll {
                throw .invalid(field + ".kind", "ALL is not accepted here; use LIST_TASKS with pagination")
            }
        }
    }

    func addTasks(_ request: AddTasks) throws(RequestError) {
        try count(request.tasks.count, "tasks")
        var ids = Set<String>()
        for (index, task) in request.tasks.enumerated() {
            let prefix = "tasks[\(index)]"
            if let id = task.id {
                try name(id, prefix + ".id")
                if !ids.insert(id).inserted { throw .invalid(prefix + ".id", "duplicate id '\(id)' in the batch") }
            }
            try name(task.callback, prefix + ".callback")
            if let group = task.group { try name(group, prefix + ".group") }
            if case .interval(let micros) = task.schedule, micros <= 0 || micros > Self.maxIntervalMicros {
                throw .invalid(prefix + ".schedule",
                               "the interval must be 1 … \(Self.maxIntervalMicros) µs (100 years), got \(micros)")
            }
            if let runAt = task.runAt, runAt < 0 || runAt > Self.maxInstant {
                throw .invalid(prefix + ".run_at", "must be between 1970 and 9999, got \(runAt)")
            }
            if case .calendar(let calendar) = task.schedule {
                // The rule is parsed here, so that an invalid one is refused at the add and never at run time.
                if let problem = CalendarTiming.problem(with: calendar, taskID: task.id, notBefore: task.runAt ?? WallClock.nowMicros()) {
                    throw .invalid(prefix + ".schedule", problem)
                }
                if !task.coalesce {
                    throw .invalid(prefix + ".coalesce",
                                   "coalesce applies to interval schedules; a calendar schedule says how it catches up "
                                       + "in its catch_up policy, so coalesce must be true")
                }
            }
            if task.kwargs.count > Int(maxKwargsBytes) {
                throw .invalid(prefix + ".kwargs", "is \(task.kwargs.count) bytes; at most \(maxKwargsBytes) are allowed")
            }
            if !task.kwargs.isEmpty, let problem = JSONObjectValidator.problem(in: task.kwargs) {
                throw .invalid(prefix + ".kwargs", problem)
            }
            if task.maxAttempts > 1000 {
                throw .invalid(prefix + ".max_attempts", "must be at most 1000 (0 means the default), got \(task.maxAttempts)")
            }
        }
    }

    func list(_ request: ListTasks) throws(RequestError) {
        if request.limit == 0 || request.limit > maxBatch {
            throw .invalid("limit", "must be between 1 and \(maxBatch), got \(request.limit)")
        }
        if let cursor = request.cursor, cursor.count > Self.maxCursorBytes {
            throw .invalid("cursor", "is \(cursor.count) bytes; a cursor from TASK_PAGE is at most \(Self.maxCursorBytes)")
        }
        if let group = request.filter.group { try name(group, "filter.group") }
        if let callback = request.filter.callback { try name(callback, "filter.callback") }
        try instant(request.filter.dueAfter, "filter.due_after")
        try instant(request.filter.dueBefore, "filter.due_before")
    }

    func history(_ query: HistoryQuery) throws(RequestError) {
        if let taskID = query.taskID { try name(taskID, "task_id") }
        if let callback = query.callback { try name(callback, "callback") }
        try instant(query.since, "since")
        if query.limit < 1 || query.limit > maxBatch {
            throw .invalid("limit", "must be between 1 and \(maxBatch), got \(query.limit)")
        }
    }

    /// An instant in a request: 1970 … 9999 (PROTOCOL.md section 3, "Out-of-range times").
    func instant(_ micros: Int64?, _ field: String) throws(RequestError) {
        guard let micros, micros < 0 || micros > Self.maxInstant else { return }
        throw .invalid(field, "must be between 1970 and 9999 (0 … \(Self.maxInstant) µs), got \(micros)")
    }

    func updates(_ updates: [RunTimeUpdate]) throws(RequestError) {
        try count(updates.count, "updates")
        for (index, update) in updates.enumerated() {
            try name(update.id, "updates[\(index)].id")
            if update.runAt < 0 || update.runAt > Self.maxInstant {
                throw .invalid("updates[\(index)].run_at", "must be between 1970 and 9999, got \(update.runAt)")
            }
        }
    }

    func subscribe(_ request: Subscribe) throws(RequestError) {
        try callbacks(request.callbacks, "callbacks")
        if request.concurrency == 0 { throw .invalid("concurrency", "must be at least 1") }
        if request.concurrency > maxBatch { throw .invalid("concurrency", "must be at most \(maxBatch)") }
        try leaseDuration(request.leaseMicros, "lease_us")
    }

    func claim(_ request: Claim) throws(RequestError) {
        try callbacks(request.callbacks, "callbacks")
        if request.max == 0 || request.max > maxBatch {
            throw .invalid("max", "must be between 1 and \(maxBatch), got \(request.max)")
        }
        try leaseDuration(request.leaseMicros, "lease_us")
    }

    /// A lease reference; `prefix` is empty where the reference is the whole payload (ACK, RELEASE).
    func lease(_ lease: LeaseRef, _ prefix: String) throws(RequestError) {
        try name(lease.id, prefix.isEmpty ? "id" : prefix + ".id")
        if lease.attempt == 0 {
            throw .invalid(prefix.isEmpty ? "attempt" : prefix + ".attempt", "must be the delivered attempt (1 or more)")
        }
    }
}
