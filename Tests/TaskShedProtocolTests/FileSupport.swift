import Foundation

/// Every regular file of a directory with its bytes, sorted by name (empty when the directory is missing).
func readDirectoryFiles(_ directory: String) -> [(String, [UInt8])] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.sorted().compactMap { name in
        guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { return nil }
        return (name, [UInt8](data))
    }
}

/// The text of a file, or nil.
func readText(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).flatMap { String(data: $0, encoding: .utf8) }
}
