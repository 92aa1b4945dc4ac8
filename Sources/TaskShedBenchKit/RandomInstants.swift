/// A small seeded generator (SplitMix64), so the two processes of a measurement and repeated runs can draw the
/// same instants from the same seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator.
    /// - Parameter seed: Any value; equal seeds give equal sequences.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The due instants of a lag measurement.
public enum RandomInstants {
    /// `count` instants, uniformly random over `[startMicros, startMicros + spanMicros)`, in ascending order.
    ///
    /// Whole microseconds, because task run times on the wire are microseconds: the floor and the daemon are
    /// then measured against exactly the same kind of deadline.
    /// - Parameters:
    ///   - count: How many.
    ///   - startMicros: The earliest possible instant (µs since the epoch).
    ///   - spanMicros: The width of the window, > 0.
    ///   - seed: The generator's seed.
    /// - Returns: The instants in µs since the epoch, sorted.
    public static func micros(count: Int, startMicros: Int64, spanMicros: Int64, seed: UInt64) -> [Int64] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in startMicros + Int64.random(in: 0..<max(spanMicros, 1), using: &generator) }
            .sorted()
    }
}
