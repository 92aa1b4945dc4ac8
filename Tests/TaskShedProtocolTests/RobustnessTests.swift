import Testing
@testable import TaskShedProtocol

/// Checks one decoded stream: every error has a decoder code, only the last outcome may be fatal, and every
/// frame re-encodes to exactly the bytes it was decoded from (the encoding is canonical: one byte sequence per
/// value), which catches a decoder that silently accepts something it should not.
func checkOutcomes(_ outcomes: [Outcome], of bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    let decoderCodes: Set<ErrorCode> = [.malformedFrame, .frameTooLarge, .unknownMessageType, .malformedMessage]
    var position = 0
    for (index, outcome) in outcomes.enumerated() {
        switch outcome {
        case .frame(let frame):
            let encoded = FrameEncoder.encode(frame)
            let end = min(position + encoded.count, bytes.count)
            #expect(Array(bytes[position..<end]) == encoded, "frame is not canonical", sourceLocation: sourceLocation)
            position = end
        case .error(let error):
            #expect(decoderCodes.contains(error.code), "\(error)", sourceLocation: sourceLocation)
            #expect(error.isFatal == (error.code == .malformedFrame || error.code == .frameTooLarge),
                    sourceLocation: sourceLocation)
            if error.isFatal {
                #expect(index == outcomes.count - 1, sourceLocation: sourceLocation)
                return
            }
            // A non-fatal error consumed exactly one frame whose length prefix we can read back.
            if position + 4 <= bytes.count {
                let length = Int(bytes[position]) << 24 | Int(bytes[position + 1]) << 16
                    | Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
                position += 4 + length
            }
        case .pending(let count):
            #expect(count == bytes.count - position, sourceLocation: sourceLocation)
        }
    }
}

@Suite("Decoder robustness")
struct RobustnessTests {
    @Test func everyTruncationNeedsMoreBytesOrFailsTyped() {
        for vector in allVectors {
            for cut in 0..<vector.bytes.count {
                let prefix = Array(vector.bytes[0..<cut])
                let outcomes = decodeWhole(prefix)
                checkOutcomes(outcomes, of: prefix)
                for outcome in outcomes {
                    if case .frame = outcome {
                        Issue.record("\(vector.name) cut at \(cut) decoded to a frame")
                    }
                }
                if vector.expectation == .valid {
                    #expect(outcomes == [.pending(cut)], "\(vector.name) cut at \(cut)")
                }
            }
        }
    }

    @Test func everyTruncatedPayloadWithAFixedLengthIsAMalformedMessage() {
        for vector in validVectors {
            let payloadCount = vector.bytes.count - ProtocolLimits.headerBytes
            for keep in 0..<payloadCount {
                var bytes = Array(vector.bytes[0..<(ProtocolLimits.headerBytes + keep)])
                let length = UInt32(8 + keep)
                bytes[0] = UInt8(length >> 24)
                bytes[1] = UInt8(truncatingIfNeeded: length >> 16)
                bytes[2] = UInt8(truncatingIfNeeded: length >> 8)
                bytes[3] = UInt8(truncatingIfNeeded: length)
                let outcomes = decodeWhole(bytes)
                guard case .error(let error) = outcomes.first else {
                    Issue.record("\(vector.name) with \(keep) payload bytes decoded: \(outcomes)")
                    continue
                }
                #expect(error.code == .malformedMessage && !error.isFatal, "\(vector.name) keep \(keep)")
                #expect(error.offset >= ProtocolLimits.headerBytes && error.offset <= bytes.count)
                #expect(outcomes.dropFirst() == [.pending(0)])
            }
        }
    }

    @Test func seededRandomBitFlipsNeverCrash() {
        var rng = SplitMix64(seed: 0xB17F_11B5)
        let sources = streamableVectors
        for _ in 0..<20_000 {
            var bytes = sources[Int.random(in: 0..<sources.count, using: &rng)].bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let bit = Int.random(in: 0..<(bytes.count * 8), using: &rng)
                bytes[bit / 8] ^= 1 << UInt8(bit % 8)
            }
            let whole = decodeWhole(bytes)
            checkOutcomes(whole, of: bytes)
            if Int.random(in: 0..<20, using: &rng) == 0 {
                #expect(decodeByteByByte(bytes) == whole)
            }
        }
    }

    @Test func seededRandomLengthsAndGarbageNeverCrash() {
        var rng = SplitMix64(seed: 0x1E57_0001)
        let sources = streamableVectors
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                // A real frame with a random length prefix (often slightly off, sometimes wild).
                bytes = sources[Int.random(in: 0..<sources.count, using: &rng)].bytes
                let real = bytes.count - 4
                let length =
                    Bool.random(using: &rng)
                    ? UInt32(clamping: max(0, real + Int.random(in: -12...12, using: &rng)))
                    : UInt32.random(in: 0...UInt32.max, using: &rng)
                bytes.replaceSubrange(0..<4, with: [
                    UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16),
                    UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
                ])
                bytes += (0..<Int.random(in: 0...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                // A plausible header (known type, zero flags) with a random payload.
                let type = MessageType.allCases[Int.random(in: 0..<MessageType.allCases.count, using: &rng)]
                let payload = (0..<Int.random(in: 0...200, using: &rng)).map { _ in
                    UInt8.random(in: 0...3, using: &rng) == 0 ? UInt8.random(in: 0...255, using: &rng) : 0
                }
                var writer = ByteWriter()
                writer.writeU32(UInt32(8 + payload.count))
                writer.writeU16(type.rawValue)
                writer.writeU16(0)
                writer.writeU32(UInt32(round))
                bytes = writer.bytes + payload
            }
            checkOutcomes(decodeWhole(bytes), of: bytes)
        }
    }

    @Test func oversizeLengthIsRejectedAfterFourBytes() {
        var decoder = FrameDecoder()
        decoder.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ProtocolError.self) { try decoder.next() }
        do {
            _ = try decoder.next()
        } catch {
            #expect(error.code == .frameTooLarge && error.isFatal && error.offset == 0)
        }
        #expect(decoder.hasFailed)
        // The failure is sticky: more bytes do not revive the stream.
        decoder.append(contentsOf: FrameEncoder.encode(Frame(requestID: 1, message: .ping)))
        #expect(throws: ProtocolError.self) { try decoder.next() }
    }

    @Test func hugeAcceptedLengthBuffersOnlyTheBytesReceived() throws {
        // Even when the limit allows a 4 GiB frame, the decoder sizes nothing from the length prefix.
        var decoder = FrameDecoder(maxFrameBytes: .max)
        decoder.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xF0, 0x00, 0x10, 0x00, 0x00, 0, 0, 0, 1, 0x01])
        #expect(try decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 13)
        #expect(decoder.buffer.capacity < 4096)
    }

    @Test func hugeListCountAllocatesNothing() {
        // 0xFFFFFFFF elements claimed in a 5-byte payload: rejected by the remaining-bytes bound.
        var writer = ByteWriter()
        writer.writeU32(0xFFFF_FFFF)
        var reader = ByteReader(writer.bytes)
        #expect(throws: ProtocolError.self) {
            _ = try reader.readList(field: "ids", minElementBytes: 2) { (r: inout ByteReader) throws(ProtocolError) in
                try r.readString()
            }
        }
    }

    @Test func streamGoesOnAfterNonFatalErrors() throws {
        let unknown: [UInt8] = [0, 0, 0, 9, 0x7F, 0x00, 0, 0, 0, 0, 0, 5, 0xAB]
        let ping = FrameEncoder.encode(Frame(requestID: 6, message: .ping))
        let outcomes = decodeWhole(unknown + ping)
        #expect(outcomes.count == 3)
        guard case .error(let error) = outcomes[0] else {
            Issue.record("expected an error, got \(outcomes)")
            return
        }
        #expect(error.code == .unknownMessageType && !error.isFatal && error.requestID == 5)
        #expect(error.messageType == 0x7F00)
        #expect(outcomes[1] == .frame(Frame(requestID: 6, message: .ping)))
    }

    @Test func longPipelinedStreamsCompactTheBuffer() throws {
        var decoder = FrameDecoder()
        let frame = Frame(requestID: 1, message: .ack(LeaseRef(id: String(repeating: "a", count: 200), attempt: 1)))
        let bytes = FrameEncoder.encode(frame)
        var decoded = 0
        for round in 0..<2_000 {
            // Keep a partial frame buffered across appends so the read index advances without emptying.
            decoder.append(contentsOf: bytes + bytes[0..<(round % 50)])
            while let next = try decoder.next() {
                #expect(next == frame)
                decoded += 1
            }
            decoder.append(contentsOf: bytes[(round % 50)...])
            while let next = try decoder.next() {
                #expect(next == frame)
                decoded += 1
            }
        }
        #expect(decoded == 4_000)
        #expect(decoder.bufferedByteCount == 0)
        #expect(decoder.buffer.capacity < 1 << 20)
    }

    @Test func errorsNameFieldOffsetAndRequest() throws {
        // ADD_TASKS whose second task has an unknown schedule kind.
        var good = ByteWriter()
        AddTasks(tasks: [TaskSpec(callback: "a"), TaskSpec(callback: "b")]).encode(to: &good)
        var payload = good.bytes
        // tasks[1] starts after on_conflict (1) + count (4) + tasks[0] (20 + 1 byte callback); its kind byte
        // follows id tag (1) + callback (2 + 1) + run_at tag (1).
        let kindIndex = 1 + 4 + 21 + 1 + 3 + 1
        #expect(payload[kindIndex] == 0)
        payload[kindIndex] = 9
        var frame = ByteWriter()
        frame.writeU32(UInt32(8 + payload.count))
        frame.writeU16(MessageType.addTasks.rawValue)
        frame.writeU16(0)
        frame.writeU32(77)
        let bytes = frame.bytes + payload
        guard case .error(let error) = decodeWhole(bytes).first else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == .malformedMessage)
        #expect(error.field == "tasks[1].schedule.kind")
        #expect(error.offset == 12 + kindIndex)
        #expect(error.requestID == 77)
        #expect(error.messageType == MessageType.addTasks.rawValue)
        #expect(error.message.contains("unknown schedule kind 9"))
        #expect(error.description.contains("tasks[1].schedule.kind"))
        let reply = error.errorReply
        #expect(reply.code == .malformedMessage && reply.field == "tasks[1].schedule.kind")
    }
}

@Suite("Saved fuzzer inputs")
struct FuzzCorpusTests {
    @Test func savedCrashInputsDecodeWithoutCrashing() {
        for (name, bytes) in fuzzCrashInputs() {
            let whole = decodeWhole(bytes)
            checkOutcomes(whole, of: bytes)
            #expect(decodeByteByByte(bytes) == whole, "\(name)")
        }
    }
}

/// Frames of `FrameDecoder.largeFrameBytes` and more are gathered in chunks as they arrive and can be taken out
/// undecoded (a server decodes them off its loop): both paths must give what a whole-buffer decode gives.
@Suite("Large frames")
struct LargeFrameDecodingTests {
    /// A stream of a PING, an ADD_TASKS of about `bytes` bytes, and another PING.
    static func stream(bytes: Int) -> (bytes: [UInt8], add: Frame) {
        let kwargs = Array(("{\"pad\":\"" + String(repeating: "k", count: 1000) + "\"}").utf8)
        let specs = (0..<(bytes / 1050)).map { TaskSpec(id: "t\($0)", callback: "c", runAt: 1, kwargs: kwargs) }
        let add = Frame(requestID: 2, message: .addTasks(AddTasks(tasks: specs)))
        let bytes = FrameEncoder.encode(Frame(requestID: 1, message: .ping)) + FrameEncoder.encode(add)
            + FrameEncoder.encode(Frame(requestID: 3, message: .ping))
        return (bytes, add)
    }

    @Test(arguments: [1, 4_096, 65_536, 262_144, 3_000_000])
    func aLargeFrameDecodesTheSameInChunksOfAnySize(chunkSize: Int) {
        let (bytes, add) = Self.stream(bytes: 2_500_000)
        let chunks = stride(from: 0, to: bytes.count, by: chunkSize).map { Array(bytes[$0..<min(bytes.count, $0 + chunkSize)]) }
        let outcomes = decodeStream(chunks)
        #expect(outcomes == [.frame(Frame(requestID: 1, message: .ping)), .frame(add),
                             .frame(Frame(requestID: 3, message: .ping)), .pending(0)])
    }

    @Test func aTakenFrameDecodesLikeNextAndLeavesTheRest() throws {
        for size in [300_000, 2_500_000] {
            let (bytes, add) = Self.stream(bytes: size)
            var decoder = FrameDecoder()
            var seen: [Frame] = []
            var taken = 0
            for start in stride(from: 0, to: bytes.count, by: 100_000) {
                decoder.append(contentsOf: bytes[start..<min(bytes.count, start + 100_000)])
                while true {
                    if let raw = decoder.takeFrame(ifAtLeast: 200_000) {
                        #expect(raw.byteCount == FrameEncoder.encode(add).count)
                        seen.append(try raw.decode())
                        taken += 1
                        continue
                    }
                    guard let frame = try decoder.next() else { break }
                    seen.append(frame)
                }
            }
            #expect(taken == 1)
            #expect(seen == [Frame(requestID: 1, message: .ping), add, Frame(requestID: 3, message: .ping)])
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func aSmallFrameIsNotTaken() {
        var decoder = FrameDecoder()
        decoder.append(contentsOf: FrameEncoder.encode(Frame(requestID: 1, message: .ping)))
        #expect(decoder.takeFrame(ifAtLeast: 1_000) == nil)
        #expect(decoder.bufferedByteCount == 12)
    }

    @Test func aPartlyReceivedLargeFrameCountsItsBytes() {
        let (bytes, _) = Self.stream(bytes: 2_500_000)
        var decoder = FrameDecoder()
        decoder.append(contentsOf: bytes[0..<1_500_000])
        while (try? decoder.next()) != nil {}
        #expect(decoder.bufferedByteCount == 1_500_000 - 12)
        #expect(decoder.takeFrame(ifAtLeast: 1) == nil)
    }
}
