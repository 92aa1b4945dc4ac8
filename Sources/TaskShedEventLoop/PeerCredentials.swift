import CLibUV
import Glibc

/// The process on the other end of a Unix socket, as the kernel recorded it when the peer connected.
public struct PeerCredentials: Sendable, Hashable {
    /// The peer's process id.
    public var pid: Int32
    /// The peer's effective user id.
    public var uid: UInt32
    /// The peer's effective group id.
    public var gid: UInt32

    /// Creates credentials.
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// Reads the credentials of a connected Unix socket. Corresponds to `getsockopt(SO_PEERCRED)`.
    /// - Parameter descriptor: A connected `AF_UNIX` socket.
    /// - Returns: The peer's pid, uid and gid.
    /// - Throws: `UVError` with the `errno` of `getsockopt`.
    public static func of(descriptor: Int32) throws(UVError) -> PeerCredentials {
        // `struct ucred` is only declared with _GNU_SOURCE, which the Glibc module is not built with; its layout
        // (pid_t, uid_t, gid_t) is fixed by the kernel ABI, so an identical struct stands in for it.
        struct KernelUcred {
            var pid: Int32 = 0
            var uid: UInt32 = 0
            var gid: UInt32 = 0
        }
        var raw = KernelUcred()
        var length = socklen_t(MemoryLayout<KernelUcred>.size)
        if getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &raw, &length) != 0 {
            throw UVError.fromErrno("getsockopt", detail: "SO_PEERCRED")
        }
        return PeerCredentials(pid: raw.pid, uid: raw.uid, gid: raw.gid)
    }
}
