/// Which tasks a bulk request (fetch, pause, resume, remove, dead-letter retry/purge) applies to.
///
/// On the wire: `kind u8` (0 ids, 1 group, 2 all) followed by `list<string>` ids, or `string` group, or nothing.
public enum TaskSelector: Sendable, Hashable {
    /// The tasks with these ids (unknown ids are skipped, as in the original; the reply counts the affected).
    case ids([String])
    /// Every task of this group.
    case group(String)
    /// Every task (not accepted by fetch: use list with pagination).
    case all
}
