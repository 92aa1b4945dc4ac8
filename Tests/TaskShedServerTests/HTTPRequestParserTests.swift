import Testing
@testable import TaskShedServer

/// The libhttp-parser wrapper of the metrics endpoint: every request decodes the same whole, byte by byte and
/// pipelined; the limits and refusals come out as their errors.
@Suite struct HTTPRequestParserTests {
    /// Feeds `chunks` one at a time and collects the requests `next()` gives after each.
    static func parse(_ chunks: [[UInt8]], maxHeadBytes: Int = HTTPRequestParser.defaultMaxHeadBytes) throws(HTTPRequestError)
        -> [HTTPRequest]
    {
        let parser = HTTPRequestParser(maxHeadBytes: maxHeadBytes)
        var requests: [HTTPRequest] = []
        for chunk in chunks {
            parser.append(chunk)
            while let request = try parser.next() { requests.append(request) }
        }
        return requests
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// `text` whole, byte by byte, and split at every offset into two pieces.
    static func splits(_ text: String) -> [[[UInt8]]] {
        let all = bytes(text)
        var result: [[[UInt8]]] = [[all], all.map { [$0] }]
        for cut in 1..<all.count { result.append([Array(all[..<cut]), Array(all[cut...])]) }
        return result
    }

    static let scrape = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nAccept: text/plain\r\n"
        + "User-Agent: Prometheus/2.45.0\r\n\r\n"

    @Test func aScrapeDecodesTheSameWholeByteByByteAndSplitAnywhere() throws {
        let expected = HTTPRequest(method: "GET", target: "/metrics", path: "/metrics", versionMajor: 1,
                                   versionMinor: 1, keepAlive: true, isUpgrade: false)
        for chunks in Self.splits(Self.scrape) {
            #expect(try Self.parse(chunks) == [expected])
        }
    }

    @Test func pipelinedRequestsComeOneAtATimeInOrder() throws {
        let parser = HTTPRequestParser()
        parser.append(Self.bytes(Self.scrape + "HEAD /metrics?a=1 HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nConnection: close\r\n\r\nGET /par"))
        #expect(try parser.next()?.method == "GET")
        // The rest stays buffered until the caller asks again (after it answered the first).
        #expect(parser.hasBufferedBytes)
        let head = try #require(try parser.next())
        #expect(head.method == "HEAD" && head.path == "/metrics" && head.target == "/metrics?a=1")
        let last = try #require(try parser.next())
        #expect(last.path == "/x" && !last.keepAlive)
        #expect(try parser.next() == nil)
        #expect(!parser.hasBufferedBytes)
        #expect(parser.isInsideRequest, "a partial request was parsed")
        parser.append(Self.bytes("tial HTTP/1.1\r\n\r\n"))
        #expect(try parser.next()?.path == "/partial")
        #expect(!parser.isInsideRequest)
    }

    @Test(arguments: [
        ("GET /metrics HTTP/1.1\r\n\r\n", true),
        ("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        ("GET /metrics HTTP/1.0\r\n\r\n", false),
        ("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ("GET /metrics HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false),
    ])
    func keepAliveFollowsHTTP11(text: String, keepAlive: Bool) throws {
        #expect(try Self.parse([Self.bytes(text)]).map(\.keepAlive) == [keepAlive])
    }

    @Test(arguments: [
        ("/metrics", "/metrics"), ("/metrics?name[]=up&x=%20", "/metrics"), ("/metrics#top", "/metrics"),
        ("http://127.0.0.1:9464/metrics?x", "/metrics"), ("/metrics/", "/metrics/"), ("/", "/"), ("*", "*"),
    ])
    func thePathIsTheTargetWithoutQuery(target: String, path: String) throws {
        let method = target == "*" ? "OPTIONS" : "GET"
        let requests = try Self.parse([Self.bytes("\(method) \(target) HTTP/1.1\r\n\r\n")])
        #expect(requests.map(\.path) == [path])
        #expect(requests.map(\.target) == [target])
    }

    /// The head may have exactly `maxHeadBytes`, not one more, however the bytes arrive.
    @Test func theHeadLimitIsExactWholeAndByteByByte() throws {
        let start = "GET /metrics HTTP/1.1\r\nX-Pad: "
        let end = "\r\n\r\n"
        let fits = start + String(repeating: "a", count: 256 - start.utf8.count - end.utf8.count) + end
        #expect(fits.utf8.count == 256)
        let over = start + String(repeating: "a", count: 257 - start.utf8.count - end.utf8.count) + end
        for chunks in [[Self.bytes(fits)], Self.bytes(fits).map { [$0] }] {
            #expect(try Self.parse(chunks, maxHeadBytes: 256).count == 1)
        }
        for chunks in [[Self.bytes(over)], Self.bytes(over).map { [$0] }] {
            #expect(throws: HTTPRequestError(code: .headTooLarge, detail: "the request line and headers pass 256 bytes")) {
                try Self.parse(chunks, maxHeadBytes: 256)
            }
        }
        // The default: a 10 KiB header is refused with 431 before the parser's own 80 KiB limit.
        let big = "GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "b", count: 10 * 1024) + "\r\n\r\n"
        do {
            _ = try Self.parse([Self.bytes(big)])
            Issue.record("a 10 KiB header was accepted")
        } catch {
            #expect(error.code == .headTooLarge)
            #expect(error.status.code == 431)
        }
    }

    @Test(arguments: [
        "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "GET /metrics HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ])
    func aBodyIsRefusedBeforeAnyOfItIsRead(text: String) {
        do {
            _ = try Self.parse([Self.bytes(text)])
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .bodyNotAllowed)
            #expect(error.status.code == 413)
        }
    }

    @Test func anEmptyBodyIsNoBody() throws {
        let requests = try Self.parse([Self.bytes("GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")])
        #expect(requests.map(\.path) == ["/metrics"])
    }

    @Test(arguments: [
        // (Debian builds the library without HTTP_PARSER_STRICT: it reads "HTTX/1.1" as HTTP/1.1.)
        "\u{0}\u{1}garbage\r\n\r\n", "GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n", "GET /metrics HTTP/1.x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /met rics HTTP/1.1\r\n\r\n",
    ])
    func malformedRequestsAreBadRequestsAndTheErrorSticks(text: String) throws {
        let parser = HTTPRequestParser()
        parser.append(Self.bytes(text))
        var first: HTTPRequestError?
        do {
            _ = try parser.next()
            Issue.record("accepted: \(text.debugDescription)")
        } catch {
            first = error
        }
        let error = try #require(first)
        #expect(error.status.code == 400 || error.status.code == 413, "\(error)")
        // The parser is spent: more bytes, even a good request, give the same error.
        parser.append(Self.bytes(Self.scrape))
        #expect(throws: error) { try parser.next() }
    }

    @Test(arguments: ["GET /metrics HTTP/2.0\r\n\r\n", "GET /metrics\r\n\r\n"])
    func otherMajorVersionsAreNotServed(text: String) {
        #expect(throws: HTTPRequestError.self) { try Self.parse([Self.bytes(text)]) }
        do {
            _ = try Self.parse([Self.bytes(text)])
        } catch {
            #expect(error.code == .versionNotSupported)
            #expect(error.status.code == 505)
        }
    }

    @Test func bytesAfterAnUpgradeRequestAreNotParsed() throws {
        let parser = HTTPRequestParser()
        parser.append(Self.bytes("GET /metrics HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\u{0}\u{0}binary"))
        let request = try #require(try parser.next())
        #expect(request.isUpgrade && !request.keepAlive)
        #expect(try parser.next() == nil)
    }

    @Test func otherMethodsParseForTheCallerToRefuse() throws {
        let methods = try Self.parse([Self.bytes("DELETE /metrics HTTP/1.1\r\n\r\nOPTIONS /metrics HTTP/1.1\r\n\r\n")])
        #expect(methods.map(\.method) == ["DELETE", "OPTIONS"])
    }

    @Test func responsesCarryLengthDateAndCloseAndHeadOmitsTheBody() {
        let response = HTTPResponse.metrics(Array("up 1\n".utf8))
        let get = String(decoding: response.serialized(includeBody: true, closing: false, date: 784_111_777), as: UTF8.self)
        #expect(get == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                + "Content-Length: 5\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nup 1\n")
        let head = String(decoding: response.serialized(includeBody: false, closing: true, date: 784_111_777),
                          as: UTF8.self)
        #expect(head.hasSuffix("Content-Length: 5\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n"))
    }
}
