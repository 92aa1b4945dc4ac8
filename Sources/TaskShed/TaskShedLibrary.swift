import TaskShedProtocol

/// Facts about this library.
public enum TaskShedLibrary {
    /// TaskShed's version, the same as `taskshedd --version` and `taskshedctl --version` of the same release.
    public static let version = TaskShedVersion.current
}
