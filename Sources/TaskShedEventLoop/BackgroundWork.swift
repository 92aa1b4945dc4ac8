import CLibUV

/// Runs a blocking job on libuv's thread pool and reports back on the loop thread (`uv_queue_work`).
///
/// The daemon runs its store's write transactions and flushes this way: LMDB flushes the data file inside each
/// commit, which can take milliseconds when the disk is busy, and the loop must keep pushing due tasks
/// meanwhile.
///
/// - Important: `work` runs on a pool thread and must touch only thread-safe state; `completion` runs on the
///   loop thread. The loop does not end while a job is pending.
public enum BackgroundWork {
    /// Queues a job. Corresponds to `uv_queue_work`.
    /// - Parameters:
    ///   - loop: The loop that runs `completion`.
    ///   - work: The blocking job, run on a thread-pool thread.
    ///   - completion: Runs on the loop thread after `work` returned.
    /// - Throws: `UVError` from `uv_queue_work` (the job does not run).
    public static func run(on loop: EventLoop, _ work: @escaping @Sendable () -> Void,
                           completion: @escaping () -> Void) throws(UVError) {
        let job = Unmanaged.passRetained(Job(work: work, completion: completion))
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.pointee.data = job.toOpaque()
        let status = uv_queue_work(loop.loop, request, { request in
            guard let request, let data = request.pointee.data else { return }
            Unmanaged<Job>.fromOpaque(data).takeUnretainedValue().work()
        }, { request, _ in
            // Status is UV_ECANCELED only after uv_cancel, which this module never calls.
            guard let request, let data = request.pointee.data else { return }
            let job = Unmanaged<Job>.fromOpaque(data).takeRetainedValue()
            request.deallocate()
            job.completion()
        })
        if status < 0 {
            job.release()
            request.deallocate()
            throw UVError(code: status, operation: "uv_queue_work")
        }
    }

    /// The closures of one job. `completion` is only touched on the loop thread, `work` only on the pool
    /// thread, and libuv orders the two (work happens-before completion), hence the unchecked conformance.
    private final class Job: @unchecked Sendable {
        let work: @Sendable () -> Void
        let completion: () -> Void

        init(work: @escaping @Sendable () -> Void, completion: @escaping () -> Void) {
            self.work = work
            self.completion = completion
        }
    }
}
