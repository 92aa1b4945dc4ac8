import Testing
import TaskShedProtocol

/// GET_METRICS / METRICS (version 3, PROTOCOL.md 6.19) beyond what the generic vector and round-trip tests check.
@Suite("Metrics on the wire")
struct MetricsWireTests {
    @Test func theMetricsTypesBelongToVersion3() {
        #expect(MessageType.getMetrics.rawValue == 0x001C && MessageType.metrics.rawValue == 0x801C)
        #expect(MessageType.getMetrics.sinceVersion == 3 && MessageType.metrics.sinceVersion == 3)
        #expect(MessageType.getMetrics.isRequest && !MessageType.metrics.isRequest)
    }

    /// As for SUBSCRIBE_AHEAD: a peer that negotiated an older version never heard of these types.
    @Test(arguments: [UInt16(1), 2])
    func theMetricsTypesAreUnknownBeforeVersion3(version: UInt16) throws {
        try expectUnknown(vectorsNamed: ["get_metrics", "metrics"], onVersion: version)
    }

    /// The text is opaque to the codec: any bytes, empty included, come back unchanged.
    @Test func metricsMessagesRoundTrip() {
        let messages: [Message] = [.getMetrics, .metrics([]), .metrics(Array("taskshed_up 1\n".utf8) + [0x00, 0xFF])]
        for message in messages {
            let frame = Frame(requestID: 9, message: message)
            var bytes: [UInt8] = []
            FrameEncoder.encode(frame, into: &bytes, version: 3)
            #expect(decodeWhole(bytes, version: 3) == [.frame(frame), .pending(0)], "\(message)")
        }
    }

    @Test func theVectorsTextIsPrometheusText() throws {
        let vector = try #require(allVectors.first { $0.name == "metrics" })
        guard case .metrics(let text) = try vector.decodeFrame().message else {
            Issue.record("metrics.hex is not a METRICS frame")
            return
        }
        let decoded = try #require(String(validating: text, as: UTF8.self))
        #expect(decoded.hasPrefix("# HELP ") && decoded.hasSuffix("\n"))
    }

    /// A `text` length past the end of the frame names the field.
    @Test func aTruncatedTextNamesItsField() {
        var writer = ByteWriter()
        writer.writeU32(10)
        writer.writeU8(0x23)
        var reader = ByteReader(writer.bytes)
        do {
            let message = try Message.decodePayload(.metrics, from: &reader)
            Issue.record("decoded \(message)")
        } catch {
            #expect(error.code == .malformedMessage && error.field == "text")
        }
    }
}
