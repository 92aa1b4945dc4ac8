import Synchronization

/// Tells a store job on the thread pool whether write requests are waiting on the loop for the next job.
///
/// A job that committed a durable change flushes the meta page itself when nothing waits (one client adding
/// one task at a time): its replies then go out from the job's completion, without a second trip through the
/// pool for the flush. When writes wait, the next job's commit flushes that meta page anyway (group commit),
/// and the job leaves it to that commit rather than making the waiting writes wait for an extra flush.
///
/// A hint, not a lock: a write that arrives just after the job looked waits for one meta-page flush, and a
/// stale "waiting" only sends the replies the usual way (`Server.repliesNeedFlush`).
final class WriteArrivals: Sendable {
    private let waiting = Atomic<Bool>(false)

    /// Whether write requests wait for the next store job.
    var areWaiting: Bool { waiting.load(ordering: .acquiring) }

    /// Records (loop thread) whether write requests wait for the next store job.
    func set(_ value: Bool) {
        waiting.store(value, ordering: .releasing)
    }
}
