import Glibc

/// Reading small text files (logs, `/proc` entries) whole.
public enum TextFile {
    /// Reads the whole file as UTF-8 (invalid bytes replaced).
    /// - Parameter path: The file.
    /// - Returns: Its text, or nil when it cannot be opened.
    /// - Important: Thread-safe; reads until end of file, so only for files that end (not pipes held open).
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
