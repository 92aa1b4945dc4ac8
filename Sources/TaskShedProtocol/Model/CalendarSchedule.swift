/// A calendar schedule (protocol version 3): a cron or systemd calendar expression read in an IANA time zone,
/// with the policies that decide what happens at DST changes, after downtime, when runs overlap, and how much
/// random delay each run gets. The protocol only carries these values; the server parses the expression at the
/// add (TaskShedCalendar) and refuses one that is invalid or never matches, naming the field.
///
/// On the wire it is the body of schedule kind 2 (see `proto-spec/PROTOCOL.md`, "Schedule"):
/// ```
/// syntax u8 | expression string | time_zone string | gap u8 | fold u8 | catch_up u8 | catch_up_max u32 |
/// catch_up_window duration | overlap u8 | jitter duration | jitter_mode u8
/// ```
public struct CalendarSchedule: Sendable, Hashable {
    /// The expression language.
    public enum Syntax: UInt8, Sendable, Hashable, CaseIterable {
        /// Vixie cron, five fields, with `@daily`-style shorthands, `L` and an optional `CRON_TZ=` prefix.
        case cron = 0
        /// systemd's calendar events (`Mon..Fri *-*-* 09:00:00 Europe/Berlin`).
        case systemd = 1
    }

    /// What a fixed-time rule does on a day its local time does not exist (the clock jumps over it).
    public enum Gap: UInt8, Sendable, Hashable, CaseIterable {
        /// Run at the instant RFC 5545 gives: the local time read with the offset before the gap. The default.
        case shift = 0
        /// Do not run that day.
        case skip = 1
        /// Run at the transition instant itself.
        case atChange = 2
    }

    /// What a fixed-time rule does on a day its local time occurs twice (the clock is set back).
    public enum Fold: UInt8, Sendable, Hashable, CaseIterable {
        /// Run at the first occurrence. The default.
        case first = 0
        /// Run at the last occurrence.
        case last = 1
        /// Run at both.
        case both = 2
    }

    /// What to do with occurrences that passed without a run (daemon down, no worker).
    public enum CatchUp: UInt8, Sendable, Hashable, CaseIterable {
        /// Run none of them; wait for the next occurrence.
        case skip = 0
        /// Run once, for the latest missed occurrence in the window. The default.
        case one = 1
        /// Run each missed occurrence in the window, the latest `catchUpMaximum` of them, oldest first.
        case all = 2
    }

    /// What to do with occurrences that fall due while the previous run still holds the task's lease.
    public enum Overlap: UInt8, Sendable, Hashable, CaseIterable {
        /// Drop them, counted as skipped. The default.
        case skip = 0
        /// Keep the latest one; it runs as soon as the current run ends. The others are skipped.
        case queueOne = 1
        /// Run every occurrence, beside the ones still running: each run is its own one-off task, `ID@OCCURRENCE`
        /// (`nightly@2026-03-08T01:30:00Z`), leased, acknowledged, retried and dead-lettered as one; the task itself
        /// moves on to its next occurrence as soon as a run is claimed.
        case allow = 2
    }

    /// How each run's random delay is chosen.
    public enum JitterMode: UInt8, Sendable, Hashable, CaseIterable {
        /// A fresh delay for every run.
        case random = 0
        /// The same delay for every run of one task, derived from its id (previews stay reproducible).
        case fixed = 1
    }

    /// The default catch-up window: one hour, in microseconds.
    public static let defaultCatchUpWindowMicros: Int64 = 3_600_000_000
    /// The shortest catch-up window, one second: a run that is merely a little late is never "missed".
    public static let minCatchUpWindowMicros: Int64 = 1_000_000
    /// The longest catch-up window, 366 days.
    public static let maxCatchUpWindowMicros: Int64 = 366 * 86_400_000_000
    /// The most runs `all` may catch up with.
    public static let maxCatchUpMaximum: UInt32 = 1000
    /// The longest jitter, one day.
    public static let maxJitterMicros: Int64 = 86_400_000_000
    /// The longest expression, in UTF-8 bytes.
    public static let maxExpressionBytes = 1024
    /// The longest id of a task with overlap `allow`: its runs' ids add `@` and an RFC 3339 instant (21 bytes).
    public static let maxAllowTaskIDBytes = 255 - 21

    /// The expression language.
    public var syntax: Syntax
    /// The expression, e.g. `30 2 * * *` or `Mon..Fri 09:00`.
    public var expression: String
    /// The IANA zone the expression is read in; empty means UTC. A zone named by the expression itself
    /// (`CRON_TZ=…`, systemd's trailing zone) wins over it.
    public var timeZone: String
    /// The DST gap policy (fixed-time rules only).
    public var gap: Gap
    /// The DST fold policy (fixed-time rules only).
    public var fold: Fold
    /// The catch-up policy.
    public var catchUp: CatchUp
    /// For `catchUp == .all`: how many missed runs at most (1 … 1000); 0 otherwise.
    public var catchUpMaximum: UInt32
    /// How far back a missed occurrence still counts as catch-up, µs (1 s … 366 days).
    public var catchUpWindowMicros: Int64
    /// The overlap policy.
    public var overlap: Overlap
    /// The largest random delay added to each run, µs (0 … one day; 0 = none). A run is never delayed to or past
    /// the next occurrence.
    public var jitterMicros: Int64
    /// How the delay is chosen.
    public var jitterMode: JitterMode

    /// Creates a calendar schedule; the defaults are the documented ones (shift, first, one, an hour, skip, no
    /// jitter).
    public init(
        syntax: Syntax, expression: String, timeZone: String = "", gap: Gap = .shift, fold: Fold = .first,
        catchUp: CatchUp = .one, catchUpMaximum: UInt32 = 0, catchUpWindowMicros: Int64 = defaultCatchUpWindowMicros,
        overlap: Overlap = .skip, jitterMicros: Int64 = 0, jitterMode: JitterMode = .random
    ) {
        self.syntax = syntax
        self.expression = expression
        self.timeZone = timeZone
        self.gap = gap
        self.fold = fold
        self.catchUp = catchUp
        self.catchUpMaximum = catchUpMaximum
        self.catchUpWindowMicros = catchUpWindowMicros
        self.overlap = overlap
        self.jitterMicros = jitterMicros
        self.jitterMode = jitterMode
    }
}
