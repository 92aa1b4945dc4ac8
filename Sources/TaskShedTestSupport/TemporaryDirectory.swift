import Glibc

/// Creates and removes temporary directories for tests.
public enum TemporaryDirectory {
    /// Creates a fresh directory under `/tmp` (short, so socket paths inside it fit in `sun_path`).
    /// Corresponds to `mkdtemp`.
    /// - Parameter prefix: A short name prefix.
    /// - Returns: The directory's path.
    /// - Throws: `TestSupportError` when `mkdtemp` fails.
    public static func create(prefix: String = "ts") throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw TestSupportError("mkdtemp failed: \(String(cString: strerror(errno)))") }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes a directory tree (like `rm -rf`), ignoring errors.
    /// - Parameter path: The directory.
    public static func remove(_ path: String) {
        guard let directory = opendir(path) else {
            unlink(path)
            return
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names {
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                remove(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }
}
