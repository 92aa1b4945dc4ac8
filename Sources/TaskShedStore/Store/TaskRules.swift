import TaskShedProtocol

// Rules every task store applies the same way (the LMDB store and the PostgreSQL store in TaskShedPostgres):
// what a valid task is, the list cursor's format, and how a task record changes when a delivery ends. One copy,
// so that the two stores cannot drift apart.

/// What validation adds to a task spec: the kwargs to store (`{}` for none) and the attempt limit (0 → the
/// default). The spec itself stays in the caller's array: copying it into this struct and out again retained
/// each of its strings and arrays twice per task.
package struct PreparedTask {
    package var kwargs: [UInt8]
    package var maxAttempts: UInt32
}

/// Validation of the tasks of an add, before anything is stored.
package enum TaskValidation {
    /// Checks a name's length; `field` is an autoclosure so that a valid name (the usual case, once per task
    /// of a batch) costs no string formatting.
    package static func checkName(_ value: String, field: @autoclosure () -> String, what: String) throws(StoreError) {
        let count = value.utf8.count
        if count == 0 { throw .invalid(field(), "\(what) must not be empty") }
        if count > ProtocolLimits.maxNameBytes {
            throw .invalid(field(), "\(what) is \(count) bytes; at most \(ProtocolLimits.maxNameBytes) are allowed")
        }
    }

    /// Checks every spec (see `TaskStoreWriteBatch.add`) and returns what each stores.
    /// - Throws: `invalidArgument` naming the field (`tasks[i].callback`, ...) of the first fault.
    package static func prepare(_ specs: [TaskSpec], maxKwargsBytes: Int, checksKwargsJSON: Bool)
        throws(StoreError) -> [PreparedTask]
    {
        var prepared: [PreparedTask] = []
        prepared.reserveCapacity(specs.count)
        var ids = Set<NameKey>(minimumCapacity: specs.count)
        let emptyObject: [UInt8] = Array("{}".utf8)
        for (i, spec) in specs.enumerated() {
            // Built only when a check fails: formatting it for every task cost ~2,000 instructions per task.
            var field: String { "tasks[\(i)]" }
            try checkName(spec.callback, field: "\(field).callback", what: "callback")
            if let id = spec.id {
                try checkName(id, field: "\(field).id", what: "id")
                if !ids.insert(NameKey(id)).inserted {
                    throw .invalid("\(field).id", "id \"\(id)\" appears more than once in the batch")
                }
            }
            if let group = spec.group { try checkName(group, field: "\(field).group", what: "group") }
            if case .interval(let micros) = spec.schedule, micros <= 0 {
                throw .invalid("\(field).interval", "a recurring task needs an interval > 0 (got \(micros) µs)")
            }
            var kwargs = spec.kwargs
            if kwargs.isEmpty {
                kwargs = emptyObject
            } else {
                if kwargs.count > maxKwargsBytes {
                    throw .invalid(
                        "\(field).kwargs", "kwargs are \(kwargs.count) bytes; at most \(maxKwargsBytes) are allowed")
                }
                if checksKwargsJSON, let problem = JSONObjectValidator.problem(in: kwargs) {
                    throw .invalid("\(field).kwargs", "kwargs \(problem)")
                }
            }
            let maxAttempts = spec.maxAttempts == 0 ? ProtocolLimits.defaultMaxAttempts : spec.maxAttempts
            prepared.append(PreparedTask(kwargs: kwargs, maxAttempts: maxAttempts))
        }
        return prepared
    }
}

/// The opaque cursor of `list` pages: a format byte, then the last task's position (`runAt`, id).
package enum ListCursor {
    /// Version byte of list cursors.
    static let format: UInt8 = 1

    /// The cursor that continues after the task at `position`.
    package static func encode(_ position: (Int64, String)) -> [UInt8] {
        var sink = ByteSink(capacity: 9 + position.1.utf8.count)
        sink.u8(format)
        sink.timeKey(position.0)
        sink.raw(position.1)
        return sink.bytes
    }

    /// The position a cursor continues after.
    /// - Throws: `invalidArgument` naming `cursor` for bytes that no page returned.
    package static func decode(_ bytes: [UInt8]) throws(StoreError) -> (Int64, String) {
        let decoded: (Int64, String)? = bytes.withUnsafeBytes { b in
            var s = ByteSource(b)
            guard s.u8() == format, let t = s.timeKey() else { return nil }
            return (t, s.restString())
        }
        guard let decoded else { throw .invalid("cursor", "not a cursor returned by a previous page") }
        return decoded
    }
}
