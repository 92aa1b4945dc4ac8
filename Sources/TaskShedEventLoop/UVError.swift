import CLibUV
import Glibc

/// An error from libuv or from a system call made by the event-loop layer, keeping the raw code.
///
/// libuv reports errors as negative `errno` values (`UV_EADDRINUSE` is `-EADDRINUSE` on Linux); system calls
/// made directly by this module (timerfd, getsockopt, chmod) are reported the same way, so one type covers both.
public struct UVError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The negative error code (`UV_E*`, equal to `-errno` on Linux).
    public var code: Int32
    /// The call that failed, such as `"uv_pipe_bind"`.
    public var operation: String
    /// Extra context (a path, a descriptor), or an empty string.
    public var detail: String

    /// Creates an error from a libuv status code.
    /// - Parameters:
    ///   - code: A negative libuv status code.
    ///   - operation: The name of the call that returned it.
    ///   - detail: Extra context for the message.
    public init(code: Int32, operation: String, detail: String = "") {
        self.code = code
        self.operation = operation
        self.detail = detail
    }

    /// Creates an error from the current `errno` after a failed system call.
    static func fromErrno(_ operation: String, detail: String = "") -> UVError {
        UVError(code: -errno, operation: operation, detail: detail)
    }

    /// The libuv error name, such as `"EADDRINUSE"`.
    public var name: String { String(cString: uv_err_name(code)) }

    /// `uv_strerror` of the code: a readable description such as "address already in use".
    public var message: String { String(cString: uv_strerror(code)) }

    /// `"<operation>(<detail>): <message> (<name>)"`, for logs and the one-line start-up failures.
    public var description: String {
        let context = detail.isEmpty ? operation : "\(operation)(\(detail))"
        return "\(context): \(message) (\(name))"
    }

    /// Whether the code is `UV_ECANCELED` (a request was cancelled because its handle closed).
    public var isCancelled: Bool { code == UV_ECANCELED.rawValue }
    /// Whether the code is `UV_EOF` (the peer closed its end).
    public var isEndOfFile: Bool { code == UV_EOF.rawValue }
}

/// Throws a `UVError` when a libuv call returned a negative status.
@inline(__always)
func check(_ status: Int32, _ operation: String, detail: String = "") throws(UVError) {
    if status < 0 {
        throw UVError(code: status, operation: operation, detail: detail)
    }
}
