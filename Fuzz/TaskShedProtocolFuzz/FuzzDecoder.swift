// libFuzzer harness for the TaskShedProtocol decoder. Built only by scripts/fuzz.sh, which compiles this file
// together with Sources/TaskShedProtocol into one module with -sanitize=fuzzer,address (it cannot link without
// the fuzzer runtime, so it stays out of Package.swift).
//
// Each input is treated as a byte stream that a peer sent. The harness traps (and libFuzzer saves the input)
// when any of these properties breaks:
//  1. decoding never crashes, overflows or reads out of bounds (AddressSanitizer watches the memory);
//  2. the outcome is the same whether the bytes arrive whole or in two chunks split where the first byte says;
//  3. every decoded frame re-encodes to exactly the bytes it came from (the encoding is canonical);
//  4. errors carry a decoder code, and only a fatal one ends the stream;
//  5. the model decoders used by the store (TaskRecord, TaskSpec) also never crash and re-encode canonically.

/// Frames larger than this are rejected, so the fuzzer explores payloads rather than waiting for 64 MiB.
let fuzzMaxFrameBytes: UInt32 = 1 << 20

enum FuzzOutcome: Equatable {
    case frame(Frame)
    case error(ProtocolError)
}

func decodeChunks(_ chunks: [ArraySlice<UInt8>]) -> (outcomes: [FuzzOutcome], pending: Int) {
    var decoder = FrameDecoder(maxFrameBytes: fuzzMaxFrameBytes)
    var outcomes: [FuzzOutcome] = []
    for chunk in chunks {
        decoder.append(contentsOf: chunk)
        while true {
            do {
                guard let frame = try decoder.next() else { break }
                outcomes.append(.frame(frame))
            } catch {
                outcomes.append(.error(error))
                // Later chunks are never appended, so the buffered count is meaningless: report -1.
                if error.isFatal { return (outcomes, -1) }
            }
        }
    }
    return (outcomes, decoder.bufferedByteCount)
}

func checkCanonical(_ outcomes: [FuzzOutcome], _ bytes: [UInt8]) {
    var position = 0
    let decoderCodes: Set<ErrorCode> = [.malformedFrame, .frameTooLarge, .unknownMessageType, .malformedMessage]
    for outcome in outcomes {
        switch outcome {
        case .frame(let frame):
            let encoded = FrameEncoder.encode(frame)
            precondition(position + encoded.count <= bytes.count, "frame longer than its input")
            precondition(Array(bytes[position..<(position + encoded.count)]) == encoded, "non-canonical frame")
            position += encoded.count
        case .error(let error):
            precondition(decoderCodes.contains(error.code), "unexpected code \(error.code)")
            precondition(error.isFatal == (error.code == .malformedFrame || error.code == .frameTooLarge))
            if error.isFatal { return }
            let length = Int(bytes[position]) << 24 | Int(bytes[position + 1]) << 16
                | Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            position += 4 + length
        }
    }
}

func checkModel<T: WireCodable & Equatable>(_ type: T.Type, _ bytes: [UInt8]) {
    var reader = ByteReader(bytes)
    guard let value = try? reader.read(type) else { return }
    var writer = ByteWriter()
    writer.write(value)
    precondition(writer.bytes == Array(bytes[0..<reader.offset]), "non-canonical \(T.self)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = decodeChunks([bytes[...]])
    checkCanonical(whole.outcomes, bytes)
    let split = Int(bytes[0]) % size
    let twoChunks = decodeChunks([bytes[0..<split], bytes[split...]])
    precondition(twoChunks.outcomes == whole.outcomes && twoChunks.pending == whole.pending, "chunking changed the result")
    checkModel(TaskRecord.self, bytes)
    checkModel(TaskSpec.self, bytes)
    return 0
}
