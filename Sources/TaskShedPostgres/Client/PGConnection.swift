import CLibPQ
import Glibc

/// A failure reported by libpq or the server.
public struct PGError: Error, CustomStringConvertible, Sendable {
    /// The SQLSTATE code of a server error ("40P01"), if the server sent one.
    public var sqlState: String?
    /// libpq's or the server's message, without the trailing newline.
    public var message: String
    /// The connection is unusable (closed by the server, network cut, failed to connect), or its server takes no
    /// writes (SQLSTATE 25006): either way a new connection may succeed where this one failed.
    public var connectionLost: Bool

    /// Creates an error.
    public init(sqlState: String? = nil, message: String, connectionLost: Bool = false) {
        self.sqlState = sqlState
        self.message = message
        self.connectionLost = connectionLost
    }

    /// A deadlock or serialization failure: the transaction was rolled back and may simply be run again.
    public var isTransient: Bool { sqlState == "40P01" || sqlState == "40001" }

    /// The server has no room: disk full (53100), out of memory (53200), or a configured limit (53400).
    public var isOutOfSpace: Bool { sqlState == "53100" || sqlState == "53200" || sqlState == "53400" }

    /// "message (SQLSTATE x)".
    public var description: String {
        if let sqlState { return "\(message) (SQLSTATE \(sqlState))" }
        return message
    }
}

/// One libpq connection, used by one thread at a time (libpq's rule; the store holds a mutex around it).
///
/// Parameters and results travel in text format: the store passes integers as decimal strings and arrays as
/// array literals (`PGArrayLiteral`), which keeps the code free of per-type binary layouts at the cost of
/// formatting and parsing, a small share next to a round trip to the server.
package final class PGConnection {
    private var raw: OpaquePointer?
    /// The connection string it was opened with (kept for `reconnect`; may hold a password, so never logged).
    private let connectionString: String
    /// Statements prepared on this connection: SQL text → statement name. Parsing and planning a statement
    /// cost 150–300 µs of a round trip here (a `SELECT min(run_at)` took 257 µs unprepared); the store's
    /// statements repeat, so each is prepared once per connection.
    private var prepared: [String: String] = [:]
    /// Most statements kept prepared; past it the cache starts over (`DEALLOCATE ALL`).
    private static let maxPrepared = 128
    /// Whether statements are prepared (named, kept per connection). Not behind a connection pooler in
    /// transaction mode: there consecutive transactions of one client may run on different server
    /// connections, and clients share them, so a name prepared by one is missing or taken for the next.
    private let preparesStatements: Bool
    /// Set by a failure after which this connection must not be used again although libpq may still report
    /// `CONNECTION_OK` (see `check`); `isOpen` is then false, so the store reconnects.
    private var mustReconnect = false
    /// Round trips to the server so far (`query`, `queries`, `run`): what batching saves, for the tests.
    package private(set) var roundTrips = 0

    /// Connects (blocking; `PQconnectdb`), with the `PG*` environment variables and `.pgpass` as libpq reads
    /// them.
    /// - Parameter preparesStatements: `false` behind a transaction-mode pooler: every statement is sent
    ///   unnamed (parsed and planned each time, in the same round trip).
    /// - Throws: `PGError` with `connectionLost` when the server cannot be reached or refuses.
    package init(_ connectionString: String, preparesStatements: Bool = true) throws(PGError) {
        self.connectionString = connectionString
        self.preparesStatements = preparesStatements
        raw = try Self.connect(connectionString)
    }

    deinit { close() }

    private static func connect(_ connectionString: String) throws(PGError) -> OpaquePointer {
        guard let conn = PQconnectdb(connectionString) else {
            throw PGError(message: "libpq could not allocate a connection", connectionLost: true)
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(conn))
            PQfinish(conn)
            throw PGError(message: "cannot connect to PostgreSQL: \(message)", connectionLost: true)
        }
        // Server notices ("schema already exists, skipping") would go to stderr by default.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        return conn
    }

    /// Closes the connection; later calls fail with `connectionLost`.
    package func close() {
        if let raw { PQfinish(raw) }
        raw = nil
    }

    /// Whether the connection is open and usable as far as libpq knows, and no failure said to reconnect.
    var isOpen: Bool { !mustReconnect && (raw.map { PQstatus($0) == CONNECTION_OK } ?? false) }

    /// Replaces a broken connection with a new one to the same server(s) (libpq follows a multi-host string to
    /// the host that accepts now).
    func reconnect() throws(PGError) {
        close()
        prepared.removeAll()
        mustReconnect = false
        raw = try Self.connect(connectionString)
    }

    /// The server's process id for this connection (for `pg_terminate_backend` in tests and logs).
    var backendPID: Int32 { raw.map { PQbackendPID($0) } ?? 0 }

    /// The connection's socket, for `poll` (-1 when closed).
    package var socket: Int32 { raw.map { PQsocket($0) } ?? -1 }

    /// Reads what the server sent without blocking (`PQconsumeInput`).
    /// - Returns: `false` when the connection broke.
    package func consumeInput() -> Bool {
        guard let raw else { return false }
        return PQconsumeInput(raw) == 1 && PQstatus(raw) == CONNECTION_OK
    }

    /// The next notification read so far (`PQnotifies`): its payload, or `nil` when none is left.
    package func nextNotification() -> String? {
        guard let raw, let notice = PQnotifies(raw) else { return nil }
        defer { PQfreemem(notice) }
        return notice.pointee.extra.map { String(cString: $0) } ?? ""
    }

    /// Runs one statement with text parameters (`$1` …; `nil` is SQL NULL) and returns its rows.
    /// - Parameter prepare: `false` sends it unnamed, planned anew with the parameters' values (a "custom
    ///   plan"): for a statement whose best plan depends on them, e.g. an array PostgreSQL can hash only
    ///   when it is a constant.
    /// - Throws: `PGError` for a server error (the transaction, if any, is then aborted) or a lost connection.
    /// - Parameter prelude: Statements without parameters (`BEGIN`) sent first, in the same round trip
    ///   (libpq's pipeline mode); a failure of one of them is thrown and the statement is not run.
    @discardableResult
    package func query(_ sql: String, _ params: [String?] = [], prepare: Bool = true, after prelude: [String] = [])
        throws(PGError) -> PGResult
    {
        guard let raw else { throw PGError(message: "the PostgreSQL connection is closed", connectionLost: true) }
        roundTrips += 1
        if !prelude.isEmpty { return try pipelined(prelude, sql, params, prepare: prepare, raw) }
        // Transaction control has nothing to plan: sent as is. Only plannable statements are prepared.
        if params.isEmpty && !sql.contains(" ") { return try check(PQexec(raw, sql), raw) }
        guard prepares(sql, prepare) else {
            let result: OpaquePointer? = Self.withCStrings(params) { values in
                PQexecParams(raw, sql, Int32(params.count), nil, values, nil, nil, 0)
            }
            return try check(result, raw)
        }
        let name = try statementName(for: sql, params.count, raw)
        let result: OpaquePointer? = Self.withCStrings(params) { values in
            PQexecPrepared(raw, name, Int32(params.count), values, nil, nil, 0)
        }
        return try check(result, raw)
    }

    /// `query` after `prelude`, all queued in pipeline mode and answered in one round trip: the prelude, the
    /// statement's preparation when it is new, the statement, one sync. The first failure is thrown (the
    /// server skips the rest up to the sync).
    private func pipelined(_ prelude: [String], _ sql: String, _ params: [String?], prepare: Bool,
                           _ raw: OpaquePointer) throws(PGError) -> PGResult
    {
        func failed() -> PGError {
            PGError(message: Self.trimmed(PQerrorMessage(raw)), connectionLost: PQstatus(raw) != CONNECTION_OK)
        }
        guard PQenterPipelineMode(raw) == 1 else { throw failed() }
        var queued = 0
        var sendFailure: PGError?
        for statement in prelude {
            guard PQsendQueryParams(raw, statement, 0, nil, nil, nil, nil, 0) == 1 else {
                sendFailure = failed()
                break
            }
            queued += 1
        }
        // A new statement is prepared in the same round trip; a full cache sends it unnamed instead.
        var newName: String?
        var prepareIndex = -1
        if sendFailure == nil {
            let usesName = prepares(sql, prepare)
            var name = usesName ? prepared[sql] : nil
            if usesName && name == nil && prepared.count < Self.maxPrepared {
                let fresh = nextStatementName
                if PQsendPrepare(raw, fresh, sql, Int32(params.count), nil) == 1 {
                    prepareIndex = queued
                    queued += 1
                    name = fresh
                    newName = fresh
                } else {
                    sendFailure = failed()
                }
            }
            if sendFailure == nil {
                let sent = Self.withCStrings(params) { values in
                    if let name {
                        return PQsendQueryPrepared(raw, name, Int32(params.count), values, nil, nil, 0)
                    }
                    return PQsendQueryParams(raw, sql, Int32(params.count), nil, values, nil, nil, 0)
                }
                if sent == 1 { queued += 1 } else { sendFailure = failed() }
            }
        }
        if sendFailure == nil && PQpipelineSync(raw) != 1 { sendFailure = failed() }
        if let sendFailure {
            // Half a pipeline went out (the connection is failing): its results could only be waited for. A new
            // connection is the way on; the store's retry takes it.
            mustReconnect = true
            throw PGError(sqlState: sendFailure.sqlState, message: sendFailure.message, connectionLost: true)
        }
        // Every queued query's results (each ends with NULL), then the sync; only then can pipeline mode end.
        var firstError: PGError?
        var last: PGResult?
        for index in 0..<queued {
            while let result = PQgetResult(raw) {
                if PQresultStatus(result) == PGRES_PIPELINE_ABORTED {
                    PQclear(result)
                    continue
                }
                do {
                    let checked = try check(result, raw)
                    if index == queued - 1 { last = checked }
                    // Prepared on the server whatever the statement then does: it is the session's, not the
                    // transaction's.
                    if index == prepareIndex, let newName { prepared[sql] = newName }
                } catch {
                    if firstError == nil { firstError = error }
                }
            }
        }
        while let result = PQgetResult(raw) {
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_PIPELINE_SYNC { break }
        }
        _ = PQexitPipelineMode(raw)
        if let firstError { throw firstError }
        guard let last else { throw PGError(message: "PostgreSQL sent no result for the statement", connectionLost: true) }
        return last
    }

    /// Whether `sql` goes as a named prepared statement: asked for, allowed on this connection, and plannable.
    private func prepares(_ sql: String, _ prepare: Bool) -> Bool {
        prepare && preparesStatements && Self.isPlannable(sql)
    }

    /// The name the next statement prepared on this connection gets.
    private var nextStatementName: String { "taskshed_\(prepared.count)" }

    /// Whether `sql` is a statement PostgreSQL plans (and so gains from being prepared): not a utility
    /// statement such as LISTEN, SAVEPOINT or CREATE.
    private static func isPlannable(_ sql: String) -> Bool {
        let start = sql.utf8.drop { $0 == 0x20 || $0 == 0x0A }
        let word = String(decoding: start.prefix { $0 != 0x20 && $0 != 0x0A && $0 != 0x28 }, as: UTF8.self).uppercased()
        return ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(word)
    }

    /// The name of `sql` prepared on this connection, preparing it first if needed.
    private func statementName(for sql: String, _ count: Int, _ raw: OpaquePointer) throws(PGError) -> String {
        if let name = prepared[sql] { return name }
        if prepared.count >= Self.maxPrepared {
            _ = try check(PQexec(raw, "DEALLOCATE ALL"), raw)
            prepared.removeAll()
        }
        let name = nextStatementName
        _ = try check(PQprepare(raw, name, sql, Int32(count), nil), raw)
        prepared[sql] = name
        return name
    }

    /// Sends several statements without parameters in one round trip (the simple query protocol) and returns
    /// the outcome of each that ran, in order (the server skips those after a failure); values must be
    /// inlined with `PGLiteral`.
    /// - Throws: `PGError` when the script could not be sent or the connection broke.
    func queries(_ script: String) throws(PGError) -> [Result<PGResult, PGError>] {
        guard let raw else { throw PGError(message: "the PostgreSQL connection is closed", connectionLost: true) }
        roundTrips += 1
        guard PQsendQuery(raw, script) == 1 else {
            throw PGError(message: Self.trimmed(PQerrorMessage(raw)), connectionLost: PQstatus(raw) != CONNECTION_OK)
        }
        var results: [Result<PGResult, PGError>] = []
        // Every result must be read (until NULL) before the connection takes the next command.
        while let next = PQgetResult(raw) {
            do {
                results.append(.success(try check(next, raw)))
            } catch {
                results.append(.failure(error))
            }
        }
        if PQstatus(raw) != CONNECTION_OK {
            throw PGError(message: Self.trimmed(PQerrorMessage(raw)), connectionLost: true)
        }
        return results
    }

    /// Runs a script of several statements without parameters (schema migrations).
    func run(_ script: String) throws(PGError) {
        guard let raw else { throw PGError(message: "the PostgreSQL connection is closed", connectionLost: true) }
        roundTrips += 1
        _ = try check(PQexec(raw, script), raw)
    }

    private func check(_ result: OpaquePointer?, _ conn: OpaquePointer) throws(PGError) -> PGResult {
        guard let result else {
            throw PGError(message: Self.trimmed(PQerrorMessage(conn)), connectionLost: PQstatus(conn) != CONNECTION_OK)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PGResult(result)
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            var message = Self.trimmed(PQresultErrorMessage(result))
            if state == "26000" || state == "42P05" {
                // A prepared statement missing or taken: what a transaction-mode pooler does to them.
                message += " (is the connection going through a connection pooler in transaction mode? Then start "
                    + "taskshedd with --datastore-pooler transaction)"
            }
            PQclear(result)
            let lost = PQstatus(conn) != CONNECTION_OK
            // Class 08 is a connection exception; 57P01-03 are the server shutting down or restarting.
            let serverGone = state.map { $0.hasPrefix("08") || $0.hasPrefix("57P") } ?? false
            // No SQLSTATE: libpq's own error, not the server's. A write to a server that has gone ends so while
            // libpq still reports CONNECTION_OK: libpq takes the write as done, reads what the server sent before
            // it went (a shutdown warning) and reports the failed write, not yet the end of the stream.
            let clientSide = state == nil
            // This server takes no writes: a hot standby, or a primary turned read-only (as before a switchover).
            // A new connection, with target_session_attrs=read-write, goes to the server that takes them.
            let readOnly = state == "25006"
            if clientSide || readOnly { mustReconnect = true }
            throw PGError(sqlState: state, message: message.isEmpty ? "PostgreSQL reported an error" : message,
                          connectionLost: lost || serverGone || clientSide || readOnly)
        }
    }

    /// Calls `body` with a C array of NUL-terminated copies of `strings` (NULL for `nil`), freed afterwards.
    private static func withCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        guard !strings.isEmpty else { return body(nil) }
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
        defer { for c in copies { free(c) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        var s = String(cString: message)
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return s
    }
}

/// The rows of one statement; owns its `PGresult`.
package final class PGResult {
    private let raw: OpaquePointer

    init(_ raw: OpaquePointer) { self.raw = raw }

    deinit { PQclear(raw) }

    /// Number of rows returned.
    package var rowCount: Int { Int(PQntuples(raw)) }

    /// Rows changed by an INSERT, UPDATE or DELETE (0 for other statements).
    var affectedRows: Int { Int(String(cString: PQcmdTuples(raw))) ?? 0 }

    /// Whether the value at (`row`, `column`) is NULL.
    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(raw, Int32(row), Int32(column)) == 1 }

    /// The text of a value, or `nil` for NULL.
    package func string(_ row: Int, _ column: Int) -> String? {
        guard !isNull(row, column), let p = PQgetvalue(raw, Int32(row), Int32(column)) else { return nil }
        let count = Int(PQgetlength(raw, Int32(row), Int32(column)))
        return p.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }

    /// The bytes of a value's text, or `nil` for NULL.
    func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard !isNull(row, column), let p = PQgetvalue(raw, Int32(row), Int32(column)) else { return nil }
        let count = Int(PQgetlength(raw, Int32(row), Int32(column)))
        return p.withMemoryRebound(to: UInt8.self, capacity: count) { Array(UnsafeBufferPointer(start: $0, count: count)) }
    }

    /// An integer value, or `nil` for NULL (or text that is not an integer).
    package func int64(_ row: Int, _ column: Int) -> Int64? {
        guard !isNull(row, column), let p = PQgetvalue(raw, Int32(row), Int32(column)) else { return nil }
        var value: Int64 = 0
        var negative = false
        var i = 0
        if p[0] == CChar(UInt8(ascii: "-")) {
            negative = true
            i = 1
        }
        guard p[i] != 0 else { return nil }
        while p[i] != 0 {
            let digit = Int64(p[i]) - 48
            guard digit >= 0 && digit <= 9 else { return nil }
            // Accumulate negatively so that Int64.min parses.
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(digit)
            guard !o1 && !o2 else { return nil }
            value = next
            i += 1
        }
        if negative { return value }
        return value == .min ? nil : -value
    }

    /// A boolean value (`t`/`f`), or `nil` for NULL.
    func bool(_ row: Int, _ column: Int) -> Bool? {
        guard !isNull(row, column), let p = PQgetvalue(raw, Int32(row), Int32(column)) else { return nil }
        return p[0] == CChar(UInt8(ascii: "t"))
    }
}

/// Inlines values into SQL text for `PGConnection.queries`, whatever `standard_conforming_strings` says.
enum PGLiteral {
    /// `value` as an escape string constant: `E'…'` with backslashes and quotes escaped.
    static func string(_ value: String) -> String {
        var out = "E'"
        for scalar in value.unicodeScalars {
            if scalar == "'" || scalar == "\\" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(scalar)
        }
        return out + "'"
    }
}

/// Formats PostgreSQL array literals for text parameters (`{"a","b\"c",NULL}`), so that a whole batch goes in
/// one statement through `unnest($1::text[], …)` instead of one statement per task.
enum PGArrayLiteral {
    /// A `text[]` literal; `nil` elements are NULL.
    static func text<S: Sequence>(_ values: S) -> String where S.Element == String? {
        // Built as UTF-8 bytes, not a String one scalar at a time: a 100k-task batch makes ~7 MB of these, mostly
        // JSON whose quotes need escaping.
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for value in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            guard let value else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// A `text[]` literal of non-null strings.
    static func text<S: Sequence>(_ values: S) -> String where S.Element == String {
        text(values.lazy.map { Optional($0) })
    }

    /// An `int8[]` literal; `nil` elements are NULL.
    static func int64<S: Sequence>(_ values: S) -> String where S.Element == Int64? {
        "{" + values.map { $0.map(String.init) ?? "NULL" }.joined(separator: ",") + "}"
    }

    /// A `bool[]` literal.
    static func bool<S: Sequence>(_ values: S) -> String where S.Element == Bool {
        "{" + values.map { $0 ? "t" : "f" }.joined(separator: ",") + "}"
    }
}
