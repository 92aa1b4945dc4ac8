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
    if sameBits(a, b) { return true }
    guard a == b else { return false }
    return a.utf8.elementsEqual(b.utf8)
}

/// Whether two strings are one value bit for bit: a `String` is two words, and equal words mean the same inline
/// bytes or the same storage object. `true` implies `sameBytes`; `false` decides nothing (two storage objects
/// can hold the same bytes). A search of a short list of names tries this on every entry before `sameBytes`:
/// the name searched for usually came from where the list's did (the same small-string bits), and Swift's
/// comparison of two different names, the `==` inside `sameBytes`, is a call into the runtime.
@inline(__always)
func sameBits(_ a: String, _ b: String) -> Bool {
    unsafeBitCast(a, to: (UInt64, UInt64).self) == unsafeBitCast(b, to: (UInt64, UInt64).self)
}

/// Where `name` is in a short list of (name, value) pairs: bit patterns first (`sameBits`: the name searched for
/// usually came from where the list's did), then bytes (`sameBytes`).
@inline(__always)
func indexOfName<Value>(_ name: String, in list: [(String, Value)]) -> Int? {
    for i in list.indices where sameBits(list[i].0, name) { return i }
    for i in list.indices where sameBytes(list[i].0, name) { return i }
    return nil
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
package struct NameKey: Hashable {
    package let name: String

    package init(_ name: String) { self.name = name }

    package static func == (a: NameKey, b: NameKey) -> Bool { sameBytes(a.name, b.name) }

    package func hash(into hasher: inout Hasher) {
        var s = name
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
