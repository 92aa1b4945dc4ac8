import CHTTPParser

/// The head of one HTTP/1.x request, as far as the metrics endpoint needs it.
struct HTTPRequest: Sendable, Hashable {
    /// The method as the parser names it: `GET`, `HEAD`, `POST`...
    var method: String
    /// The request target as sent: `/metrics`, `/metrics?name[]=x`, `http://host/metrics`.
    var target: String
    /// The target's path (`/metrics`), without query or fragment (`*` for `OPTIONS *`); empty when the target has
    /// none (`CONNECT host:port`).
    var path: String
    /// The protocol version's major number: 1 for `HTTP/1.1`.
    var versionMajor: UInt16
    /// The protocol version's minor number: 1 for `HTTP/1.1`.
    var versionMinor: UInt16
    /// Whether the connection may stay open after the response, by HTTP/1.1's rules: 1.1 unless
    /// `Connection: close`, 1.0 only with `Connection: keep-alive` (`http_should_keep_alive`).
    var keepAlive: Bool
    /// Whether the request asked to switch protocols (`Upgrade`, or `CONNECT`): bytes after it are not HTTP/1.x.
    var isUpgrade: Bool
}

/// Why bytes are not a request the metrics endpoint serves; each maps to the status it is answered with, and the
/// connection closes after that answer.
struct HTTPRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    enum Code: Sendable, Hashable {
        /// Not HTTP/1.x (`400`): the parser's error name is in `detail`.
        case malformed
        /// The request line and headers passed `HTTPRequestParser.maxHeadBytes` (`431`).
        case headTooLarge
        /// The request carries a body (`Content-Length` above 0, or chunked), which no metrics request has
        /// (`413`).
        case bodyNotAllowed
        /// An HTTP major version other than 1 (`505`).
        case versionNotSupported
    }

    /// What went wrong.
    var code: Code
    /// The parser's error (`HPE_INVALID_METHOD: invalid HTTP method`) or another explanation, for logs.
    var detail: String

    /// The status code the error is answered with.
    var status: HTTPStatus {
        switch code {
        case .malformed: .badRequest
        case .headTooLarge: .headerFieldsTooLarge
        case .bodyNotAllowed: .payloadTooLarge
        case .versionNotSupported: .versionNotSupported
        }
    }

    var description: String { "\(status.code) \(status.reason): \(detail)" }
}

/// An incremental HTTP/1.x request parser over libhttp-parser (`http_parser` 2.9, `HTTP_REQUEST` mode), in the
/// shape of the protocol's frame decoder: `append(_:)` bytes as they arrive, then `next()` gives a complete
/// request, or `nil` when more bytes are needed.
///
/// `next()` stops at the end of each request (the parser is paused in `on_message_complete`), so that bytes of a
/// pipelined request stay buffered here until the caller has answered the one before; the caller reads no more
/// from its socket meanwhile, which bounds the buffer by one read.
///
/// Checks beyond the parser's: a request head (request line and headers) of at most `maxHeadBytes` (the parser's
/// own limit is 80 KiB, set for the whole process by `http_parser_set_max_header_size`, so it is counted here
/// instead), and no body. After an error the parser is spent: the connection must be closed.
///
/// - Important: Not thread-safe; one connection's parser belongs to the loop thread. The C parser and its
///   settings are allocated with the object and freed in `deinit`.
final class HTTPRequestParser {
    /// The largest request head accepted by default: request line plus headers, including the blank line.
    static let defaultMaxHeadBytes = 8 * 1024

    /// The largest request head accepted.
    let maxHeadBytes: Int

    private let parser: UnsafeMutablePointer<http_parser>
    private let settings: UnsafeMutablePointer<http_parser_settings>
    /// Bytes appended and not yet given to the C parser (it keeps no bytes of its own).
    private var buffered: [UInt8] = []
    private var bufferedStart = 0
    /// Bytes of the current request's head fed to the parser so far, from the end of the previous request.
    private var headBytes = 0
    private var headComplete = false
    /// What the callbacks collected for the request being parsed.
    private var target: [UInt8] = []
    private var messageComplete = false
    private var bodyAnnounced = false
    /// The error that ended parsing; every later `next()` throws it again.
    private var failure: HTTPRequestError?

    /// Creates a parser for one connection.
    /// - Parameter maxHeadBytes: The largest request head accepted (`431` above it).
    init(maxHeadBytes: Int = HTTPRequestParser.defaultMaxHeadBytes) {
        self.maxHeadBytes = maxHeadBytes
        parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
        settings = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
        http_parser_settings_init(settings)
        settings.pointee.on_message_begin = { parser in
            HTTPRequestParser.owner(parser).messageBegan()
            return 0
        }
        settings.pointee.on_url = { parser, bytes, count in
            HTTPRequestParser.owner(parser).target.append(
                contentsOf: UnsafeRawBufferPointer(start: bytes, count: count))
            return 0
        }
        settings.pointee.on_headers_complete = { parser in
            HTTPRequestParser.owner(parser).headersCompleted()
        }
        settings.pointee.on_message_complete = { parser in
            HTTPRequestParser.owner(parser).messageComplete = true
            // Stop here: `http_parser_execute` returns the bytes up to the request's end (the pause is an
            // errno, HPE_PAUSED, that `next()` clears before it feeds the parser again).
            http_parser_pause(parser, 1)
            return 0
        }
        // `data` is unretained: the parser is only run from this object's own methods.
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
        settings.deallocate()
    }

    private static func owner(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTPRequestParser {
        // Every callback comes from `http_parser_execute` on this object's parser, whose `data` is set in init.
        Unmanaged<HTTPRequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    /// Whether bytes of a request that is not complete yet were parsed, or are buffered: a connection in this
    /// state is in the middle of a request, not idle.
    var isInsideRequest: Bool { headBytes > 0 || bufferedStart < buffered.count }

    /// Whether bytes are buffered that `next()` has not parsed yet (a pipelined request).
    var hasBufferedBytes: Bool { bufferedStart < buffered.count }

    /// Keeps bytes read from the connection for `next()` (they are copied: the loop's read buffer is reused).
    /// - Parameter bytes: The bytes read.
    func append(_ bytes: UnsafeRawBufferPointer) {
        if bufferedStart == buffered.count {
            buffered.removeAll(keepingCapacity: true)
            bufferedStart = 0
        }
        buffered.append(contentsOf: bytes)
    }

    /// Keeps bytes for `next()` (for tests and callers holding an array).
    /// - Parameter bytes: The bytes.
    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Parses buffered bytes up to the end of the next request. Corresponds to `http_parser_execute`.
    /// - Returns: The request, or `nil` when every buffered byte was parsed and the request is not complete.
    /// - Throws: `HTTPRequestError` (`malformed`, `headTooLarge`, `bodyNotAllowed`, `versionNotSupported`); it is
    ///   final: the same error comes back from every later call.
    func next() throws(HTTPRequestError) -> HTTPRequest? {
        if let failure { throw failure }
        while bufferedStart < buffered.count {
            // While the head is incomplete, feed at most what is left of its allowance, so that the parser never
            // sees a byte past it.
            var count = buffered.count - bufferedStart
            if !headComplete {
                let allowance = maxHeadBytes - headBytes
                if allowance <= 0 {
                    return try fail(.headTooLarge, "the request line and headers pass \(maxHeadBytes) bytes")
                }
                count = min(count, allowance)
            }
            let consumed = buffered.withUnsafeBytes { bytes in
                http_parser_execute(parser, settings,
                                    bytes.baseAddress!.advanced(by: bufferedStart).assumingMemoryBound(to: CChar.self),
                                    count)
            }
            headBytes += consumed
            bufferedStart += consumed
            let status = chttpparser_errno(parser)
            if bodyAnnounced {
                return try fail(.bodyNotAllowed, "a metrics request has no body (Content-Length or chunked)")
            }
            if status == HPE_PAUSED && messageComplete {
                http_parser_pause(parser, 0)
                return try completedRequest()
            }
            if status != HPE_OK {
                let name = String(cString: http_errno_name(status))
                let text = String(cString: http_errno_description(status))
                return try fail(.malformed, "\(name): \(text)")
            }
            if consumed == 0 {
                // The parser takes every byte unless it stops with an error or a pause: never spin on it.
                return try fail(.malformed, "the parser took no byte")
            }
            if !headComplete && headBytes >= maxHeadBytes {
                return try fail(.headTooLarge, "the request line and headers pass \(maxHeadBytes) bytes")
            }
        }
        return nil
    }

    private func fail(_ code: HTTPRequestError.Code, _ detail: String) throws(HTTPRequestError) -> HTTPRequest? {
        let error = HTTPRequestError(code: code, detail: detail)
        failure = error
        buffered = []
        bufferedStart = 0
        throw error
    }

    private func messageBegan() {
        target.removeAll(keepingCapacity: true)
        messageComplete = false
        headComplete = false
    }

    /// `on_headers_complete`: refuses a body before the parser reads any of it. A non-zero, non-one, non-two
    /// return is an error for the parser (`HPE_CB_headers_complete`); `next()` reports `bodyAnnounced` instead.
    private func headersCompleted() -> Int32 {
        headComplete = true
        let chunked = chttpparser_flags(parser) & UInt32(F_CHUNKED.rawValue) != 0
        // content_length is ULLONG_MAX when the request has no Content-Length header.
        let length = parser.pointee.content_length
        if chunked || (length > 0 && length != UInt64.max) {
            bodyAnnounced = true
            return -1
        }
        return 0
    }

    private func completedRequest() throws(HTTPRequestError) -> HTTPRequest? {
        let major = parser.pointee.http_major
        let minor = parser.pointee.http_minor
        let method = String(cString: http_method_str(chttpparser_method(parser)))
        let isUpgrade = chttpparser_is_upgrade(parser) != 0
        let keepAlive = http_should_keep_alive(parser) != 0
        let targetText = String(decoding: target, as: UTF8.self)
        let path = Self.path(of: target, isConnect: chttpparser_method(parser) == HTTP_CONNECT)
        headBytes = 0
        headComplete = false
        messageComplete = false
        target.removeAll(keepingCapacity: true)
        if major != 1 {
            return try fail(.versionNotSupported, "HTTP/\(major).\(minor) is not served; speak HTTP/1.1")
        }
        if isUpgrade {
            // The bytes after an upgrade request are another protocol: none of them is parsed.
            buffered = []
            bufferedStart = 0
        }
        return HTTPRequest(method: method, target: targetText, path: path, versionMajor: major, versionMinor: minor,
                           keepAlive: keepAlive && !isUpgrade, isUpgrade: isUpgrade)
    }

    /// The path of a request target. Corresponds to `http_parser_parse_url`, which takes an origin-form
    /// (`/metrics?x`) or absolute-form (`http://host/metrics`) target apart.
    static func path(of target: [UInt8], isConnect: Bool) -> String {
        var url = http_parser_url()
        http_parser_url_init(&url)
        let status = target.withUnsafeBytes { bytes in
            http_parser_parse_url(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count,
                                  isConnect ? 1 : 0, &url)
        }
        var offset: UInt16 = 0
        var length: UInt16 = 0
        guard status == 0, chttpparser_url_field(&url, UF_PATH, &offset, &length) == 0 else { return "" }
        let start = Int(offset)
        let end = start + Int(length)
        guard end <= target.count else { return "" }
        return String(decoding: target[start..<end], as: UTF8.self)
    }
}
