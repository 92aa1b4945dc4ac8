import Testing
import TaskShedProtocol

/// GET_HISTORY / HISTORY (version 3): the layouts of PROTOCOL.md 4.7 and 6.18 beyond what the generic vector and
/// round-trip tests already check.
@Suite("Run history on the wire")
struct RunHistoryWireTests {
    @Test func theHistoryTypesBelongToVersion3() {
        #expect(MessageType.getHistory.rawValue == 0x001B && MessageType.history.rawValue == 0x801B)
        #expect(MessageType.getHistory.sinceVersion == 3 && MessageType.history.sinceVersion == 3)
        #expect(MessageType.getHistory.isRequest && !MessageType.history.isRequest)
    }

    /// As for SUBSCRIBE_AHEAD: a peer that negotiated an older version never heard of these types.
    @Test(arguments: [UInt16(1), 2])
    func theHistoryTypesAreUnknownBeforeVersion3(version: UInt16) throws {
        try expectUnknown(vectorsNamed: ["get_history", "get_history.empty", "history"], onVersion: version)
    }

    @Test func historyMessagesRoundTripWithEdgeValues() {
        let full = RunEntry(
            seq: .max, taskID: "é日本🚀", callback: String(repeating: "c", count: 255), attempt: .max,
            scheduledAt: .min, deliveredAt: .max, finishedAt: -1, outcome: .workerDisconnected, then: .deadLettered,
            error: "daemon lost: db-worker-1", workerName: "worker", workerPID: .max, workerUID: 0, daemon: "d")
        let minimal = RunEntry(
            taskID: "", callback: "", attempt: 0, scheduledAt: 0, deliveredAt: nil, finishedAt: 0, outcome: .released,
            then: .retry)
        let messages: [Message] = [
            .getHistory(HistoryQuery()),
            .getHistory(
                HistoryQuery(taskID: "", callback: "x", failedOnly: true, since: .min, limit: .max, before: 0)),
            .history(HistoryPage(runs: [], nextBefore: nil)),
            .history(HistoryPage(runs: [full, minimal, full], nextBefore: .max)),
        ]
        for message in messages {
            let frame = Frame(requestID: 9, message: message)
            var bytes: [UInt8] = []
            FrameEncoder.encode(frame, into: &bytes, version: 3)
            #expect(decodeWhole(bytes, version: 3) == [.frame(frame), .pending(0)], "\(message)")
        }
        for outcome in RunOutcome.allCases {
            for then in RunFollowUp.allCases {
                var entry = minimal
                entry.outcome = outcome
                entry.then = then
                let frame = Frame(requestID: 1, message: .history(HistoryPage(runs: [entry], nextBefore: nil)))
                #expect(decodeWhole(FrameEncoder.encode(frame)) == [.frame(frame), .pending(0)])
            }
        }
    }

    @Test func minimalValuesTakeTheirMinimumEncodedBytes() {
        let minimal = RunEntry(
            taskID: "", callback: "", attempt: 0, scheduledAt: 0, deliveredAt: nil, finishedAt: 0,
            outcome: .succeeded, then: .finished)
        var writer = ByteWriter()
        writer.write(minimal)
        #expect(writer.bytes.count == RunEntry.minimumEncodedBytes)
        writer = ByteWriter()
        writer.write(HistoryQuery(limit: 1))
        #expect(writer.bytes.count == HistoryQuery.minimumEncodedBytes)
        writer = ByteWriter()
        writer.write(HistoryPage(runs: [], nextBefore: nil))
        #expect(writer.bytes.count == HistoryPage.minimumEncodedBytes)
    }

    /// The enumerations of an entry name their field, with the entry's index (PROTOCOL.md section 3).
    @Test(arguments: [("outcome", 6 as UInt8), ("then", 4 as UInt8)])
    func anUnknownEnumerationValueNamesItsField(field: String, value: UInt8) throws {
        let entries = [
            RunEntry(taskID: "a", callback: "b", attempt: 1, scheduledAt: t0, deliveredAt: t0, finishedAt: t0,
                     outcome: .succeeded, then: .finished),
            RunEntry(taskID: "c", callback: "d", attempt: 1, scheduledAt: t0, deliveredAt: nil, finishedAt: t0,
                     outcome: .skipped, then: .nextRun),
        ]
        var bytes = FrameEncoder.encode(Frame(requestID: 3, message: .history(HistoryPage(runs: entries, nextBefore: nil))))
        // The second entry's `outcome` follows its seq, two 1-byte strings, attempt, scheduled_at, an absent
        // delivered_at and finished_at; `then` follows `outcome`.
        var writer = ByteWriter()
        writer.write(entries[0])
        let secondEntry = ProtocolLimits.headerBytes + 4 + writer.bytes.count
        let outcomeAt = secondEntry + 8 + 3 + 3 + 4 + 8 + 1 + 8
        #expect(bytes[outcomeAt] == RunOutcome.skipped.rawValue && bytes[outcomeAt + 1] == RunFollowUp.nextRun.rawValue)
        bytes[field == "outcome" ? outcomeAt : outcomeAt + 1] = value
        let outcomes = decodeWhole(bytes)
        guard case .error(let error) = outcomes.first else {
            Issue.record("decoded: \(outcomes)")
            return
        }
        #expect(error.code == .malformedMessage && !error.isFatal)
        #expect(error.field == "runs[1].\(field)")
        #expect(error.requestID == 3 && error.messageType == MessageType.history.rawValue)
    }

    /// A count of entries that the frame cannot hold is refused before anything is reserved for it.
    @Test func anOversizedRunsCountIsRefusedBeforeAllocating() {
        var writer = ByteWriter()
        writer.writeU32(0x1000_0000)
        writer.writeU8(0)
        var reader = ByteReader(writer.bytes)
        do {
            let page = try reader.read(HistoryPage.self)
            Issue.record("decoded \(page)")
        } catch {
            #expect(error.code == .malformedMessage && error.field == "runs")
            #expect(error.message.contains("cannot fit"))
        }
    }

    @Test func aTruncatedCursorNamesItsField() throws {
        var bytes = FrameEncoder.encode(
            Frame(requestID: 5, message: .getHistory(HistoryQuery(since: t0, limit: 7, before: 99))))
        // Drop the last 4 bytes of `before` and fix the length prefix: the cursor runs past the frame.
        bytes.removeLast(4)
        let length = UInt32(bytes.count - 4)
        bytes.replaceSubrange(0..<4, with: [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF),
                                            UInt8(length & 0xFF)])
        let outcomes = decodeWhole(bytes, accepting: .requests)
        guard case .error(let error) = outcomes.first else {
            Issue.record("decoded: \(outcomes)")
            return
        }
        #expect(error.code == .malformedMessage && error.field == "before")
    }
}
