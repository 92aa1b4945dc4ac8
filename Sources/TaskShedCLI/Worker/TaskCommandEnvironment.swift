/// The environment variables a command gets for a task (documented in README-cli.md).
///
/// | variable | value |
/// |---|---|
/// | `TASKSHED_TASK_ID` | the task id |
/// | `TASKSHED_CALLBACK` | the callback name |
/// | `TASKSHED_ATTEMPT` | the delivery attempt, 1 for the first |
/// | `TASKSHED_KWARGS` | the kwargs JSON object (also on standard input) |
/// | `TASKSHED_RUN_AT` | the scheduled time, RFC 3339 UTC with microseconds |
/// | `TASKSHED_RUN_AT_US` | the scheduled time in microseconds since the epoch |
public enum TaskCommandEnvironment {
    /// The variables for one delivery.
    /// - Parameters:
    ///   - taskID: The task id.
    ///   - callback: The callback name.
    ///   - attempt: The delivery attempt (1 for the first).
    ///   - kwargs: The kwargs JSON text.
    ///   - runAtMicros: The occurrence's scheduled time.
    /// - Returns: The `TASKSHED_*` variables.
    public static func variables(
        taskID: String, callback: String, attempt: UInt32, kwargs: String, runAtMicros: Int64
    ) -> [String: String] {
        [
            "TASKSHED_TASK_ID": taskID,
            "TASKSHED_CALLBACK": callback,
            "TASKSHED_ATTEMPT": String(attempt),
            "TASKSHED_KWARGS": kwargs,
            "TASKSHED_RUN_AT": TimeFormatting.rfc3339UTC(micros: runAtMicros),
            "TASKSHED_RUN_AT_US": String(runAtMicros),
        ]
    }

    /// A base environment with the task's variables laid over it (task variables win).
    /// - Parameters:
    ///   - base: Usually the worker's own environment.
    ///   - task: The output of `variables(...)`.
    /// - Returns: The merged environment.
    public static func merged(base: [String: String], task: [String: String]) -> [String: String] {
        base.merging(task) { _, new in new }
    }
}
