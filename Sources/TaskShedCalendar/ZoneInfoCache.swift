import Synchronization

/// The process-wide cache of loaded zones, keyed by directory and name, so repeated computations never re-read
/// tzdata.
///
/// - Important: Thread-safe: the dictionary sits behind a `Mutex`; files are read outside the lock (two threads
///   may both load a zone the first time; the first insert wins and both get equal data).
final class ZoneInfoCache: Sendable {
    /// The one cache of the process.
    static let shared = ZoneInfoCache()

    private let zones = Mutex<[String: ZoneInfo]>([:])

    /// The zone `name` under `directory`, loading it on first use.
    func zone(named name: String, directory: String) throws(CalendarExpressionError) -> ZoneInfo {
        let key = directory + "\u{0}" + name
        if let zone = zones.withLock({ $0[key] }) { return zone }
        let zone = try Self.load(name, directory: directory)
        return zones.withLock { cache in
            if let existing = cache[key] { return existing }
            cache[key] = zone
            return zone
        }
    }

    /// Empties the cache.
    func removeAll() {
        zones.withLock { $0.removeAll() }
    }

    private static func load(_ name: String, directory: String) throws(CalendarExpressionError) -> ZoneInfo {
        let unknown = CalendarExpressionError(
            code: .unknownTimeZone, field: "time zone", token: name,
            message: "time zone: \"\(name)\" is not a zone in the system tzdata (\(directory))")
        // Only plain relative names: a rule must never make the daemon read an arbitrary file.
        let allowed = name.utf8.allSatisfy { b in
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57)
                || b == UInt8(ascii: "/") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
                || b == UInt8(ascii: "+") || b == UInt8(ascii: ".")
        }
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.count <= 255, allowed,
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { throw unknown }
        guard let bytes = ZoneInfo.readFile(directory + "/" + name, limit: 1 << 20) else {
            if name == "UTC" { return ZoneInfo.utc }
            throw unknown
        }
        guard bytes.starts(with: Array("TZif".utf8)) else { throw unknown }
        guard let zone = ZoneInfo.parseTZif(bytes, identifier: name) else {
            throw CalendarExpressionError(
                code: .invalidTimeZoneData, field: "time zone", token: name,
                message: "time zone: \"\(name)\" is not valid TZif data (\(directory)/\(name))")
        }
        return zone
    }
}
