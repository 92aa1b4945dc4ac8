import CLibUV
import Glibc

/// Checks on raw socket descriptors and paths, for socket activation and for refusing to start twice.
public enum SocketInspection {
    /// What an inherited descriptor turned out to be.
    public struct Kind: Sendable, Hashable {
        /// `SO_DOMAIN` (`AF_UNIX` is 1).
        public var domain: Int32
        /// `SO_TYPE` (`SOCK_STREAM` is 1).
        public var type: Int32
        /// `SO_ACCEPTCONN`: whether `listen(2)` was called on it.
        public var isListening: Bool

        /// Whether it is a listening `AF_UNIX` `SOCK_STREAM` socket, the only kind the daemon can serve.
        public var isListeningUnixStream: Bool {
            domain == AF_UNIX && type == Int32(SOCK_STREAM.rawValue) && isListening
        }
    }

    /// Reads the domain, type and listening state of a socket descriptor. Corresponds to `getsockopt` with
    /// `SO_DOMAIN`, `SO_TYPE` and `SO_ACCEPTCONN`.
    /// - Parameter descriptor: The descriptor to inspect.
    /// - Returns: The socket's kind.
    /// - Throws: `UVError` with the `errno` of `getsockopt` (`ENOTSOCK` if it is not a socket, `EBADF` if it is
    ///   not open).
    public static func kind(ofDescriptor descriptor: Int32) throws(UVError) -> Kind {
        func option(_ name: Int32, _ label: String) throws(UVError) -> Int32 {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(descriptor, SOL_SOCKET, name, &value, &length) != 0 {
                throw UVError.fromErrno("getsockopt", detail: "fd \(descriptor) \(label)")
            }
            return value
        }
        return Kind(domain: try option(SO_DOMAIN, "SO_DOMAIN"),
                    type: try option(SO_TYPE, "SO_TYPE"),
                    isListening: try option(SO_ACCEPTCONN, "SO_ACCEPTCONN") != 0)
    }

    /// The result of probing a socket path before binding it.
    public enum PathState: Sendable, Hashable {
        /// Nothing exists at the path.
        case absent
        /// A server accepted a connection there: another daemon is running.
        case live
        /// A socket file exists but nothing accepts connections (a daemon died without removing it).
        case stale
        /// Something that is not a socket exists there; the daemon must not delete it.
        case notASocket
    }

    /// Probes `path` by connecting to it (blocking connect on a Unix socket returns at once).
    /// Corresponds to `lstat`, `socket(AF_UNIX, SOCK_STREAM)` and `connect`.
    /// - Parameter path: The socket path (at most `UnixListener.maxPathBytes` bytes).
    /// - Returns: What is there.
    /// - Throws: `UVError` for a path too long, a failing `lstat`/`socket` other than "does not exist", or a
    ///   `connect` error other than "refused" (such as `EACCES`: the daemon cannot tell, so it does not touch it).
    public static func probe(path: String) throws(UVError) -> PathState {
        if path.utf8.count > UnixListener.maxPathBytes {
            throw UVError(code: UV_ENAMETOOLONG.rawValue, operation: "connect", detail: path)
        }
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return .absent }
            throw UVError.fromErrno("lstat", detail: path)
        }
        if (info.st_mode & S_IFMT) != S_IFSOCK {
            return .notASocket
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 {
            throw UVError.fromErrno("socket")
        }
        defer { Glibc.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                connect(fd, socketAddress, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 { return .live }
        // ECONNREFUSED: nobody listens. EAGAIN: a live listener with a full backlog, so someone is there.
        let failure = errno
        if failure == EAGAIN { return .live }
        if failure == ECONNREFUSED { return .stale }
        throw UVError(code: -failure, operation: "connect", detail: path)
    }
}
