import Glibc
import Logging

/// A swift-log handler that writes one line per event to standard error, as text or as JSON.
///
/// Text (the default), interactive: `2026-11-29T08:36:49.123456Z info taskshedd: message key=value`. Under systemd
/// (`JOURNAL_STREAM` or `INVOCATION_ID` set) journald adds the time itself and reads the priority from a
/// `<N>` prefix (sd-daemon(3)), so a line is `<6>message key=value`.
///
/// JSON (`--log-format json`): one object per line, formatted by `JSONLogLine`. The object is the same
/// everywhere (its `time` included), so a shipper's parser sees one schema. When standard error is the journal
/// itself (`stderrIsJournal(environment:)`), the object gets the same `<N>` prefix, which journald strips: the
/// entry's `PRIORITY` is right and its `MESSAGE` is exactly the JSON object.
///
/// - Important: Each line goes out in one `write(2)`, so lines from several threads never interleave.
public struct StderrLogHandler: LogHandler {
    /// How a line is written.
    public enum Format: String, Sendable, CaseIterable {
        /// `time level label: message key=value` (or `<N>message key=value` under journald).
        case text
        /// One JSON object per line (see `JSONLogLine`).
        case json
    }

    /// Whether lines carry `<N>` priority prefixes (in the text format: instead of timestamps and the label).
    public let journalFormat: Bool
    /// Text or JSON.
    public let lineFormat: Format
    /// The logger's label.
    public let label: String
    /// Metadata attached to every event of this logger.
    public var metadata: Logger.Metadata = [:]
    /// Events below this level are dropped.
    public var logLevel: Logger.Level

    /// Creates a handler.
    /// - Parameters:
    ///   - label: The logger's label.
    ///   - level: The minimum level.
    ///   - journalFormat: Whether to write journald priority prefixes.
    ///   - lineFormat: Text (the default) or JSON.
    public init(label: String, level: Logger.Level, journalFormat: Bool, lineFormat: Format = .text) {
        self.label = label
        self.logLevel = level
        self.journalFormat = journalFormat
        self.lineFormat = lineFormat
    }

    /// Whether the environment says standard error goes to the journal.
    /// - Parameter environment: The process environment.
    /// - Returns: `true` when `JOURNAL_STREAM` or `INVOCATION_ID` is set.
    public static func runsUnderSystemd(environment: [String: String]) -> Bool {
        environment["JOURNAL_STREAM"] != nil || environment["INVOCATION_ID"] != nil
    }

    /// Whether a descriptor is the journal stream systemd connected (the check sd-daemon(3) recommends).
    ///
    /// The JSON format uses this stricter test than `runsUnderSystemd(environment:)`: a unit may send standard
    /// error to a file or a pipe to a shipper (`INVOCATION_ID` set, `JOURNAL_STREAM` inherited or absent), and a
    /// `<N>` prefix there would make the line invalid JSON.
    /// - Parameters:
    ///   - environment: The process environment.
    ///   - descriptor: The descriptor to check (standard error).
    /// - Returns: `true` when `JOURNAL_STREAM` is `DEVICE:INODE` of the descriptor.
    public static func stderrIsJournal(environment: [String: String], descriptor: Int32 = 2) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// Gets or sets one metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one event as one line (the source location is not printed: events are worded to stand alone).
    public func log(event: LogEvent) {
        var merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        if let error = event.error { merged["error"] = "\(error)" }
        let line = format(level: event.level, message: event.message.description, metadata: merged)
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(2, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// Formats one line without the newline (for tests and `log`).
    /// - Parameters:
    ///   - level: The event's level.
    ///   - message: The message.
    ///   - metadata: Metadata, printed as sorted `key=value` pairs (text) or as fields (JSON).
    /// - Returns: The line.
    public func format(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        if lineFormat == .json {
            let object = JSONLogLine.format(time: Self.timestamp(), level: level, label: label, message: message,
                                            metadata: metadata)
            return journalFormat ? "<\(Self.priority(of: level))>" + object : object
        }
        var line: String
        if journalFormat {
            line = "<\(Self.priority(of: level))>"
        } else {
            line = Self.timestamp() + " " + level.rawValue + " " + label + ": "
        }
        // A newline in a message would split one event into several journal entries.
        line += message.replacingNewlines()
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            let text = "\(value)".replacingNewlines()
            line += " \(key)=" + (text.contains(" ") || text.isEmpty ? "\"\(text)\"" : text)
        }
        return line
    }

    /// The syslog priority journald expects for a level.
    static func priority(of level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + pad(Int32(now.tv_nsec / 1000), 6) + "Z"
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        guard contains(where: { $0 == "\n" || $0 == "\r" }) else { return self }
        return String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
