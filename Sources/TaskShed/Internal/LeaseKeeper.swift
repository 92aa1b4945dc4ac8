import Foundation
import Logging
import Synchronization
import TaskShedProtocol

/// Keeps the leases of running callbacks alive: TOUCHes each lease every time a third of what is left of it has
/// passed, for as long as its callback runs.
///
/// One long-lived task serves every lease of a worker, so starting a callback costs a dictionary insert under a
/// lock instead of a task of its own (creating and scheduling a task per delivery sat on the path from the
/// socket to the callback). While no lease is registered the task sleeps in steps of a sixth of the last lease
/// length, so a new lease, due for a TOUCH after a third of its length, never needs to wake it early; a lease
/// that is due sooner than the planned wake-up signals it.
///
/// - Important: Thread-safe. The task holds the keeper weakly between wake-ups and ends at `stop()` or when the
///   keeper is gone.
final class LeaseKeeper: Sendable {
    private struct Entry {
        let lease: LeaseRef
        let callback: String
        let connection: Connection
        var touchAt: Int64
        /// A TOUCH is on its way: the entry is not due again until its reply sets the next `touchAt`.
        var inFlight = false
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        /// When the task wakes up next (µs since the epoch); `nil` while it is awake or not started.
        var plannedWake: Int64?
        var started = false
        var stopped = false
        /// Sleep while no lease is registered: a sixth of the last lease length.
        var idleStepMicros: Int64 = 5_000_000
    }

    private let state = Mutex(State())
    private let wake = AsyncSignal()
    /// Lease length asked of TOUCH (`nil`: the subscription's or the daemon's default).
    private let extendMicros: Int64?
    private let logger: Logger

    init(extendMicros: Int64?, logger: Logger) {
        self.extendMicros = extendMicros
        self.logger = logger
    }

    /// Starts keeping a lease alive (the first TOUCH after a third of what is left of it).
    /// - Parameters:
    ///   - token: The runner's token for the running task; `unregister` takes the same.
    ///   - lease: The lease to extend.
    ///   - callback: The callback name, for log messages.
    ///   - deadline: The lease deadline the daemon gave (µs since the epoch), or `nil` for "a lease length from
    ///     now".
    ///   - connection: The connection that holds the lease.
    func register(
        _ token: UInt64, lease: LeaseRef, callback: String, deadline: Int64?, on connection: Connection
    ) {
        let now = Date().micros
        let length = extendMicros ?? connection.defaultLeaseMicros
        let touchAt = LeaseKeeper.touchTime(deadline: deadline ?? now + length, now: now)
        let (start, signal) = state.withLock { state -> (Bool, Bool) in
            guard !state.stopped else { return (false, false) }
            state.entries[token] = Entry(lease: lease, callback: callback, connection: connection, touchAt: touchAt)
            state.idleStepMicros = max(length / 6, 1_000)
            if !state.started {
                state.started = true
                return (true, false)
            }
            if let planned = state.plannedWake, touchAt < planned { return (false, true) }
            return (false, false)
        }
        if start {
            Task { [weak self] in
                // The keeper is held only inside touchDueLeases, never across the wait.
                while let next = self?.touchDueLeases() {
                    await next.signal.wait(timeout: next.timeout)
                }
            }
        }
        if signal { wake.signal() }
    }

    /// Stops keeping a lease alive (its callback ended); a TOUCH already sent is ignored when it returns.
    func unregister(_ token: UInt64) {
        state.withLock { _ = $0.entries.removeValue(forKey: token) }
    }

    /// Ends the task (at worker shutdown).
    func stop() {
        state.withLock { state in
            state.stopped = true
            state.entries.removeAll()
        }
        wake.signal()
    }

    /// A third of what is left of the lease from now, at least a millisecond.
    private static func touchTime(deadline: Int64, now: Int64) -> Int64 {
        now + max((deadline - now) / 3, 1_000)
    }

    /// Sends the TOUCHes that are due.
    /// - Returns: What to wait on and for how long, or `nil` once stopped.
    private func touchDueLeases() -> (signal: AsyncSignal, timeout: Duration)? {
        let now = Date().micros
        let plan = state.withLock { state -> (due: [(UInt64, Entry)], wakeAt: Int64)? in
            guard !state.stopped else { return nil }
            var due: [(UInt64, Entry)] = []
            var next: Int64?
            for (token, entry) in state.entries where !entry.inFlight {
                if entry.touchAt <= now {
                    state.entries[token]?.inFlight = true
                    due.append((token, entry))
                } else {
                    next = min(next ?? entry.touchAt, entry.touchAt)
                }
            }
            let wakeAt = next ?? now + state.idleStepMicros
            state.plannedWake = wakeAt
            return (due, wakeAt)
        }
        guard let plan else { return nil }
        for (token, entry) in plan.due {
            Task { await touch(token, entry) }
        }
        return (wake, .microseconds(max(plan.wakeAt - now, 0)))
    }

    private func touch(_ token: UInt64, _ entry: Entry) async {
        let outcome: Result<Message, any Error>
        do {
            outcome = .success(try await entry.connection.request(.touch(Touch(lease: entry.lease, extendMicros: extendMicros))))
        } catch {
            outcome = .failure(error)
        }
        let now = Date().micros
        var problem: String?
        let signal = state.withLock { state -> Bool in
            // The callback ended meanwhile: whatever the reply says no longer matters.
            guard state.entries[token] != nil else { return false }
            switch outcome {
            case .success(.leaseExtended(let newDeadline)):
                let touchAt = LeaseKeeper.touchTime(deadline: newDeadline, now: now)
                state.entries[token]?.touchAt = touchAt
                state.entries[token]?.inFlight = false
                if let planned = state.plannedWake, touchAt < planned { return true }
                return false
            case .success(let reply):
                problem = "the daemon answered TOUCH with \(reply.type)"
            case .failure(let error):
                problem = "cannot extend the lease of a running task (it may be delivered again): \(error)"
            }
            // As before a keeper existed: a lease that cannot be extended is not tried again.
            state.entries[token] = nil
            return false
        }
        if let problem {
            logger.warning(
                "\(problem)",
                metadata: [
                    "taskshed.task.id": "\(entry.lease.id)", "taskshed.callback": "\(entry.callback)",
                    "taskshed.attempt": "\(entry.lease.attempt)",
                ])
        } else {
            logger.trace("lease extended", metadata: ["taskshed.task.id": "\(entry.lease.id)"])
        }
        if signal { wake.signal() }
    }
}
