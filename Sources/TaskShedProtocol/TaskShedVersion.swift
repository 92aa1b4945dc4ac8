/// The one version of TaskShed's executables and library: `taskshedd --version`, `taskshedctl --version`,
/// `HELLO_OK`'s and `STATS`' `server_version`, the library's `TaskShedVersion.current`. Changes are listed in
/// `CHANGELOG.md`; the wire protocol has its own version numbers (`ProtocolLimits.versions`).
public enum TaskShedVersion {
    /// The version, as `MAJOR.MINOR.PATCH`.
    public static let current = "0.1.0"
}
