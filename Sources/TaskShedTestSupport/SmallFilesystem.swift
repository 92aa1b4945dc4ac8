import Glibc

/// A tmpfs of a fixed size mounted on a fresh directory, so that a test can run a store (or a daemon) on a disk
/// that really fills up, without filling the machine's disk.
///
/// Mounting needs root (`CAP_SYS_ADMIN`): CI runs the tests as root; elsewhere `isAvailable` is `false` and the
/// tests that need one are skipped. A filler file (`fill(leavingBytes:)`) stands for other programs taking the
/// disk's space, and removing it (`removeFiller()`) for the space coming back.
///
/// - Important: Call `unmount()` in every path out of the test (`defer`), after closing whatever has files open
///   on it: an unmount that finds files still open detaches the mount instead (`MNT_DETACH`), and the kernel frees
///   the memory when the last one closes. `deinit` unmounts too, as a last resort.
public final class SmallFilesystem {
    /// Where the filesystem is mounted (a fresh directory under `/tmp`, removed by `unmount()`).
    public let path: String
    /// The filesystem's size in bytes.
    public let bytes: Int
    private var mounted: Bool

    /// Whether this process may mount one (it runs as root).
    public static var isAvailable: Bool { geteuid() == 0 }

    /// Creates a directory and mounts a tmpfs of `bytes` on it. Corresponds to `mount(2)` with type `tmpfs`
    /// and option `size=`.
    /// - Parameter bytes: The size (tmpfs rounds it up to whole pages).
    /// - Throws: `TestSupportError` when the directory cannot be made or the mount fails (not root, or no
    ///   `CAP_SYS_ADMIN` in this container).
    public init(bytes: Int) throws {
        path = try TemporaryDirectory.create(prefix: "tsfs")
        self.bytes = bytes
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(bytes),mode=0700") == 0 else {
            let reason = String(cString: strerror(errno))
            TemporaryDirectory.remove(path)
            throw TestSupportError("cannot mount a tmpfs of \(bytes) bytes on \(path): \(reason)")
        }
        mounted = true
    }

    deinit { unmount() }

    /// Unmounts the filesystem (everything on it is gone) and removes its directory. Harmless when repeated.
    public func unmount() {
        guard mounted else { return }
        mounted = false
        if umount2(path, 0) != 0 {
            // Something still has a file open on it: detach now, freed when that file closes.
            _ = umount2(path, Int32(MNT_DETACH))
        }
        rmdir(path)
    }

    /// Bytes an unprivileged writer can still allocate on the filesystem (`statvfs`: `f_bavail * f_frsize`).
    public var availableBytes: Int {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return 0 }
        return Int(fs.f_bavail) * Int(fs.f_frsize)
    }

    private var fillerPath: String { path + "/filler" }

    /// Takes the filesystem's free space with a filler file (blocks allocated with `posix_fallocate`) until only
    /// `leavingBytes` are free (or grows the filler to use more), as another program filling the disk would.
    /// - Throws: `TestSupportError` when the file cannot be made or allocated.
    public func fill(leavingBytes: Int) throws {
        let fd = open(fillerPath, O_WRONLY | O_CREAT, 0o600)
        guard fd >= 0 else { throw TestSupportError("cannot create \(fillerPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TestSupportError("cannot stat \(fillerPath)") }
        let target = Int(st.st_size) + availableBytes - leavingBytes
        if target <= Int(st.st_size) {
            guard ftruncate(fd, off_t(max(target, 0))) == 0 else {
                throw TestSupportError("cannot shrink \(fillerPath): \(String(cString: strerror(errno)))")
            }
            return
        }
        let rc = posix_fallocate(fd, 0, off_t(target))
        guard rc == 0 else { throw TestSupportError("cannot allocate \(target) bytes for \(fillerPath): \(String(cString: strerror(rc)))") }
    }

    /// Removes the filler file: its space is free again.
    public func removeFiller() {
        unlink(fillerPath)
    }
}
