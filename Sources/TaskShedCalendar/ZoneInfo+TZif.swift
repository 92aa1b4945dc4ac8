extension ZoneInfo {
    /// Parses TZif data (RFC 8536): the v2+ 64-bit block when present, else the v1 block, plus the footer.
    ///
    /// Transitions that do not change the UTC offset (only the abbreviation or the DST flag) are dropped:
    /// scheduling depends on offsets alone. Returns `nil` for anything malformed.
    static func parseTZif(_ bytes: [UInt8], identifier: String) -> ZoneInfo? {
        var reader = ByteReader(bytes: bytes)
        guard var header = reader.header() else { return nil }
        var timeSize = 4
        if header.version >= UInt8(ascii: "2") {
            guard reader.skip(header.blockLength(timeSize: 4)), let second = reader.header() else { return nil }
            header = second
            timeSize = 8
        }
        var times: [Int64] = []
        times.reserveCapacity(header.timeCount)
        for _ in 0..<header.timeCount {
            guard let t = timeSize == 8 ? reader.int64() : reader.int32().map(Int64.init) else { return nil }
            times.append(t)
        }
        var indices: [Int] = []
        for _ in 0..<header.timeCount {
            guard let i = reader.byte() else { return nil }
            indices.append(Int(i))
        }
        var typeOffsets: [Int32] = []
        for _ in 0..<header.typeCount {
            guard let offset = reader.int32(), reader.skip(2) else { return nil }
            typeOffsets.append(offset)
        }
        guard !typeOffsets.isEmpty,
              reader.skip(header.charCount + header.leapCount * (timeSize + 4) + header.isStdCount + header.isUTCount)
        else { return nil }
        var footer: PosixTimeZone?
        if timeSize == 8, reader.byte() == UInt8(ascii: "\n") {
            var text: [UInt8] = []
            while let b = reader.byte(), b != UInt8(ascii: "\n") { text.append(b) }
            footer = PosixTimeZone(String(decoding: text, as: UTF8.self))
        }
        let initial = typeOffsets[0]
        var transitions: [Int64] = []
        var offsets: [Int32] = []
        var current = initial
        for (t, index) in zip(times, indices) {
            guard index < typeOffsets.count, transitions.last.map({ t > $0 }) ?? true else { return nil }
            let offset = typeOffsets[index]
            if offset != current {
                transitions.append(t)
                offsets.append(offset)
                current = offset
            }
        }
        return ZoneInfo(identifier: identifier, transitions: transitions, offsets: offsets,
                        initialOffset: initial, footer: footer)
    }

    /// A bounds-checked big-endian reader.
    private struct ByteReader {
        let bytes: [UInt8]
        var index = 0

        struct Header {
            var version: UInt8
            var isUTCount, isStdCount, leapCount, timeCount, typeCount, charCount: Int

            func blockLength(timeSize: Int) -> Int {
                timeCount * timeSize + timeCount + typeCount * 6 + charCount + leapCount * (timeSize + 4)
                    + isStdCount + isUTCount
            }
        }

        mutating func header() -> Header? {
            guard index + 44 <= bytes.count, Array(bytes[index..<index + 4]) == Array("TZif".utf8) else { return nil }
            let version = bytes[index + 4]
            index += 20
            var counts: [Int] = []
            for _ in 0..<6 {
                guard let c = int32(), c >= 0, c < 1 << 20 else { return nil }
                counts.append(Int(c))
            }
            return Header(version: version, isUTCount: counts[0], isStdCount: counts[1], leapCount: counts[2],
                          timeCount: counts[3], typeCount: counts[4], charCount: counts[5])
        }

        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, index + n <= bytes.count else { return false }
            index += n
            return true
        }

        mutating func byte() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func int32() -> Int32? {
            guard index + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for i in 0..<4 { v = v << 8 | UInt32(bytes[index + i]) }
            index += 4
            return Int32(bitPattern: v)
        }

        mutating func int64() -> Int64? {
            guard index + 8 <= bytes.count else { return nil }
            var v: UInt64 = 0
            for i in 0..<8 { v = v << 8 | UInt64(bytes[index + i]) }
            index += 8
            return Int64(bitPattern: v)
        }
    }
}
