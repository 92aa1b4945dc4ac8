import CLibUV
import Glibc

/// A listening Unix stream socket (`uv_pipe_t`): bound to a path by the daemon itself, or adopted from an
/// inherited descriptor (systemd socket activation).
///
/// - Important: Loop-thread only (see `LoopHandle`).
public final class UnixListener: LoopHandle {
    /// The most bytes a socket path may have: `sun_path` is 108 bytes including the terminating NUL. libuv 1.44
    /// silently truncates longer paths (and would bind a different file), so the length is checked here.
    public static let maxPathBytes = 107

    /// The bound path, or `nil` for an adopted descriptor.
    public let path: String?
    /// Runs when a connection is waiting to be accepted (call `accept()`), or with an error.
    public var onConnection: (UVError?) -> Void = { _ in }

    private var pipe: UnsafeMutablePointer<uv_pipe_t> { rawHandle.assumingMemoryBound(to: uv_pipe_t.self) }

    /// Binds a new socket at `path` and applies the file mode and group. The path must not exist (remove a
    /// stale socket first). Corresponds to `uv_pipe_init`, `uv_pipe_bind`, `chmod`, `chown`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - path: The socket file to create (at most `maxPathBytes` UTF-8 bytes).
    ///   - mode: File permission bits for the socket file (such as `0o660`).
    ///   - group: A group id to give the socket file, or `nil` to keep the process's group.
    /// - Throws: `UVError`: `UV_ENAMETOOLONG` for a long path, `UV_EADDRINUSE` if the path exists, `UV_EACCES`,
    ///   or the `errno` of `chmod`/`chown` (the half-made socket file is removed).
    public init(loop: EventLoop, path: String, mode: UInt32, group: UInt32?) throws(UVError) {
        if path.utf8.count > Self.maxPathBytes {
            throw UVError(code: UV_ENAMETOOLONG.rawValue, operation: "bind",
                          detail: "\(path) is \(path.utf8.count) bytes, at most \(Self.maxPathBytes) fit in sun_path")
        }
        if path.isEmpty || path.utf8.contains(0) {
            throw UVError(code: UV_EINVAL.rawValue, operation: "bind", detail: "empty path or NUL byte in path")
        }
        self.path = path
        super.init(loop: loop, type: uv_pipe_t.self)
        let status = uv_pipe_init(loop.loop, pipe, 0)
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_pipe_init")
        }
        didInitialise()
        let bound = uv_pipe_bind(pipe, path)
        if bound < 0 {
            close()
            throw UVError(code: bound, operation: "uv_pipe_bind", detail: path)
        }
        // Permissions are applied before listen(), so no client can connect through looser ones.
        if chmod(path, mode_t(mode)) != 0 {
            let error = UVError.fromErrno("chmod", detail: path)
            unlink(path)
            close()
            throw error
        }
        if let group, chown(path, uid_t.max, gid_t(group)) != 0 {
            let error = UVError.fromErrno("chown", detail: "\(path) to gid \(group)")
            unlink(path)
            close()
            throw error
        }
    }

    /// Adopts an inherited socket that is already bound and listening (socket activation). Corresponds to
    /// `uv_pipe_init` and `uv_pipe_open`. Validate the descriptor first with `SocketInspection`.
    /// - Parameters:
    ///   - loop: The loop.
    ///   - descriptor: The inherited descriptor (3 under systemd).
    /// - Throws: `UVError` from `uv_pipe_open`.
    public init(loop: EventLoop, adoptingDescriptor descriptor: Int32) throws(UVError) {
        path = nil
        super.init(loop: loop, type: uv_pipe_t.self)
        let status = uv_pipe_init(loop.loop, pipe, 0)
        if status < 0 {
            discardUninitialised()
            throw UVError(code: status, operation: "uv_pipe_init")
        }
        didInitialise()
        let opened = uv_pipe_open(pipe, descriptor)
        if opened < 0 {
            close()
            throw UVError(code: opened, operation: "uv_pipe_open", detail: "fd \(descriptor)")
        }
    }

    /// Starts listening; `onConnection` runs for each pending connection. Corresponds to `uv_listen` (which
    /// also calls `listen(2)` again on an adopted socket, harmlessly).
    /// - Parameter backlog: The kernel's queue of not-yet-accepted connections.
    /// - Throws: `UVError` from `uv_listen`.
    public func listen(backlog: Int32 = 511) throws(UVError) {
        try check(uv_listen(stream, backlog) { server, status in
            guard let owner = LoopHandle.owner(of: UnsafeMutableRawPointer(server), as: UnixListener.self) else {
                return
            }
            owner.onConnection(status < 0 ? UVError(code: status, operation: "uv_listen") : nil)
        }, "uv_listen")
    }

    /// Accepts one pending connection. Corresponds to `uv_pipe_init` and `uv_accept`.
    /// - Returns: The connection, not yet reading (call `Connection.startReading()`).
    /// - Throws: `UVError` from `uv_accept` (`UV_EAGAIN` when none is pending).
    public func accept() throws(UVError) -> Connection {
        let connection = try Connection(loop: loop)
        let status = uv_accept(stream, connection.stream)
        if status < 0 {
            connection.close()
            throw UVError(code: status, operation: "uv_accept")
        }
        return connection
    }

    override func didClose() {
        // The socket file outlives the descriptor; remove it so the next start does not find a stale file. An
        // adopted socket's file belongs to whoever created it (systemd), so it stays.
        if let path {
            unlink(path)
        }
    }
}
