import Foundation
import Glibc
import Logging
import Testing
@testable import TaskShedServer

/// `--log-format json`: every line parses as one JSON object with the fixed fields and all metadata.
@Suite struct JSONLogLineTests {
    static let handler = StderrLogHandler(label: "taskshedd", level: .info, journalFormat: false, lineFormat: .json)

    /// Parses a line as one JSON object (failing the test otherwise).
    static func parse(_ line: String) throws -> [String: Any] {
        #expect(!line.contains("\n"), "a line must not contain a raw newline: \(line)")
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not an object: \(line)")
    }

    @Test func aLineIsOneObjectWithTimeLevelLabelMessageAndEachMetadataKey() throws {
        let line = Self.handler.format(level: .warning, message: "lease expired",
                                       metadata: ["taskshed.task.id": "backup-1", "taskshed.attempt": "3"])
        let object = try Self.parse(line)
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "taskshedd")
        #expect(object["message"] as? String == "lease expired")
        #expect(object["taskshed.task.id"] as? String == "backup-1")
        #expect(object["taskshed.attempt"] as? String == "3")
        #expect(object.count == 6)
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil, "time \(time)")
        // The fixed fields come first, in this order, so a human reading the raw line sees them first.
        #expect(line.hasPrefix("{\"time\":\""))
        #expect(line.contains("\"level\":\"warning\",\"label\":\"taskshedd\",\"message\":\"lease expired\","))
    }

    @Test(arguments: Logger.Level.allCases)
    func everyLevelIsWrittenByItsSwiftLogName(level: Logger.Level) throws {
        let object = try Self.parse(Self.handler.format(level: level, message: "m", metadata: [:]))
        #expect(object["level"] as? String == level.rawValue)
    }

    @Test(arguments: [
        "say \"hi\"", #"C:\path\to"#, "two\nlines", "cr\rhere", "tab\there", "bell\u{07} nul\u{00} esc\u{1B} us\u{1F}",
        "backspace\u{08} formfeed\u{0C}", "del\u{7F}", "grüße – 日本語 🚀", "\u{2028}\u{2029}", "", "\\\"\\n",
    ])
    func stringsAreEscapedAndComeBackUnchanged(text: String) throws {
        let line = Self.handler.format(level: .info, message: text, metadata: [text: .string(text)])
        let object = try Self.parse(line)
        #expect(object["message"] as? String == text)
        #expect(object[text] as? String == text)
        // Control characters never appear raw; non-ASCII stays UTF-8 (not \u escapes).
        #expect(!line.utf8.contains { $0 < 0x20 }, "raw control byte in \(line)")
        if text.unicodeScalars.contains(where: { $0.value >= 0x80 }) {
            #expect(line.contains(text), "non-ASCII was not kept as UTF-8: \(line)")
        }
    }

    @Test func controlCharactersUseTheShortEscapesOrLowercaseHex() {
        let line = JSONLogLine.format(time: "t", level: .info, label: "l", message: "\"\\\n\r\t\u{08}\u{0C}\u{01}\u{1F}",
                                      metadata: [:])
        #expect(line == #"{"time":"t","level":"info","label":"l","message":"\"\\\n\r\t\b\f\u0001\u001f"}"#)
    }

    @Test func nestedMetadataBecomesNestedObjectsAndArrays() throws {
        let metadata: Logger.Metadata = [
            "peer": ["pid": "42", "uid": .stringConvertible(1000), "names": ["a", ["deep": "x\"y"]]],
            "ids": ["t1", "t2"],
            "empty": [:],
        ]
        let object = try Self.parse(Self.handler.format(level: .info, message: "m", metadata: metadata))
        let peer = try #require(object["peer"] as? [String: Any])
        #expect(peer["pid"] as? String == "42")
        #expect(peer["uid"] as? String == "1000")
        let names = try #require(peer["names"] as? [Any])
        #expect(names.first as? String == "a")
        #expect((names.last as? [String: Any])?["deep"] as? String == "x\"y")
        #expect(object["ids"] as? [String] == ["t1", "t2"])
        #expect((object["empty"] as? [String: Any])?.isEmpty == true)
    }

    @Test func metadataNamedLikeAFixedFieldIsKeptUnderAnotherName() throws {
        let metadata: Logger.Metadata = ["message": "meta", "time": "meta-time", "metadata.message": "taken"]
        let object = try Self.parse(Self.handler.format(level: .info, message: "the message", metadata: metadata))
        #expect(object["message"] as? String == "the message")
        #expect(object["metadata.time"] as? String == "meta-time")
        #expect(object["metadata.message"] as? String == "taken")
        #expect(object["metadata.metadata.message"] as? String == "meta")
        #expect(object.count == 7)
    }

    @Test func underTheJournalTheObjectFollowsThePriorityPrefix() throws {
        let handler = StderrLogHandler(label: "taskshedd", level: .info, journalFormat: true, lineFormat: .json)
        let line = handler.format(level: .error, message: "x", metadata: [:])
        #expect(line.hasPrefix("<3>{"))
        #expect(try Self.parse(String(line.dropFirst(3)))["message"] as? String == "x")
    }

    @Test func theJournalIsDetectedOnlyWhenJournalStreamNamesTheDescriptor() throws {
        let path = "/tmp/taskshed-jsonlog-\(getpid())"
        let descriptor = open(path, O_CREAT | O_RDWR, 0o600)
        #expect(descriptor >= 0)
        defer { close(descriptor); unlink(path) }
        var info = stat()
        #expect(fstat(descriptor, &info) == 0)
        let matching = ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]
        #expect(StderrLogHandler.stderrIsJournal(environment: matching, descriptor: descriptor))
        #expect(!StderrLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino + 1)"],
                                                  descriptor: descriptor))
        #expect(!StderrLogHandler.stderrIsJournal(environment: ["INVOCATION_ID": "abc"], descriptor: descriptor))
        #expect(!StderrLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "garbage"], descriptor: descriptor))
    }

    @Test func theTextFormatIsUnchangedByDefault() {
        let handler = StderrLogHandler(label: "taskshedd", level: .info, journalFormat: true)
        #expect(handler.lineFormat == .text)
        #expect(handler.format(level: .info, message: "y", metadata: ["k": "v"]) == "<6>y k=v")
    }
}
