/// A set of small non-negative integers (0…63) as a bit mask: the values one calendar field allows.
///
/// Every field of both syntaxes fits (seconds and minutes 0…59, days 1…31), so matching and "next value at or
/// after v" are a mask and a bit count, with no allocation.
struct FieldSet: Sendable, Hashable {
    /// Bit `v` is set when value `v` is in the set.
    var bits: UInt64

    /// The empty set.
    static let empty = FieldSet(bits: 0)

    /// The values `low...high`.
    static func range(_ low: Int, _ high: Int) -> FieldSet {
        var set = FieldSet.empty
        set.insert(low, through: high, step: 1)
        return set
    }

    /// The single value `v`.
    static func single(_ v: Int) -> FieldSet {
        FieldSet(bits: 1 << UInt64(v))
    }

    /// Whether the set holds no value.
    var isEmpty: Bool { bits == 0 }
    /// How many values the set holds.
    var count: Int { bits.nonzeroBitCount }
    /// The smallest value; the set must not be empty.
    var min: Int { bits.trailingZeroBitCount }
    /// The largest value; the set must not be empty.
    var max: Int { 63 - bits.leadingZeroBitCount }

    /// Whether `v` is in the set (values outside 0…63 never are).
    func contains(_ v: Int) -> Bool {
        v >= 0 && v < 64 && bits & (1 << UInt64(v)) != 0
    }

    /// Adds `low, low+step, …` up to `high`.
    mutating func insert(_ low: Int, through high: Int, step: Int) {
        var v = low
        while v <= high {
            bits |= 1 << UInt64(v)
            v += step
        }
    }

    /// The smallest value `>= v`, or `nil`.
    func next(atOrAfter v: Int) -> Int? {
        if v > 63 { return nil }
        let masked = v <= 0 ? bits : bits & (~0 << UInt64(v))
        return masked == 0 ? nil : masked.trailingZeroBitCount
    }

    /// The largest value `<= v`, or `nil`.
    func previous(atOrBefore v: Int) -> Int? {
        if v < 0 { return nil }
        let masked = v >= 63 ? bits : bits & ((1 << UInt64(v + 1)) - 1)
        return masked == 0 ? nil : 63 - masked.leadingZeroBitCount
    }

    /// The values in increasing order.
    var values: [Int] {
        var out: [Int] = []
        var b = bits
        while b != 0 {
            out.append(b.trailingZeroBitCount)
            b &= b - 1
        }
        return out
    }
}
