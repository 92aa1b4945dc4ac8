/// A decoding failure: what was wrong, where (byte offset within the frame, field path), and whether the byte
/// stream can continue.
///
/// The codes a decoder produces are `.malformedFrame` and `.frameTooLarge` (fatal: the length prefix cannot be
/// trusted, so the next frame boundary is lost) and `.unknownMessageType` and `.malformedMessage` (not fatal:
/// the bad frame was consumed whole and the next frame can be decoded). A server answers each with an `ERROR`
/// reply (see `errorReply`) carrying `requestID`, or 0 when the header was not readable, and closes the
/// connection after a fatal one.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error code to report.
    public var code: ErrorCode
    /// The request id of the failing frame, when its header was readable.
    public var requestID: UInt32?
    /// The raw message type of the failing frame, when its header was readable.
    public var messageType: UInt16?
    /// The payload field at fault, as a path of specification field names ("tasks[3].callback"), if any.
    public var field: String?
    /// Byte offset within the frame (0 = first byte of the length prefix) where decoding failed.
    public var offset: Int
    /// What was wrong and what is allowed.
    public var message: String
    /// Whether the byte stream is lost (framing cannot be recovered; the connection must close).
    public var isFatal: Bool

    /// Creates an error.
    /// - Parameters:
    ///   - code: The error code.
    ///   - requestID: The failing frame's request id, if known.
    ///   - messageType: The failing frame's raw type, if known.
    ///   - field: The field path at fault, if any.
    ///   - offset: Byte offset within the frame.
    ///   - message: A human-readable explanation.
    ///   - isFatal: Whether the stream cannot continue.
    public init(
        code: ErrorCode, requestID: UInt32? = nil, messageType: UInt16? = nil, field: String? = nil, offset: Int,
        message: String, isFatal: Bool = false
    ) {
        self.code = code
        self.requestID = requestID
        self.messageType = messageType
        self.field = field
        self.offset = offset
        self.message = message
        self.isFatal = isFatal
    }

    /// The `ERROR` payload a server sends for this failure (the frame's request id is `requestID ?? 0`).
    public var errorReply: ErrorReply {
        ErrorReply(code: code, field: field, message: "\(message) (at byte \(offset) of the frame)")
    }

    /// The same error with `prefix` put in front of its field path (`"tasks[2]"` + `"callback"` becomes
    /// `"tasks[2].callback"`; an index component such as `"[2]"` is joined without a dot).
    /// - Parameter prefix: The enclosing field's path.
    /// - Returns: The error with the longer field path.
    public func prefixingField(_ prefix: String) -> ProtocolError {
        var copy = self
        if let field, !field.isEmpty {
            copy.field = field.hasPrefix("[") ? prefix + field : prefix + "." + field
        } else {
            copy.field = prefix
        }
        return copy
    }

    /// `"MALFORMED_MESSAGE at byte 23 (tasks[0].schedule.kind): unknown schedule kind 7 …"`.
    public var description: String {
        var text = "\(code.name) at byte \(offset)"
        if let field { text += " (\(field))" }
        if let messageType { text += " in frame type 0x" + String(messageType, radix: 16) }
        if let requestID { text += " request \(requestID)" }
        text += ": " + message
        if isFatal { text += " [fatal]" }
        return text
    }
}
