import Glibc
import TOMLKit

/// `taskshedd`'s config file (`--config PATH`): a TOML document whose keys are the daemon's flags.
///
/// The rules, for every key:
/// - A key is a flag's long name without `--` (`socket`, `lease-timeout`), at the top level (no tables).
/// - A flag that takes a duration, size, path, name or mode takes a TOML string written as on the command line
///   (`lease-timeout = "30s"`, `max-frame-bytes = "64MiB"`, `socket-mode = "0660"`).
/// - A flag that takes a number (`--max-connections N`) takes a TOML integer.
/// - An on/off flag pair (`--sync`/`--no-sync`) is one key named for the positive flag, a TOML boolean
///   (`sync = false` is `--no-sync`).
/// - A repeatable flag (`--allow-uid`) takes a TOML array of strings, one element per repetition.
/// - A flag given on the command line replaces the key wholly (for a repeatable flag: the whole array;
///   `--datastore` and `--datastore-file` replace each other's key too).
///
/// The file is turned into command-line arguments (`arguments(overriddenBy:)`) that are parsed, together with
/// the real ones, by the same argument parser and the same checks as the flags, so that a value means exactly
/// what it means as a flag. A check that fails names an option; `locate(_:)` turns that back into the file's
/// line.
public struct ConfigurationFile: Sendable {
    /// What a key's value must be in TOML.
    public enum Kind: Sendable, Hashable {
        /// A string, passed as the flag's value; the associated value is an example for messages.
        case string(example: String)
        /// An integer in this range, passed in decimal.
        case integer(ClosedRange<Int64>)
        /// A boolean: `true` is the first of the key's options, `false` the second (`--sync`, `--no-sync`).
        case boolean
        /// An array of strings: the option once per element.
        case strings
    }

    /// One key of the file and the flags it stands for.
    public struct Key: Sendable, Hashable {
        /// The key as written in the file.
        public var name: String
        /// The TOML type (and range) its value must have.
        public var kind: Kind
        /// The flag spellings it stands for: `--name`, and for a boolean `--name` then `--no-name`.
        public var options: [String]
        /// Flag spellings that, given on the command line, replace this key besides its own.
        public var replacedBy: [String]

        init(_ name: String, _ kind: Kind, replacedBy: [String] = []) {
            self.name = name
            self.kind = kind
            options = kind == .boolean ? ["--" + name, "--no-" + name] : ["--" + name]
            self.replacedBy = options + replacedBy
        }
    }

    /// Every key, in the order of `taskshedd --help`. A test checks it against the flags of the real binary
    /// (`taskshedd --experimental-dump-help`), so that a flag added without a key fails the suite.
    public static let keys: [Key] = [
        Key("socket", .string(example: "/run/taskshed/taskshedd.sock")),
        Key("data-dir", .string(example: "/var/lib/taskshed")),
        Key("datastore", .string(example: "lmdb"), replacedBy: ["--datastore-file"]),
        Key("datastore-file", .string(example: "/etc/taskshed/datastore"), replacedBy: ["--datastore"]),
        Key("schema", .string(example: "taskshed")),
        Key("daemon-name", .string(example: "worker-1")),
        Key("datastore-pooler", .string(example: "none")),
        Key("shared-poll", .string(example: "250ms")),
        Key("heartbeat-timeout", .string(example: "4s")),
        Key("socket-mode", .string(example: "0660")),
        Key("socket-group", .string(example: "taskshed")),
        Key("allow-uid", .strings),
        Key("allow-gid", .strings),
        Key("lease-timeout", .string(example: "30s")),
        Key("max-connections", .integer(Int64(Int.min)...Int64(Int.max))),
        Key("max-handshaking", .integer(Int64(Int.min)...Int64(Int.max))),
        Key("max-frame-bytes", .string(example: "64MiB")),
        Key("max-batch", .integer(0...Int64(UInt32.max))),
        Key("max-kwargs-bytes", .string(example: "64KiB")),
        Key("handshake-timeout", .string(example: "10s")),
        Key("max-output-bytes", .string(example: "160MiB")),
        Key("slow-consumer-timeout", .string(example: "30s")),
        Key("history-per-task", .integer(Int64(Int.min)...Int64(Int.max))),
        Key("history-max-runs", .integer(Int64(Int.min)...Int64(Int.max))),
        Key("history-max-age", .string(example: "7d")),
        Key("frame-timeout", .string(example: "30s")),
        Key("max-input-bytes", .string(example: "512MiB")),
        Key("sync", .boolean),
        Key("write-map", .boolean),
        Key("map-size-max", .string(example: "64GiB")),
        Key("shutdown-grace", .string(example: "5s")),
        Key("dispatch-lead", .string(example: "50ms")),
        Key("socket-activation", .boolean),
        Key("metrics-listen", .string(example: "127.0.0.1:9464")),
        Key("log-level", .string(example: "info")),
        Key("log-format", .string(example: "text")),
    ]

    /// Where the systemd unit points `--config` (`make install` puts the example there). The daemon reads no
    /// file unless `--config` names one: the same binary is a developer's per-user daemon, which must not pick
    /// up the system daemon's socket and settings.
    public static let systemPath = "/etc/taskshed/taskshedd.toml"

    /// A key's value where the file sets it.
    public struct Setting: Sendable, Hashable {
        /// The key.
        public var key: Key
        /// The arguments it stands for (`--lease-timeout=30s`, `--no-sync`, one `--allow-uid=…` per element).
        public var arguments: [String]
        /// Line of the key, from 1.
        public var line: Int
        /// Column of the key, from 1.
        public var column: Int
    }

    /// The file's path, as given.
    public let path: String
    /// The keys the file sets, in the order of its lines.
    public let settings: [Setting]

    /// Reads and checks a file.
    /// - Parameter path: The file (`--config`'s value).
    /// - Throws: `ConfigurationFileError` when the file cannot be read, is not TOML, or has an unknown key or a
    ///   value of the wrong type.
    public static func load(path: String) throws(ConfigurationFileError) -> ConfigurationFile {
        guard let text = TextReader.read(path) else {
            throw ConfigurationFileError(path: path, line: nil, column: nil,
                                         message: "cannot read the config file: \(String(cString: strerror(errno)))")
        }
        return try ConfigurationFile(path: path, text: text)
    }

    /// Checks a file's text.
    /// - Parameters:
    ///   - path: The file's path, for messages.
    ///   - text: Its contents.
    /// - Throws: `ConfigurationFileError` naming the line (and column) of a TOML syntax error, an unknown key, a
    ///   table, or a value of the wrong type.
    public init(path: String, text: String) throws(ConfigurationFileError) {
        self.path = path
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationFileError(path: path, line: error.source.begin.line, column: error.source.begin.column,
                                         message: "TOML syntax error: \(error.description)")
        } catch {
            throw ConfigurationFileError(path: path, line: nil, column: nil, message: "TOML syntax error: \(error)")
        }
        let lines = Self.keyPositions(in: text)
        var settings: [Setting] = []
        for (name, value) in table {
            let (line, column) = lines[name] ?? (1, 1)
            func fail(_ message: String) -> ConfigurationFileError {
                ConfigurationFileError(path: path, line: line, column: column, message: message)
            }
            guard let key = Self.keys.first(where: { $0.name == name }) else {
                if value.type == .table { throw fail("[\(name)]: the file has no tables; every key is at the top") }
                if name == "config" { throw fail("config: a config file cannot name another one") }
                if let near = Self.nearestKey(to: name) {
                    throw fail("unknown key '\(name)' (did you mean '\(near)'?)")
                }
                throw fail("unknown key '\(name)'; the keys are the long flags of taskshedd --help without --")
            }
            let found = "found \(Self.describe(value.type))"
            var arguments: [String] = []
            switch key.kind {
            case .string(let example):
                guard let string = value.string else {
                    throw fail("\(name): expected a string such as \"\(example)\", \(found)")
                }
                // `--option=value`, so that a value starting with "-" is never taken for a flag.
                arguments = [key.options[0] + "=" + string]
            case .integer(let range):
                guard let integer = value.int else { throw fail("\(name): expected an integer, \(found)") }
                guard range.contains(Int64(integer)) else {
                    throw fail("\(name): \(integer) is out of range (\(range.lowerBound)...\(range.upperBound))")
                }
                arguments = [key.options[0] + "=" + String(integer)]
            case .boolean:
                guard let boolean = value.bool else {
                    throw fail("\(name): expected true or false, \(found)")
                }
                arguments = [boolean ? key.options[0] : key.options[1]]
            case .strings:
                guard let array = value.array else {
                    throw fail("\(name): expected an array of strings such as [\"alice\", \"1001\"], \(found)")
                }
                for element in array {
                    guard let string = element.string else {
                        throw fail("\(name): expected an array of strings, found an element that is "
                                   + Self.describe(element.type))
                    }
                    arguments.append(key.options[0] + "=" + string)
                }
            }
            settings.append(Setting(key: key, arguments: arguments, line: line, column: column))
        }
        self.settings = settings.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
    }

    /// The arguments the file stands for, less the keys that the command line replaces; put them before the
    /// command line's own.
    /// - Parameter commandLine: The command-line arguments (without the program name).
    /// - Returns: `--option=value` arguments and bare boolean flags, in the order of the file's lines.
    public func arguments(overriddenBy commandLine: [String]) -> [String] {
        let given = Self.optionsNamed(in: commandLine)
        return settings.filter { given.isDisjoint(with: $0.key.replacedBy) }.flatMap(\.arguments)
    }

    /// The setting to blame for a check that failed, unless the command line gave the option.
    /// - Parameters:
    ///   - error: A failed check of the merged arguments; it names a flag (`--lease-timeout`).
    ///   - commandLine: The command-line arguments.
    /// - Returns: The error with the file, line, column and key, or `nil` when the option came from the command
    ///   line or the file does not set it.
    public func locate(_ error: ConfigurationError, commandLine: [String]) -> ConfigurationFileError? {
        guard !Self.optionsNamed(in: commandLine).contains(error.option),
              let setting = settings.first(where: { $0.key.options.contains(error.option) })
        else { return nil }
        return ConfigurationFileError(path: path, line: setting.line, column: setting.column,
                                      message: "\(setting.key.name): \(error.message)")
    }

    /// The long options an argument list names (`--socket`, `--socket=…`), up to a `--` terminator.
    static func optionsNamed(in arguments: [String]) -> Set<String> {
        var result: Set<String> = []
        for argument in arguments {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            result.insert(String(argument.prefix { $0 != "=" }))
        }
        return result
    }

    /// Line and column of each top-level `key =` (bare or quoted) and `[table]` header in the text. TOMLKit
    /// gives positions for syntax errors only, not for the values it parsed.
    static func keyPositions(in text: String) -> [String: (Int, Int)] {
        var result: [String: (Int, Int)] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let indent = line.prefix { $0 == " " || $0 == "\t" }
            var rest = line.dropFirst(indent.count)
            if rest.first == "[" {
                let name = rest.drop { $0 == "[" || $0 == " " }.prefix { $0 != "]" && $0 != "." && $0 != " " }
                if !name.isEmpty && result[String(name)] == nil { result[String(name)] = (index + 1, indent.count + 1) }
                continue
            }
            var name: Substring
            if let quote = rest.first, quote == "\"" || quote == "'" {
                rest = rest.dropFirst()
                name = rest.prefix { $0 != quote }
                rest = rest.dropFirst(name.count + 1)
            } else {
                name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
                rest = rest.dropFirst(name.count)
            }
            // `a.b = 1` (a dotted key) makes a table `a`: blamed on its line too.
            let next = rest.drop(while: { $0 == " " || $0 == "\t" }).first
            guard !name.isEmpty, next == "=" || next == "." else { continue }
            if result[String(name)] == nil { result[String(name)] = (index + 1, indent.count + 1) }
        }
        return result
    }

    /// The known key at the smallest edit distance from `name`, if that distance is at most a third of its
    /// length (a typo, not another word).
    static func nearestKey(to name: String) -> String? {
        let scored = keys.map { ($0.name, editDistance(Array(name), Array($0.name))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, best.0.count / 3) else { return nil }
        return best.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }

    static func describe(_ type: TOMLType) -> String {
        switch type {
        case .int: "an integer"
        case .array: "an array"
        case .table: "a table"
        default: "a \(type)"
        }
    }
}

/// A config file that cannot be used: its path, where in it, and what is wrong and allowed.
public struct ConfigurationFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file, as given to `--config`.
    public var path: String
    /// The line at fault, from 1, when there is one.
    public var line: Int?
    /// The column at fault, from 1, when known.
    public var column: Int?
    /// What is wrong, starting with the key when there is one (`lease-timeout: '3x' is not a duration…`).
    public var message: String

    /// Creates an error.
    public init(path: String, line: Int?, column: Int?, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    /// `"<path>:<line>:<column>: <message>"` (as compilers write it), one line.
    public var description: String {
        var place = path
        if let line { place += ":\(line)" }
        if line != nil, let column { place += ":\(column)" }
        return "\(place): \(message)"
    }
}

/// Reads a whole file as UTF-8 (Foundation is not among the server's dependencies).
enum TextReader {
    static func read(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
