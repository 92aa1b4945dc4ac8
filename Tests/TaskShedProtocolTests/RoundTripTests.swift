import Testing
import TaskShedProtocol

@Suite("Round trips of random messages")
struct RoundTripTests {
    @Test(arguments: MessageType.allCases)
    func randomMessagesOfEveryTypeRoundTrip(type: MessageType) {
        var generator = MessageGenerator(seed: 0x7A5C_5ED0 ^ UInt64(type.rawValue))
        for _ in 0..<60 {
            let frame = Frame(requestID: generator.u32(), message: generator.message(type))
            #expect(frame.message.type == type)
            let bytes = FrameEncoder.encode(frame)
            #expect(decodeWhole(bytes) == [.frame(frame), .pending(0)])
        }
    }

    @Test func randomStreamsRoundTripInRandomChunks() {
        var generator = MessageGenerator(seed: 42)
        var chunker = SplitMix64(seed: 7)
        for _ in 0..<20 {
            let frames = (0..<40).map { _ in generator.frame() }
            var stream: [UInt8] = []
            for frame in frames { FrameEncoder.encode(frame, into: &stream) }
            var chunks: [[UInt8]] = []
            var index = 0
            while index < stream.count {
                let size = Int.random(in: 1...(Bool.random(using: &chunker) ? 16 : 4096), using: &chunker)
                chunks.append(Array(stream[index..<min(index + size, stream.count)]))
                index += size
            }
            #expect(decodeStream(chunks) == frames.map { .frame($0) } + [.pending(0)])
        }
    }

    @Test func generatorCoversEveryMessageType() {
        var generator = MessageGenerator(seed: 1)
        var seen = Set<MessageType>()
        for _ in 0..<2000 { seen.insert(generator.frame().message.type) }
        #expect(seen == Set(MessageType.allCases))
    }

    @Test func recordsRoundTripThroughByteWriterAndReader() throws {
        var generator = MessageGenerator(seed: 99)
        for _ in 0..<200 {
            let record = generator.record()
            var writer = ByteWriter()
            writer.write(record)
            writer.writeU8(0xEE)
            var reader = ByteReader(writer.bytes)
            #expect(try reader.read(TaskRecord.self) == record)
            #expect(try reader.readU8() == 0xEE)
            #expect(reader.isAtEnd)
        }
    }

    @Test func aRecordsEncodedByteCountIsWhatItsEncodingWrites() {
        var generator = MessageGenerator(seed: 7)
        for _ in 0..<500 {
            var record = generator.record()
            // Strings past the u16 prefix are cut when written: the count must say the same.
            if generator.int(0...9) == 0 { record.lastError = String(repeating: "é", count: 40_000) }
            var writer = ByteWriter()
            writer.write(record)
            #expect(record.encodedByteCount == writer.bytes.count)
        }
    }

    @Test func stringsLongerThanTheLengthPrefixAreCutOnAScalarBoundary() throws {
        // 21,845 three-byte scalars = 65,535 bytes fit; one more does not and must be dropped whole.
        let fits = String(repeating: "€", count: 21_845)
        let tooLong = fits + "€"
        var writer = ByteWriter()
        writer.writeString(tooLong)
        var reader = ByteReader(writer.bytes)
        #expect(try reader.readString() == fits)
        // A 4-byte scalar straddling the limit is dropped too.
        let straddling = String(repeating: "a", count: 65_533) + "😀"
        writer = ByteWriter()
        writer.writeString(straddling)
        reader = ByteReader(writer.bytes)
        #expect(try reader.readString() == String(repeating: "a", count: 65_533))
    }
}
