/// A hash that is the same in every process, on every machine and in every release, unlike Swift's `Hasher`,
/// which is seeded per process.
///
/// FNV-1a (64-bit) over the UTF-8 bytes, then the SplitMix64 finaliser so that similar ids ("task-1",
/// "task-2") spread over all 64 bits. Used for fixed jitter, so previews are reproducible.
public enum StableHash {
    /// The 64-bit hash of `text`'s UTF-8 bytes.
    public static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 30
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27
        h = h &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }
}
