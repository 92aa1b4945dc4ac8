import Testing
import TaskShedProtocol

/// The repository's `proto-spec/vectors`, found from this file's path.
let vectorsDirectory: String = ProtocolVector.vectorsDirectory(forFilePath: #filePath) ?? "proto-spec/vectors"

/// Every vector, loaded once; a load failure is reported by `VectorFileTests.everyVectorFileParses`.
let allVectors: [ProtocolVector] = (try? ProtocolVector.loadAll(inDirectory: vectorsDirectory)) ?? []

func vectors(_ predicate: (ProtocolVector) -> Bool) -> [ProtocolVector] { allVectors.filter(predicate) }

let validVectors = vectors { $0.expectation == .valid }
let errorVectors = vectors { if case .error = $0.expectation { return true } else { return false } }
let incompleteVectors = vectors { $0.expectation == .incomplete }
/// Vectors after which a stream can go on: valid ones and non-fatal errors.
let streamableVectors = vectors {
    switch $0.expectation {
    case .valid, .error(_, fatal: false): return true
    default: return false
    }
}

/// What a decoder produced for a stream.
enum Outcome: Equatable, CustomStringConvertible {
    case frame(Frame)
    case error(ProtocolError)
    /// The stream ended with this many bytes buffered.
    case pending(Int)

    var description: String {
        switch self {
        case .frame(let f): return "frame(\(f.requestID), \(f.message.type.name))"
        case .error(let e): return "error(\(e))"
        case .pending(let n): return "pending(\(n))"
        }
    }
}

/// Feeds `chunks` one after the other, draining the decoder after each, and stops at a fatal error.
func decodeStream(_ chunks: [[UInt8]], maxFrameBytes: UInt32 = ProtocolLimits.defaultMaxFrameBytes,
                  accepting accepted: FrameDecoder.AcceptedTypes = .all,
                  version: UInt16 = ProtocolLimits.versions.upperBound) -> [Outcome] {
    var decoder = FrameDecoder(maxFrameBytes: maxFrameBytes, accepting: accepted)
    decoder.version = version
    var outcomes: [Outcome] = []
    for chunk in chunks {
        decoder.append(contentsOf: chunk)
        while true {
            do {
                guard let frame = try decoder.next() else { break }
                outcomes.append(.frame(frame))
            } catch {
                outcomes.append(.error(error))
                if error.isFatal { return outcomes }
            }
        }
    }
    outcomes.append(.pending(decoder.bufferedByteCount))
    return outcomes
}

/// The same bytes, whole.
func decodeWhole(_ bytes: [UInt8], accepting accepted: FrameDecoder.AcceptedTypes = .all,
                 version: UInt16 = ProtocolLimits.versions.upperBound) -> [Outcome] {
    decodeStream([bytes], accepting: accepted, version: version)
}

/// The same bytes, one at a time.
func decodeByteByByte(_ bytes: [UInt8], accepting accepted: FrameDecoder.AcceptedTypes = .all) -> [Outcome] {
    decodeStream(bytes.map { [$0] }, accepting: accepted)
}

/// The decoder a vector's receiver uses: a server's (requests only) for client-to-server vectors.
func receiverTypes(_ vector: ProtocolVector) -> FrameDecoder.AcceptedTypes {
    vector.direction == .clientToServer ? .requests : .all
}

/// A small, fast, seedable PRNG (SplitMix64) so that every random test is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Reads `FuzzCorpus/crashes` next to this file: (file name, bytes), skipping documentation.
func fuzzCrashInputs() -> [(String, [UInt8])] {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    parts.removeLast()
    let directory = parts.joined(separator: "/") + "/FuzzCorpus/crashes"
    return readDirectoryFiles(directory).filter { !$0.0.hasSuffix(".md") }
}

/// Checks that the named vectors, which need protocol version 3, are `UNKNOWN_MESSAGE_TYPE` on a connection of
/// `version`, skipped whole like any type a peer never heard of (PROTOCOL.md section 2).
func expectUnknown(vectorsNamed names: [String], onVersion version: UInt16) throws {
    for name in names {
        let vector = try #require(allVectors.first { $0.name == name })
        let outcomes = decodeWhole(vector.bytes, version: version)
        guard case .error(let error) = outcomes.first else {
            Issue.record("\(name) decoded on a version \(version) connection: \(outcomes)")
            continue
        }
        #expect(error.code == .unknownMessageType && !error.isFatal && error.offset == 4, "\(name)")
        #expect(error.message.contains("needs protocol version 3"), "\(error.message)")
        #expect(outcomes.dropFirst() == [.pending(0)], "\(name)")
    }
}
