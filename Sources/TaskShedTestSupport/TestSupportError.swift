/// A failure of the test helpers (spawning the daemon, connecting, reading frames), with a readable message.
public struct TestSupportError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String

    /// Creates an error.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
