/// Whether two names (ids, callbacks, groups) are the same store key: the same UTF-8 bytes, as LMDB compares
/// them. Swift's `==` on `String` uses canonical equivalence ("é" precomposed equals "e" followed by U+0301),
/// which would make two keys one: a cache would give both names one callback number, and a batch would
/// reject the second id as a duplicate. The store compares names only through this and `NameKey`.
///
/// Cost: names that differ fail at Swift's `==` (which is false only for different bytes); names that are the
/// same string value (a cache hit: the same small-string bits, or the same storage) succeed on the bit
/// pattern; only canonically equal strings with different bits compare their bytes.
@inline(__always)
func sameBytes(_ a: String, _ b: String) -> Bool {
    // A `String` is two words; equal words mean the same inline bytes or the same storage object.
    if unsafeBitCast(a, to: (UInt64, UInt64).self) == unsafeBitCast(b, to: (UInt64, UInt64).self) { return true }
    guard a == b else { return false }
    return a.utf8.elementsEqual(b.utf8)
}

/// `sameBytes` for optional names: both absent, or both present and the same bytes.
@inline(__always)
func sameBytes(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (let a?, let b?): return sameBytes(a, b)
    default: return false
    }
}

/// A name as a `Set` element or `Dictionary` key, compared and hashed by its UTF-8 bytes (see `sameBytes`).
struct NameKey: Hashable {
    let name: String

    init(_ name: String) { self.name = name }

    static func == (a: NameKey, b: NameKey) -> Bool { sameBytes(a.name, b.name) }

    func hash(into hasher: inout Hasher) {
        var s = name
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
