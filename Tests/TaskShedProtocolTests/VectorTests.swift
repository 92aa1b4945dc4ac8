import Testing
import Foundation
import TaskShedProtocol

@Suite("Golden vectors")
struct VectorTests {
    @Test func everyVectorFileParses() throws {
        let vectors = try ProtocolVector.loadAll(inDirectory: vectorsDirectory)
        #expect(vectors.count >= 60)
        #expect(vectors.count == allVectors.count)
    }

    @Test(arguments: validVectors.map(\.name))
    func validVectorDecodesToExpectedFrame(name: String) throws {
        let vector = try #require(allVectors.first { $0.name == name })
        let expected = try #require(expectedFrames[name], "no expected frame for \(name) in ExpectedVectors.swift")
        #expect(decodeWhole(vector.bytes, version: vector.connectionVersion) == [.frame(expected), .pending(0)])
        #expect(vector.messageName == expected.message.type.name)
        #expect(vector.direction == (expected.message.type.isRequest ? .clientToServer : .serverToClient))
    }

    @Test(arguments: validVectors.map(\.name))
    func validVectorReencodesToSameBytes(name: String) throws {
        let vector = try #require(allVectors.first { $0.name == name })
        let expected = try #require(expectedFrames[name])
        var encoded: [UInt8] = []
        FrameEncoder.encode(expected, into: &encoded, version: vector.connectionVersion)
        #expect(encoded == vector.bytes)
        var appended: [UInt8] = [0xAA]
        FrameEncoder.encode(expected, into: &appended, version: vector.connectionVersion)
        #expect(appended == [0xAA] + vector.bytes)
    }

    @Test func everyExpectedFrameHasAVector() {
        let validNames = Set(validVectors.map(\.name))
        for name in expectedFrames.keys.sorted() {
            #expect(validNames.contains(name), "ExpectedVectors.swift names \(name) but no valid vector has that name")
        }
    }

    @Test func everyMessageTypeHasAValidVector() {
        let covered = Set(validVectors.compactMap { $0.messageName })
        for type in MessageType.allCases {
            #expect(covered.contains(type.name), "no valid vector for \(type.name)")
        }
        #expect(MessageType.allCases.count == 39)
    }

    @Test(arguments: errorVectors.map(\.name))
    func errorVectorThrowsItsError(name: String) throws {
        let vector = try #require(allVectors.first { $0.name == name })
        guard case .error(let code, let fatal) = vector.expectation else { return }
        let outcomes = decodeWhole(vector.bytes, accepting: receiverTypes(vector), version: vector.connectionVersion)
        guard case .error(let error) = outcomes.first else {
            Issue.record("\(name): expected \(code.name), got \(outcomes)")
            return
        }
        #expect(error.code == code)
        #expect(error.isFatal == fatal)
        #expect(error.field == vector.field)
        #expect(error.offset >= 0 && error.offset <= vector.bytes.count)
        #expect(!error.message.isEmpty)
        if !fatal {
            // The bad frame was consumed whole; nothing is left over.
            #expect(outcomes.dropFirst() == [.pending(0)])
            // A readable header means the reply can name the request.
            let requestID = UInt32(vector.bytes[8]) << 24 | UInt32(vector.bytes[9]) << 16
                | UInt32(vector.bytes[10]) << 8 | UInt32(vector.bytes[11])
            #expect(error.requestID == requestID)
        }
        if let messageName = vector.messageName, !fatal {
            #expect(error.messageType == MessageType(name: messageName)?.rawValue)
        }
    }

    @Test(arguments: incompleteVectors.map(\.name))
    func incompleteVectorNeedsMoreBytes(name: String) throws {
        let vector = try #require(allVectors.first { $0.name == name })
        #expect(decodeWhole(vector.bytes) == [.pending(vector.bytes.count)])
    }

    @Test func decodingIsTheSameByteByByteAndWhole() {
        for vector in allVectors {
            #expect(decodeByteByByte(vector.bytes) == decodeWhole(vector.bytes), "\(vector.name)")
            let types = receiverTypes(vector)
            #expect(decodeByteByByte(vector.bytes, accepting: types) == decodeWhole(vector.bytes, accepting: types),
                    "\(vector.name)")
        }
    }

    /// A server's decoder decodes every request vector as any decoder does, and refuses every reply and push
    /// vector by its type (PROTOCOL.md section 2: a client must not send them).
    @Test func aRequestOnlyDecoderRefusesReplyTypesByTheirType() {
        for vector in validVectors {
            let outcomes = decodeWhole(vector.bytes, accepting: .requests)
            if vector.direction == .clientToServer {
                #expect(outcomes == decodeWhole(vector.bytes), "\(vector.name)")
                continue
            }
            guard case .error(let error) = outcomes.first else {
                Issue.record("\(vector.name): decoded by a server's decoder: \(outcomes)")
                continue
            }
            #expect(error.code == .unknownMessageType && !error.isFatal && error.offset == 4, "\(vector.name)")
            #expect(outcomes.dropFirst() == [.pending(0)], "\(vector.name)")
        }
    }

    @Test func concatenatedVectorsDecodeInOrder() {
        // Every vector after which the stream goes on, then one fatal vector to end it.
        let fatal = allVectors.first { $0.name == "bad.flags" }
        let sequence = streamableVectors + (fatal.map { [$0] } ?? [])
        let stream = sequence.flatMap(\.bytes)
        var expected: [Outcome] = []
        for vector in sequence {
            expected += decodeWhole(vector.bytes).filter { if case .pending = $0 { false } else { true } }
        }
        #expect(expected.count == sequence.count)
        let whole = decodeWhole(stream)
        let byteByByte = decodeByteByByte(stream)
        #expect(whole == expected)
        #expect(byteByByte == expected)
        // Odd chunk sizes cross every kind of boundary.
        for size in [2, 3, 5, 7, 13, 64, 1000] {
            let chunks = stride(from: 0, to: stream.count, by: size).map {
                Array(stream[$0..<min($0 + size, stream.count)])
            }
            #expect(decodeStream(chunks) == expected, "chunk size \(size)")
        }
    }

    @Test func vectorDirectionMatchesMessageType() {
        for vector in allVectors {
            guard let name = vector.messageName else { continue }
            let type = MessageType(name: name)
            #expect(type != nil, "\(vector.name): unknown message \(name)")
            if let type, vector.expectation == .valid {
                #expect(vector.direction == (type.isRequest ? .clientToServer : .serverToClient), "\(vector.name)")
            }
        }
    }

    @Test func specificationAndVectorFolderNameTheSameVectors() throws {
        let specPath = vectorsDirectory + "/../PROTOCOL.md"
        let spec = try #require(readText(specPath), "cannot read \(specPath)")
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.")
        let tokens = spec.split(whereSeparator: { !allowed.contains($0) }).map(String.init)
        let named = Set(tokens.filter { $0.hasSuffix(".hex") && $0.count > 4 }.map { String($0.dropLast(4)) })
        let files = Set(allVectors.map(\.name))
        for name in named.subtracting(files).sorted() {
            Issue.record("PROTOCOL.md names \(name).hex but proto-spec/vectors has no such file")
        }
        for name in files.subtracting(named).sorted() {
            Issue.record("proto-spec/vectors/\(name).hex is not named in PROTOCOL.md")
        }
        #expect(!named.isEmpty)
    }
}

@Suite("Vector file format")
struct VectorFormatTests {
    @Test func parsesHeaderBytesAndComments() throws {
        let text = """
            # direction: server-to-client
            # message: OK
            # expect: valid
            # description: a: b
            # header
            00 00 00 08   # length = 8
            80 03         # type
            0000 00000001 # flags and request id, digits grouped freely
            """
        let vector = try ProtocolVector.parse(name: "x", text: text)
        #expect(vector.direction == .serverToClient)
        #expect(vector.messageName == "OK")
        #expect(vector.expectation == .valid)
        #expect(vector.headers["description"] == "a: b")
        #expect(vector.bytes == [0, 0, 0, 8, 0x80, 0x03, 0, 0, 0, 0, 0, 1])
    }

    @Test func parsesErrorExpectations() throws {
        let fatal = try ProtocolVector.parse(
            name: "x", text: "# direction: client-to-server\n# message: -\n# expect: error FRAME_TOO_LARGE fatal\n")
        #expect(fatal.expectation == .error(.frameTooLarge, fatal: true))
        #expect(fatal.messageName == nil)
        let nonFatal = try ProtocolVector.parse(
            name: "x", text: "# direction: client-to-server\n# message: ACK\n# expect: error MALFORMED_MESSAGE\n")
        #expect(nonFatal.expectation == .error(.malformedMessage, fatal: false))
    }

    @Test func rejectsBadFiles() {
        let header = "# direction: client-to-server\n# message: PING\n# expect: valid\n"
        #expect(throws: ProtocolVectorError.self) { try ProtocolVector.parse(name: "x", text: header + "0g\n") }
        #expect(throws: ProtocolVectorError.self) { try ProtocolVector.parse(name: "x", text: header + "000\n") }
        #expect(throws: ProtocolVectorError.self) {
            try ProtocolVector.parse(name: "x", text: "# message: PING\n# expect: valid\n")
        }
        #expect(throws: ProtocolVectorError.self) {
            try ProtocolVector.parse(
                name: "x", text: "# direction: client-to-server\n# message: PING\n# expect: error NOPE\n")
        }
        #expect(throws: ProtocolVectorError.self) { try ProtocolVector.load(fromPath: "/nonexistent/x.hex") }
    }
}

@Suite("Vector loading for other test targets")
struct VectorLoadingTests {
    @Test func loadsByNameFromTheCallersRepository() throws {
        let ack = try ProtocolVector.load(named: "ack")
        #expect(try ack.decodeFrame() == Frame(requestID: 20, message: .ack(LeaseRef(id: "t2", attempt: 1))))
        #expect(try ProtocolVector.loadAll().count == allVectors.count)
        #expect(throws: ProtocolVectorError.self) { try ProtocolVector.load(named: "no-such-vector") }
        #expect(throws: (any Error).self) { try ProtocolVector.load(named: "incomplete.header").decodeFrame() }
    }
}

@Suite("Specification tables agree with the module")
struct SpecificationTableTests {
    /// The cells of every Markdown table row of PROTOCOL.md.
    static func tableRows() -> [[String]] {
        guard let spec = readText(vectorsDirectory + "/../PROTOCOL.md") else { return [] }
        return spec.split(separator: "\n").filter { $0.hasPrefix("|") }.map { line in
            line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map {
                $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "")
            }
        }
    }

    @Test func messageTableListsEveryTypeWithItsCode() {
        var listed: [String: String] = [:]
        for row in Self.tableRows() where row.count == 5 && row[0].hasPrefix("0x") {
            listed[row[1]] = row[0].lowercased()
        }
        for type in MessageType.allCases {
            let code = "0x" + String(repeating: "0", count: 4 - String(type.rawValue, radix: 16).count)
                + String(type.rawValue, radix: 16)
            #expect(listed[type.name] == code, "\(type.name) should be listed as \(code)")
            let direction = Self.tableRows().first { $0.count == 5 && $0[1] == type.name }?[2]
            #expect(direction == (type.isRequest ? "C→S" : "S→C"), "\(type.name) direction")
        }
        #expect(listed.count == MessageType.allCases.count)
    }

    @Test func errorTableMatchesErrorCode() {
        var rows: [String: [String]] = [:]
        for row in Self.tableRows() where row.count == 5 && Int(row[0]) != nil {
            rows[row[1]] = row
        }
        for code in ErrorCode.allKnown {
            guard let row = rows[code.name] else {
                Issue.record("\(code.name) is missing from the error table")
                continue
            }
            #expect(row[0] == String(code.rawValue), "\(code.name) code")
            #expect(row[2] == (code.isRetriable ? "yes" : "no"), "\(code.name) retriable")
            #expect(row[3] == (code.closesConnection ? "yes" : "no"), "\(code.name) closes")
        }
        #expect(rows.count == ErrorCode.allKnown.count)
    }
}
