import TaskShedProtocol

/// The next run of a recurring task after the occurrence at `runAt` ran, computed when the run is
/// acknowledged (see LAYOUT.md, "Recurring tasks").
///
/// - `next = runAt + interval`;
/// - with `coalesce` and `next <= now` (the task fell behind), the first occurrence strictly after `now`:
///   `runAt + k * interval` for the smallest such `k`;
/// - without `coalesce`, `next` even when it is in the past (one run per missed interval).
/// Saturates at `Int64.max` instead of overflowing.
package func nextRun(runAt: Int64, interval: Int64, coalesce: Bool, now: Int64) -> Int64 {
    precondition(interval > 0, "interval must be positive")
    let (next, overflow) = runAt.addingReportingOverflow(interval)
    if overflow { return .max }
    guard coalesce, next <= now else { return next }
    // k = floor((now - runAt) / interval) + 1 gives the first occurrence > now.
    let (behind, o1) = now.subtractingReportingOverflow(runAt)
    if o1 { return .max }
    let k = behind / interval + 1
    let (step, o2) = k.multipliedReportingOverflow(by: interval)
    if o2 { return .max }
    let (result, o3) = runAt.addingReportingOverflow(step)
    return o3 ? .max : result
}

/// Cuts `text` to at most `limit` UTF-8 bytes without splitting a character's encoding.
package func truncateUTF8(_ text: String, limit: Int) -> String {
    let utf8 = Array(text.utf8)
    guard utf8.count > limit else { return text }
    var end = limit
    // Back up over continuation bytes (10xxxxxx) so the cut falls on a scalar boundary.
    while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }
    return String(decoding: utf8[..<end], as: UTF8.self)
}
