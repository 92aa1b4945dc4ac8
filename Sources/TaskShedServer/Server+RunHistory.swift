import Logging
import TaskShedProtocol
import TaskShedStore

extension Configuration {
    /// The run history's bounds (`--history-per-task`, `--history-max-runs`, `--history-max-age`).
    var historyLimits: HistoryLimits {
        HistoryLimits(perTask: historyPerTask, maxRuns: historyMaxRuns, maxAgeMicros: historyMaxAgeMicros)
    }
}

extension Server {
    /// The bounds of store reads: `max_batch` and the `max_frame_bytes` announced to clients.
    var readLimits: ReadLimits {
        ReadLimits(maxBatch: Int(configuration.maxBatch), maxReplyBytes: Int(configuration.maxFrameBytes))
    }

    /// A committed job's ended deliveries (loop thread): reports a history that could not be recorded, and
    /// forgets the workers of closed connections whose leases the job ended.
    func runsEnded(_ result: StoreJobResult, releasing holders: [UInt64]) {
        if let failure = result.historyFailure {
            logger.warning("run history: \(result.endedRuns.count) entries not recorded (the runs themselves were)",
                           metadata: ["error": "\(failure)"])
        }
        for holder in holders where sessions[holder] == nil { runWorkers[holder] = nil }
    }
}
