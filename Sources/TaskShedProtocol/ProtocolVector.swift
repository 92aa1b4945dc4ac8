#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A golden frame from `proto-spec/vectors/`: annotated hex with a header saying which way it travels and how a
/// decoder must react to it. The protocol, server and client tests all read the same files through this type.
///
/// File format (`NAME.hex`):
/// ```
/// # direction: client-to-server          (or server-to-client)
/// # message: ACK                         (the frame's type name, or "-" when it has none)
/// # expect: valid                        (or: incomplete | error CODE_NAME | error CODE_NAME fatal)
/// # field: lease.id                      (optional: the field an error names)
/// # version: 2                           (optional: the connection's protocol version, default 1)
/// # description: free text               (optional; any other "# key: value" header lines are kept too)
/// 00 00 00 0e   # length = 14            (hex bytes; everything after '#' is a comment)
/// ```
/// Header lines are the `# key: value` lines before the first line holding hex bytes.
///
/// - Important: Test support: this is the module's only code that touches the file system.
public struct ProtocolVector: Sendable, Hashable {
    /// Which peer sends the bytes.
    public enum Direction: String, Sendable, Hashable {
        /// A request (or a malformed frame a client could send).
        case clientToServer = "client-to-server"
        /// A reply or push.
        case serverToClient = "server-to-client"
    }

    /// How a decoder must react to the bytes.
    public enum Expectation: Sendable, Hashable {
        /// The bytes are exactly one frame that decodes.
        case valid
        /// The bytes are a prefix of a frame: the decoder returns `nil` and keeps them.
        case incomplete
        /// The decoder throws this code; `fatal` says whether the stream is lost.
        case error(ErrorCode, fatal: Bool)
    }

    /// File name without `.hex`.
    public var name: String
    /// Which peer sends it.
    public var direction: Direction
    /// The `message` header: a type name such as "ADD_TASKS", or `nil` for "-".
    public var messageName: String?
    /// What a decoder must do.
    public var expectation: Expectation
    /// The `field` header (the field an error must name), if present.
    public var field: String?
    /// Every header line, by key.
    public var headers: [String: String]
    /// The bytes.
    public var bytes: [UInt8]

    /// The protocol version of the connection the frame travels on: the `version` header, else 1. A type
    /// introduced by a later version than this is `UNKNOWN_MESSAGE_TYPE` there.
    public var connectionVersion: UInt16 { headers["version"].flatMap { UInt16($0) } ?? 1 }

    /// Parses the text of a vector file.
    /// - Parameters:
    ///   - name: The vector's name (file name without `.hex`).
    ///   - text: The file's contents.
    /// - Returns: The vector.
    /// - Throws: `ProtocolVectorError` for a missing or bad header, or a bad hex digit (with the line number).
    public static func parse(name: String, text: String) throws(ProtocolVectorError) -> ProtocolVector {
        var headers: [String: String] = [:]
        var bytes: [UInt8] = []
        var inHeader = true
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Substring(rawLine)
            let data: Substring
            if let hash = line.firstIndex(of: "#") {
                data = line[..<hash]
                if inHeader && data.allSatisfy(\.isWhitespace) {
                    let comment = line[line.index(after: hash)...]
                    if let colon = comment.firstIndex(of: ":") {
                        let key = comment[..<colon].trimmingSpaces()
                        if !key.isEmpty && key.allSatisfy({ $0.isLowercase || $0 == "-" }) {
                            headers[key] = comment[comment.index(after: colon)...].trimmingSpaces()
                        }
                    }
                }
            } else {
                data = line
            }
            var pending: UInt8? = nil
            for character in data {
                if character.isWhitespace {
                    if pending != nil {
                        throw ProtocolVectorError(name: name, line: lineNumber, message: "odd number of hex digits")
                    }
                    continue
                }
                guard let digit = character.hexDigitValue else {
                    throw ProtocolVectorError(
                        name: name, line: lineNumber, message: "'\(character)' is not a hex digit")
                }
                if let high = pending {
                    bytes.append(high << 4 | UInt8(digit))
                    pending = nil
                } else {
                    pending = UInt8(digit)
                }
            }
            if pending != nil {
                throw ProtocolVectorError(name: name, line: lineNumber, message: "odd number of hex digits")
            }
            if !data.allSatisfy(\.isWhitespace) { inHeader = false }
        }
        guard let directionText = headers["direction"], let direction = Direction(rawValue: directionText) else {
            throw ProtocolVectorError(
                name: name, line: 0, message: "header 'direction' must be client-to-server or server-to-client")
        }
        guard let messageText = headers["message"] else {
            throw ProtocolVectorError(name: name, line: 0, message: "header 'message' is missing")
        }
        guard let expectText = headers["expect"] else {
            throw ProtocolVectorError(name: name, line: 0, message: "header 'expect' is missing")
        }
        let words = expectText.split(separator: " ").map(String.init)
        let expectation: Expectation
        switch (words.first, words.count) {
        case ("valid", 1): expectation = .valid
        case ("incomplete", 1): expectation = .incomplete
        case ("error", 2), ("error", 3):
            guard let code = ErrorCode(name: words[1]), words.count == 2 || words[2] == "fatal" else {
                throw ProtocolVectorError(name: name, line: 0, message: "bad 'expect' value '\(expectText)'")
            }
            expectation = .error(code, fatal: words.count == 3)
        default:
            throw ProtocolVectorError(name: name, line: 0, message: "bad 'expect' value '\(expectText)'")
        }
        return ProtocolVector(
            name: name, direction: direction, messageName: messageText == "-" ? nil : messageText,
            expectation: expectation, field: headers["field"], headers: headers, bytes: bytes)
    }

    /// Reads and parses one vector file.
    /// - Parameter path: The file's path; the vector's name is its file name without `.hex`.
    /// - Returns: The vector.
    /// - Throws: `ProtocolVectorError` when the file cannot be read or parsed.
    public static func load(fromPath path: String) throws(ProtocolVectorError) -> ProtocolVector {
        var fileName = path.split(separator: "/").last.map(String.init) ?? path
        if fileName.hasSuffix(".hex") { fileName.removeLast(4) }
        guard let contents = readFile(path) else {
            throw ProtocolVectorError(name: fileName, line: 0, message: "cannot read \(path)")
        }
        return try parse(name: fileName, text: contents)
    }

    /// Reads every `*.hex` file of a directory, sorted by name.
    /// - Parameter directory: The directory (normally `proto-spec/vectors`).
    /// - Returns: The vectors.
    /// - Throws: `ProtocolVectorError` when the directory or a file cannot be read or parsed.
    public static func loadAll(inDirectory directory: String) throws(ProtocolVectorError) -> [ProtocolVector] {
        guard let names = listDirectory(directory) else {
            throw ProtocolVectorError(name: directory, line: 0, message: "cannot list \(directory)")
        }
        var vectors: [ProtocolVector] = []
        for name in names.sorted() where name.hasSuffix(".hex") {
            vectors.append(try load(fromPath: directory + "/" + name))
        }
        return vectors
    }

    /// Loads one vector by name from the repository that holds the calling source file.
    ///
    /// Usage from any test target: `let ack = try ProtocolVector.load(named: "ack")`.
    /// - Parameters:
    ///   - name: The vector's name (file name without `.hex`).
    ///   - filePath: A path inside the repository; defaults to the caller's `#filePath`.
    /// - Returns: The vector.
    /// - Throws: `ProtocolVectorError` when `proto-spec/vectors` is not found or the file cannot be read.
    public static func load(named name: String, filePath: String = #filePath) throws(ProtocolVectorError)
        -> ProtocolVector
    {
        guard let directory = vectorsDirectory(forFilePath: filePath) else {
            throw ProtocolVectorError(name: name, line: 0, message: "no proto-spec/vectors above \(filePath)")
        }
        return try load(fromPath: directory + "/" + name + ".hex")
    }

    /// Loads every vector of the repository that holds the calling source file, sorted by name.
    /// - Parameter filePath: A path inside the repository; defaults to the caller's `#filePath`.
    /// - Returns: The vectors.
    /// - Throws: `ProtocolVectorError` when `proto-spec/vectors` is not found or a file cannot be parsed.
    public static func loadAll(filePath: String = #filePath) throws(ProtocolVectorError) -> [ProtocolVector] {
        guard let directory = vectorsDirectory(forFilePath: filePath) else {
            throw ProtocolVectorError(name: filePath, line: 0, message: "no proto-spec/vectors above \(filePath)")
        }
        return try loadAll(inDirectory: directory)
    }

    /// Decodes the vector's bytes with a fresh decoder for the vector's connection version, for tests in other
    /// layers.
    /// - Returns: The single frame of a valid vector.
    /// - Throws: The decoder's `ProtocolError`, or `ProtocolVectorError` when the bytes are not exactly one frame.
    public func decodeFrame() throws -> Frame {
        var decoder = FrameDecoder()
        decoder.version = connectionVersion
        decoder.append(contentsOf: bytes)
        guard let frame = try decoder.next(), decoder.bufferedByteCount == 0 else {
            throw ProtocolVectorError(name: name, line: 0, message: "the bytes are not exactly one frame")
        }
        return frame
    }

    /// Finds `proto-spec/vectors` by walking up from a source file (pass `#filePath` from a test).
    /// - Parameter filePath: A path inside the repository.
    /// - Returns: The vectors directory, or `nil` if no parent holds `proto-spec/vectors`.
    public static func vectorsDirectory(forFilePath filePath: String) -> String? {
        var components = filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while !components.isEmpty {
            components.removeLast()
            let candidate = components.joined(separator: "/") + "/proto-spec/vectors"
            if listDirectory(candidate) != nil { return candidate }
        }
        return nil
    }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func listDirectory(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// A vector file that cannot be read or parsed.
public struct ProtocolVectorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The vector's name or path.
    public var name: String
    /// The 1-based line at fault, or 0 for the header as a whole.
    public var line: Int
    /// What is wrong.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - name: The vector's name or path.
    ///   - line: The line at fault (0 = header).
    ///   - message: What is wrong.
    public init(name: String, line: Int, message: String) {
        self.name = name
        self.line = line
        self.message = message
    }

    /// `"add_tasks.once:12: odd number of hex digits"`.
    public var description: String { "\(name):\(line): \(message)" }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        var s = self
        while let first = s.first, first.isWhitespace { s.removeFirst() }
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }
}

extension ErrorCode {
    /// The code with the given specification name ("INVALID_ARGUMENT"), if protocol version 1 defines it.
    /// - Parameter name: The upper-snake-case name.
    public init?(name: String) {
        guard let code = ErrorCode.allKnown.first(where: { $0.name == name }) else { return nil }
        self = code
    }
}
