import Synchronization

/// A wake-up flag that async code can wait on with a timeout: `signal()` wakes every current waiter, or, when
/// nobody waits, is remembered for the next `wait` (signals coalesce).
///
/// Used for "a worker slot became free", "the last callback finished" and "stop now", where a waiter only needs
/// to know that something changed and then re-reads the state it cares about.
final class AsyncSignal: Sendable {
    private struct State {
        var pending = false
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits that have begun and not yet returned.
        var active: Set<UInt64> = []
        /// Active waits whose timeout or cancellation came before they registered their continuation.
        var woken: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// Wakes every waiter, or marks the signal pending when there is none.
    func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.waiters.isEmpty {
                state.pending = true
                return []
            }
            let all = Array(state.waiters.values)
            state.waiters.removeAll()
            return all
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when signalled (immediately if a signal is pending, consuming it), after `timeout`, or when the
    /// calling task is cancelled.
    /// - Parameter timeout: The longest wait; `nil` waits for a signal or cancellation only.
    func wait(timeout: Duration?) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            state.active.insert(state.nextWaiter)
            return state.nextWaiter
        }
        let timer: Task<Void, Never>? = timeout.map { timeout in
            Task { [weak self] in
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return
                }
                self?.wake(id)
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.woken.contains(id) || Task.isCancelled {
                        return true
                    }
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            wake(id)
        }
        timer?.cancel()
        state.withLock { state in
            state.active.remove(id)
            state.woken.remove(id)
        }
    }

    private func wake(_ id: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            if state.active.contains(id) { state.woken.insert(id) }
            return nil
        }
        waiter?.resume()
    }
}
