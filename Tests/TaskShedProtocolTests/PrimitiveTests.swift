import Testing
import TaskShedProtocol

@Suite("Primitives")
struct PrimitiveTests {
    @Test func integersAreBigEndianAndTwosComplement() throws {
        var writer = ByteWriter()
        writer.writeU8(0xAB)
        writer.writeU16(0x0102)
        writer.writeU32(0x0304_0506)
        writer.writeU64(0x0708_090A_0B0C_0D0E)
        writer.writeI64(-2)
        writer.writeBool(true)
        #expect(writer.bytes == [
            0xAB, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x01,
        ])
        var reader = ByteReader(writer.bytes)
        #expect(try reader.readU8() == 0xAB)
        #expect(try reader.readU16() == 0x0102)
        #expect(try reader.readU32() == 0x0304_0506)
        #expect(try reader.readU64() == 0x0708_090A_0B0C_0D0E)
        #expect(try reader.readI64() == -2)
        #expect(try reader.readBool() == true)
        #expect(reader.isAtEnd)
        #expect(throws: ProtocolError.self) { try reader.readU8() }
    }

    @Test func invalidUTF8IsRejectedWhereverItStarts() throws {
        let invalid: [[UInt8]] = [
            Array("abcdefgh".utf8) + [0xC3, 0x28],  // after a whole ASCII word
            [0xC0, 0xAF],  // overlong "/"
            [0xED, 0xA0, 0x80],  // surrogate U+D800
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
            Array("abcdefghijklmnop".utf8) + [0xE2, 0x82],  // truncated sequence at the end
            [0x80],
        ]
        for bytes in invalid {
            var writer = ByteWriter()
            writer.writeU16(UInt16(bytes.count))
            var reader = ByteReader(writer.bytes + bytes)
            #expect(throws: ProtocolError.self) { try reader.readString(field: "s") }
        }
        var writer = ByteWriter()
        writer.writeString("abcdefgh€ß")
        var reader = ByteReader(writer.bytes)
        #expect(try reader.readString() == "abcdefgh€ß")
    }

    @Test func malformedPrimitivesNameTheirFieldAndOffset() throws {
        var reader = ByteReader([0x00, 0x02])
        _ = try reader.readU8()
        do {
            _ = try reader.readBool(field: "paused")
            Issue.record("bool 2 accepted")
        } catch {
            #expect(error.code == .malformedMessage && error.field == "paused" && error.offset == 1)
        }
        reader = ByteReader([0x05])
        do {
            _ = try reader.readOptionalI64(field: "run_at")
            Issue.record("tag 5 accepted")
        } catch {
            #expect(error.field == "run_at" && error.offset == 0)
        }
        reader = ByteReader([0x00, 0x00, 0x00, 0x09, 0x01])
        do {
            _ = try reader.readBytes(field: "kwargs")
            Issue.record("short bytes accepted")
        } catch {
            #expect(error.field == "kwargs" && error.message.contains("truncated"))
        }
        reader = ByteReader([0x01, 0x00])
        _ = try reader.readU8()
        do {
            try reader.expectEnd()
            Issue.record("trailing byte accepted")
        } catch {
            #expect(error.offset == 1 && error.message.contains("trailing"))
        }
    }

    @Test func nestedFieldPathsAreJoined() {
        let error = ProtocolError(code: .malformedMessage, field: "kind", offset: 3, message: "x")
        #expect(error.prefixingField("schedule").prefixingField("tasks[2]").field == "tasks[2].schedule.kind")
        let bare = ProtocolError(code: .malformedMessage, offset: 0, message: "x")
        #expect(bare.prefixingField("ids[1]").field == "ids[1]")
        let indexed = ProtocolError(code: .malformedMessage, field: "[0]", offset: 0, message: "x")
        #expect(indexed.prefixingField("ids").field == "ids[0]")
    }

    @Test func errorCodesRoundTripTheirNames() {
        for code in ErrorCode.allKnown {
            #expect(ErrorCode(name: code.name) == code)
        }
        #expect(ErrorCode(name: "NOPE") == nil)
        #expect(ErrorCode(rawValue: 999).name == "UNKNOWN_999")
        for type in MessageType.allCases {
            #expect(MessageType(name: type.name) == type)
        }
    }
}
