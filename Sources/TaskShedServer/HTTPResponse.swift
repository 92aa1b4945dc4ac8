import Glibc

/// The HTTP status codes the metrics endpoint answers with.
struct HTTPStatus: Sendable, Hashable {
    /// The three-digit code.
    var code: Int
    /// The reason phrase of the status line.
    var reason: String

    static let ok = HTTPStatus(code: 200, reason: "OK")
    static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
    static let payloadTooLarge = HTTPStatus(code: 413, reason: "Payload Too Large")
    static let headerFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    static let versionNotSupported = HTTPStatus(code: 505, reason: "HTTP Version Not Supported")
}

/// One HTTP/1.1 response of the metrics endpoint, serialised whole: status line, headers, body.
///
/// ```
/// HTTP/1.1 200 OK\r\n
/// Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n
/// Content-Length: 1234\r\n
/// Date: Mon, 07 Dec 2026 13:20:01 GMT\r\n
/// [Connection: close\r\n]          when the connection closes after it
/// [Allow: GET, HEAD\r\n]           on a 405
/// \r\n
/// body (not for HEAD: the headers still give the length a GET would have)
/// ```
struct HTTPResponse: Sendable {
    /// The Prometheus text exposition format, version 0.0.4.
    static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The status.
    var status: HTTPStatus
    /// Headers besides Content-Length, Date and Connection, in order.
    var headers: [(name: String, value: String)]
    /// The body, also for a HEAD response: its length is the Content-Length.
    var body: [UInt8]

    /// A `200 OK` with a Prometheus exposition.
    static func metrics(_ exposition: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: .ok, headers: [("Content-Type", metricsContentType)], body: exposition)
    }

    /// An error response with a one-line plain-text body saying what is wrong.
    static func error(_ status: HTTPStatus, _ message: String, headers: [(name: String, value: String)] = [])
        -> HTTPResponse
    {
        HTTPResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
                     body: Array("\(status.code) \(status.reason): \(message)\n".utf8))
    }

    /// The response's bytes.
    /// - Parameters:
    ///   - includeBody: `false` for a HEAD request.
    ///   - closing: Whether the connection closes after it (adds `Connection: close`).
    ///   - date: The `Date` header's time (seconds since the epoch).
    /// - Returns: Status line, headers and (unless `includeBody` is false) body.
    func serialized(includeBody: Bool, closing: Bool, date: Int = time(nil)) -> [UInt8] {
        var head = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        head += "Date: \(Self.imfFixdate(date))\r\n"
        if closing { head += "Connection: close\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if includeBody { bytes += body }
        return bytes
    }

    /// A time as HTTP's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), which RFC 9110 asks an origin server with
    /// a clock to send. Corresponds to `gmtime_r` and `strftime` in the C locale's names (the daemon never calls
    /// `setlocale`).
    static func imfFixdate(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
