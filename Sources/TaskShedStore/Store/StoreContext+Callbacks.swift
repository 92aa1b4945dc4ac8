/// Callback numbers found or assigned in one transaction. Only numbers present in the transaction's view are
/// kept, so a cache never outlives its transaction's truth: each `StoreContext` (one per transaction, or per
/// nested transaction) has its own.
struct CallbackNumberCache {
    /// A short list searched linearly while few names are used (comparing small strings is cheaper than
    /// hashing them; bit patterns first, see `sameBits`); past 16 names a dictionary.
    private var list: [(String, UInt32)] = []
    private var map: [NameKey: UInt32]?

    @inline(__always)
    func number(_ name: String) -> UInt32? {
        if let map { return map[NameKey(name)] }
        return indexOfName(name, in: list).map { list[$0].1 }
    }

    mutating func remember(_ name: String, _ number: UInt32) {
        if map != nil {
            map![NameKey(name)] = number
        } else if list.count < 16 {
            list.append((name, number))
        } else {
            var m = [NameKey: UInt32](minimumCapacity: 64)
            for (n, v) in list { m[NameKey(n)] = v }
            m[NameKey(name)] = number
            map = m
            list = []
        }
    }

    mutating func removeAll() {
        list.removeAll()
        map = nil
    }
}

extension StoreContext {
    /// The number of a callback in `callback_numbers` (the prefix of its `callback_wake` keys), assigning the
    /// next free one when `create` is set and the name has none.
    ///
    /// Numbers are assigned in order from 0 and never reused while the store holds the name; `remove(.all)`
    /// clears them with the tasks. A name keeps its number when its last task goes (the table holds one entry
    /// per callback name ever scheduled since, ~20 bytes each).
    /// - Returns: The number, or `nil` when the name has none and `create` is not set.
    /// - Throws: LMDB errors; `internalError` when the stored value is malformed or 2^32 names were used.
    mutating func callbackNumber(_ name: String, create: Bool) throws(StoreError) -> UInt32? {
        if let n = numbers.number(name) { return n }
        if let n = try lookUpCallbackNumber(name) {
            numbers.remember(name, n)
            return n
        }
        let txn = self.txn
        let db = dbs.callbackNumbers
        guard create else { return nil }
        let count = try lmdb { () throws(LMDBError) in try txn.entryCount(db) }
        guard count < Int(UInt32.max) else {
            throw StoreError(code: .internalError, message: "the store has used every callback number")
        }
        let n = UInt32(count)
        var value = ByteSink(capacity: 4)
        value.u32LE(n)
        let v = value.bytes
        let stored = withUTF8Bytes(name) { k in
            v.withUnsafeBytes { vb in Result { () throws(LMDBError) in try txn.put(db, rawKey: k, rawValue: vb) } }
        }
        try lmdb { () throws(LMDBError) in try stored.get() }
        numbers.remember(name, n)
        return n
    }

    /// The number of a callback, read from `callback_numbers` (no cache: for reads).
    /// - Returns: `nil` when the name has none.
    /// - Throws: LMDB errors; `internalError` when the stored value is malformed.
    func lookUpCallbackNumber(_ name: String) throws(StoreError) -> UInt32? {
        let txn = self.txn
        let db = dbs.callbackNumbers
        let found = withUTF8Bytes(name) { k in
            Result { () throws(LMDBError) -> UInt32?? in
                guard let raw = try txn.get(db, rawKey: k) else { return .some(nil) }
                var s = ByteSource(raw)
                guard let n = s.u32LE(), s.isAtEnd else { return nil }
                return .some(n)
            }
        }
        guard let lookedUp = try lmdb({ () throws(LMDBError) in try found.get() }) else {
            throw .corrupt("number of callback \"\(name)\"")
        }
        return lookedUp
    }
}
