#if canImport(Glibc)
import Glibc
#endif

/// One IANA time zone as the system's tzdata describes it: its UTC offset at every instant.
///
/// ## Why TaskShed reads TZif files itself
/// Foundation's `TimeZone` on the Linux toolchain (Swift 6.3) does not read `/usr/share/zoneinfo`: it uses the
/// copy of the tz database compiled into `lib_FoundationICU.so` (checked with `strace`: no file under
/// `/usr/share/zoneinfo` is opened; `TimeZone.timeZoneDataVersion` is the ICU copy's version, and `TZDIR` is
/// ignored). Its answers for the acceptance cases were right, but a Debian `tzdata` update would not move
/// future runs until the Swift toolchain itself was rebuilt, and the daemon, the CLI and a PostgreSQL-backed
/// daemon on another machine could disagree. So the zone is read from the system's TZif files (RFC 8536, v1
/// or v2+): the explicit transitions, then the POSIX `TZ` footer for every instant after the last one.
/// `TZDIR` is honoured; the default directory is `/usr/share/zoneinfo`. Leap-second records (the `right/`
/// zones) are ignored: instants here are POSIX seconds.
///
/// Zones are loaded once per process and directory and cached (see ``named(_:)``); a rule keeps the zone's
/// name, never an offset, so a restarted daemon picks up new tzdata.
///
/// - Important: Immutable after loading; safe to share between threads.
public final class ZoneInfo: Sendable, CustomStringConvertible {
    /// The IANA name, as given (`Europe/Berlin`, `UTC`).
    public let identifier: String
    /// Instants (UTC seconds) at which the offset changes, increasing; only real changes are kept.
    let transitions: [Int64]
    /// `offsets[i]` is the offset (seconds east of UTC) from `transitions[i]` on.
    let offsets: [Int32]
    /// The offset before the first transition (TZif time type 0).
    let initialOffset: Int32
    /// The rule after the last transition, if the file has one.
    let footer: PosixTimeZone?
    /// The smallest offset the zone ever uses, seconds east of UTC (bounds every search for a wall time).
    public let minimumOffset: Int32
    /// The largest offset the zone ever uses, seconds east of UTC.
    public let maximumOffset: Int32

    init(identifier: String, transitions: [Int64], offsets: [Int32], initialOffset: Int32, footer: PosixTimeZone?) {
        self.identifier = identifier
        self.transitions = transitions
        self.offsets = offsets
        self.initialOffset = initialOffset
        self.footer = footer
        var all = offsets + [initialOffset]
        if let footer {
            all.append(footer.standardOffset)
            if let dst = footer.daylight { all.append(dst.offset) }
        }
        minimumOffset = all.min() ?? 0
        maximumOffset = all.max() ?? 0
    }

    /// Coordinated Universal Time, built in so that the default zone works even without tzdata installed.
    public static let utc = ZoneInfo(identifier: "UTC", transitions: [], offsets: [], initialOffset: 0, footer: nil)

    /// The directory zones are read from: `$TZDIR` if set and not empty, else `/usr/share/zoneinfo`.
    public static var directory: String {
        if let value = getenv("TZDIR"), value.pointee != 0 { return String(cString: value) }
        return "/usr/share/zoneinfo"
    }

    /// The zone named `identifier`, read from ``directory`` the first time and cached after that.
    ///
    /// - Parameter identifier: An IANA name such as `America/New_York`, or `UTC`.
    /// - Returns: The zone.
    /// - Throws: `CalendarExpressionError` with code `unknownTimeZone` when no such file exists (or the name
    ///   is not a plain relative path), `invalidTimeZoneData` when the file is not valid TZif.
    /// - Important: Thread-safe.
    public static func named(_ identifier: String) throws(CalendarExpressionError) -> ZoneInfo {
        try ZoneInfoCache.shared.zone(named: identifier, directory: directory)
    }

    /// The tzdata release of ``directory`` (`2025b`), read from the first line of its `tzdata.zi`, or `nil`.
    ///
    /// Worth storing beside a schedule's next run time: when it changes, future runs should be recomputed.
    public static func tzdataVersion() -> String? {
        guard let text = readFile(directory + "/tzdata.zi", limit: 256).map({ String(decoding: $0, as: UTF8.self) }),
              let line = text.split(separator: "\n").first, line.hasPrefix("# version ") else { return nil }
        return String(line.dropFirst("# version ".count))
    }

    /// Forgets every cached zone, so the next ``named(_:)`` reads tzdata again (after a tzdata update).
    public static func flushCache() {
        ZoneInfoCache.shared.removeAll()
    }

    /// The offset in seconds east of UTC in effect at `second` (UTC seconds since the epoch).
    public func utcOffset(atSecond second: Int64) -> Int32 {
        segment(containing: second).offset
    }

    /// The identifier.
    public var description: String { identifier }

    /// A stretch of time with one offset: `[start, end)` in UTC seconds.
    struct Segment: Equatable {
        var start: Int64
        var end: Int64
        var offset: Int32
    }

    /// The constant-offset stretch holding instant `t`.
    func segment(containing t: Int64) -> Segment {
        var low = 0
        var high = transitions.count
        while low < high {
            let mid = (low + high) / 2
            if transitions[mid] <= t { low = mid + 1 } else { high = mid }
        }
        if low < transitions.count {
            return Segment(start: low == 0 ? .min : transitions[low - 1], end: transitions[low],
                           offset: low == 0 ? initialOffset : offsets[low - 1])
        }
        let lastStart = transitions.last ?? .min
        let lastOffset = offsets.last ?? initialOffset
        guard let footer, footer.daylight != nil else {
            return Segment(start: lastStart, end: .max, offset: lastOffset)
        }
        var segment = Segment(start: lastStart, end: .max, offset: lastOffset)
        let year = Civil.date(fromDays: Civil.floorDiv(t, Civil.secondsPerDay)).year
        for y in (year - 1)...(year + 1) {
            for transition in footer.transitions(in: y) where transition.instant > lastStart {
                if transition.instant <= t {
                    segment.start = transition.instant
                    segment.offset = transition.after
                } else if transition.instant < segment.end {
                    segment.end = transition.instant
                }
            }
        }
        return segment
    }

    /// How a wall-clock time (seconds on the local clock since 1970-01-01 00:00) maps to real instants.
    enum Resolution: Equatable {
        /// The instants whose wall clock shows it: one normally, two (or more) in a fold, increasing.
        case instants([Int64])
        /// It never shows: the clock jumps over it at `transition`, from offset `before` to `after`.
        case gap(transition: Int64, before: Int32, after: Int32)
    }

    /// Every instant whose local wall clock shows `wall`, or the gap that skips it.
    ///
    /// Only instants in `[wall - maximumOffset, wall - minimumOffset]` can show `wall`, so the walk visits the
    /// few segments overlapping that span (two or three around a transition).
    func resolve(wall: Int64) -> Resolution {
        var segment = self.segment(containing: wall - Int64(maximumOffset))
        let lastPossible = wall - Int64(minimumOffset)
        var found: [Int64] = []
        var gap: Resolution?
        while true {
            let t = wall - Int64(segment.offset)
            if t >= segment.start && t < segment.end { found.append(t) }
            if segment.end == .max || segment.end > lastPossible { break }
            let next = self.segment(containing: segment.end)
            if wall >= segment.end + Int64(segment.offset) && wall < segment.end + Int64(next.offset) {
                gap = .gap(transition: segment.end, before: segment.offset, after: next.offset)
            }
            segment = next
        }
        if found.isEmpty, let gap { return gap }
        return .instants(found)
    }

    /// Reads at most `limit` bytes of a regular file, or `nil`.
    static func readFile(_ path: String, limit: Int) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var status = stat()
        guard fstat(fileno(file), &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = min(Int(status.st_size), limit)
        var bytes = [UInt8](repeating: 0, count: size)
        let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, file) }
        return read == size ? bytes : nil
    }
}
