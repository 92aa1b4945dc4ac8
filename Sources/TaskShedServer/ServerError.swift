/// Why the daemon cannot start or had to stop.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    /// One line: what failed and what to do about it.
    public var message: String

    /// Creates an error.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
