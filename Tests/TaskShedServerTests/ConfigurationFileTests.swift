import Foundation
import Glibc
import TaskShedProtocol
import TaskShedServer
import TaskShedTestSupport
import Testing

/// The config file (`--config`): its parsing and key table (unit tests), the table against the real binary's
/// flags, the shipped example, and the daemon started with a file.
@Suite struct ConfigurationFileTests {
    static let repository: String = {
        var components = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        components.removeLast(3)
        return components.joined(separator: "/")
    }()

    static let durationHelp = "(write e.g. 500ms, 0.2s, 30s, 1.5m or 2h30m; a bare number is seconds)"

    @Test func aFileSetsEachKindOfValueAsTheFlagsWouldBeGiven() throws {
        let file = try ConfigurationFile(path: "t.toml", text: """
            # comment
            socket = "/run/x.sock"
            lease-timeout = "-5s"
            max-connections = 12
            sync = false
            write-map = true
            allow-uid = ["alice", "1001"]
            """)
        #expect(file.arguments(overriddenBy: []) == [
            "--socket=/run/x.sock", "--lease-timeout=-5s", "--max-connections=12", "--no-sync", "--write-map",
            "--allow-uid=alice", "--allow-uid=1001",
        ])
        #expect(file.settings.map(\.line) == [2, 3, 4, 5, 6, 7])
    }

    @Test func aFlagOnTheCommandLineReplacesItsKeyWholly() throws {
        let file = try ConfigurationFile(path: "t.toml", text: """
            socket = "/run/x.sock"
            lease-timeout = "5s"
            sync = false
            allow-uid = ["alice", "bob"]
            datastore = "lmdb"
            """)
        #expect(file.arguments(overriddenBy: ["--lease-timeout", "1s", "--sync", "--allow-uid=carol",
                                              "--datastore-file", "/etc/ds"])
                == ["--socket=/run/x.sock"])
        // A value is not an option: "--sync" inside another option's value replaces nothing.
        #expect(file.arguments(overriddenBy: ["--socket-group=--sync"]).contains("--no-sync"))
    }

    @Test(arguments: [
        // An unknown key, with the nearest known one.
        ("socket = \"/s\"\nlease-timout = \"30s\"\n",
         "t.toml:2:1: unknown key 'lease-timout' (did you mean 'lease-timeout'?)"),
        ("colour = \"blue\"\n",
         "t.toml:1:1: unknown key 'colour'; the keys are the long flags of taskshedd --help without --"),
        // The wrong TOML type, saying what is allowed.
        ("\n  lease-timeout = 30\n", "t.toml:2:3: lease-timeout: expected a string such as \"30s\", found an integer"),
        ("max-connections = \"10\"\n", "t.toml:1:1: max-connections: expected an integer, found a string"),
        ("sync = \"no\"\n", "t.toml:1:1: sync: expected true or false, found a string"),
        ("allow-uid = \"alice\"\n",
         "t.toml:1:1: allow-uid: expected an array of strings such as [\"alice\", \"1001\"], found a string"),
        ("max-batch = -1\n", "t.toml:1:1: max-batch: -1 is out of range (0...4294967295)"),
        ("socket = \"/s\"\n[server]\nsocket = \"/t\"\n", "t.toml:2:1: [server]: the file has no tables; every key is at the top"),
        ("\nserver.socket = \"/t\"\n", "t.toml:2:1: [server]: the file has no tables; every key is at the top"),
        ("config = \"/etc/other.toml\"\n", "t.toml:1:1: config: a config file cannot name another one"),
        // TOML syntax errors, where TOMLKit puts them.
        ("socket = \"/s\"\nlease-timeout = \"3s\n",
         "t.toml:2:20: TOML syntax error: Error while parsing string: unescaped control characters other than TAB (U+0009) are explicitly prohibited"),
        ("socket = \"/s\"\nsocket = \"/t\"\n",
         "t.toml:2:10: TOML syntax error: Error while parsing key-value pair: cannot redefine existing string 'socket'"),
    ])
    func eachKindOfBadInputNamesTheLineAndWhatIsAllowed(text: String, message: String) {
        #expect(throws: ConfigurationFileError.self) { _ = try ConfigurationFile(path: "t.toml", text: text) }
        do {
            _ = try ConfigurationFile(path: "t.toml", text: text)
        } catch {
            #expect(error.description == message)
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aCheckThatFailsIsBlamedOnTheFileOnlyWhenTheFileGaveTheOption() throws {
        let file = try ConfigurationFile(path: "t.toml", text: "socket = \"/s\"\n\nlease-timeout = \"3x\"\n")
        let error = ConfigurationError(option: "--lease-timeout", message: "'3x' is not a duration")
        #expect(file.locate(error, commandLine: [])?.description == "t.toml:3:1: lease-timeout: '3x' is not a duration")
        #expect(file.locate(error, commandLine: ["--lease-timeout=3x"]) == nil)
        #expect(file.locate(ConfigurationError(option: "--frame-timeout", message: "bad"), commandLine: []) == nil)
    }

    // MARK: The example file

    /// `systemd/taskshedd.toml` with every commented-out `# key = value` line made live.
    static func exampleWithEveryKey() throws -> (text: String, values: [String: String]) {
        let text = try String(contentsOfFile: repository + "/systemd/taskshedd.toml", encoding: .utf8)
        var values: [String: String] = [:]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard let match = line.wholeMatch(of: /(?:# )?([a-z-]+) = (.+)/) else { return String(line) }
            values[String(match.output.1)] = String(match.output.2)
            return "\(match.output.1) = \(match.output.2)"
        }
        return (lines.joined(separator: "\n"), values)
    }

    @Test func everyKeyOfTheExampleFileParses() throws {
        let (text, values) = try Self.exampleWithEveryKey()
        let file = try ConfigurationFile(path: "taskshedd.toml", text: text)
        #expect(Set(file.settings.map(\.key.name)) == Set(ConfigurationFile.keys.map(\.name)))
        #expect(Set(values.keys) == Set(ConfigurationFile.keys.map(\.name)))
        // As shipped (comments left), it sets only what the unit used to pass as flags.
        let shipped = try ConfigurationFile(path: "taskshedd.toml",
                                            text: try String(contentsOfFile: Self.repository + "/systemd/taskshedd.toml",
                                                             encoding: .utf8))
        #expect(shipped.arguments(overriddenBy: []) == ["--socket=/run/taskshed/taskshedd.sock",
                                                       "--socket-group=taskshed"])
    }

    // MARK: Against the real binary

    /// The daemon's arguments as argument-parser describes them (`--experimental-dump-help`).
    static func dumpedArguments() throws -> [[String: Any]] {
        let result = try runDaemonToExit(["--experimental-dump-help"])
        #expect(result.code == 0)
        let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        let command = try #require(json?["command"] as? [String: Any])
        return try #require(command["arguments"] as? [[String: Any]])
    }

    static func longName(_ argument: [String: Any]) -> String? {
        let names = argument["names"] as? [[String: Any]] ?? []
        return names.first { $0["kind"] as? String == "long" }?["name"] as? String
    }

    /// Every flag but --config, --help and --version has a key of the matching kind, and every key is a flag;
    /// the example file shows each flag's default.
    @Test func theKeyTableAndTheExampleAgreeWithTheDaemonsFlags() throws {
        let arguments = try Self.dumpedArguments()
        let byName = Dictionary(arguments.compactMap { a in Self.longName(a).map { ($0, a) } }) { a, _ in a }
        let flags = Set(byName.keys).subtracting(["config", "help", "version"])
        let keys = Dictionary(uniqueKeysWithValues: ConfigurationFile.keys.map { ($0.name, $0) })
        let covered = Set(ConfigurationFile.keys.flatMap(\.options).map { String($0.dropFirst(2)) })
        #expect(flags.subtracting(covered).sorted() == [], "flags without a key")
        #expect(covered.subtracting(flags).sorted() == [], "keys without a flag")
        let example = try Self.exampleWithEveryKey().values
        for (name, key) in keys {
            guard let argument = byName[name] else { continue }
            let isFlag = argument["kind"] as? String == "flag"
            let repeats = argument["isRepeating"] as? Bool ?? false
            let isCount = argument["valueName"] as? String == "n"
            let defaultValue = argument["defaultValue"] as? String
            switch key.kind {
            case .boolean:
                #expect(isFlag && byName["no-" + name] != nil, "\(name) is not a --\(name)/--no-\(name) pair")
                #expect(example[name] == (defaultValue == "--" + name ? "true" : "false"), "\(name)")
            case .strings:
                #expect(!isFlag && repeats, "\(name) is not a repeatable option")
            case .integer:
                #expect(!isFlag && !repeats && isCount, "\(name) does not take a number")
                if let defaultValue { #expect(example[name] == defaultValue, "\(name)") }
            case .string:
                #expect(!isFlag && !repeats && !isCount, "\(name) takes a number or repeats")
                if let defaultValue { #expect(example[name] == "\"\(defaultValue)\"", "\(name)") }
            }
        }
    }

    @Test func aBadValueInTheFileStopsTheDaemonWithTheFlagsOwnMessage() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsf")
        defer { TemporaryDirectory.remove(directory) }
        let path = directory + "/d.toml"
        try "socket = \"\(directory)/d.sock\"\ndata-dir = \"\(directory)/data\"\n\nlease-timeout = \"3x\"\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        let result = try runDaemonToExit(["--config", path])
        #expect(result.code == 2)
        #expect(result.output == "taskshedd: \(path):4:1: lease-timeout: '3x' is not a duration: unknown unit 'x' "
                + Self.durationHelp + "\n")
        // The same value as a flag: the same message after the flag's name.
        let flag = try runDaemonToExit(["--config", path, "--lease-timeout", "4y"])
        #expect(flag.code == 2)
        #expect(flag.output == "taskshedd: --lease-timeout: '4y' is not a duration: unknown unit 'y' "
                + Self.durationHelp + "\n")
        // A check across keys (validate()) names the file too.
        try "socket = \"\(directory)/d.sock\"\nmax-output-bytes = \"1KiB\"\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        let across = try runDaemonToExit(["--config", path])
        #expect(across.code == 2 && across.output.hasPrefix("taskshedd: \(path):2:1: max-output-bytes: "),
                "\(across.output)")
        #expect(access(directory + "/d.sock", F_OK) != 0)
    }

    /// `metrics-listen` is a string key like the flag's value; a bad one names the file's line.
    @Test func theMetricsListenKeyStartsTheEndpointAndABadOneNamesItsLine() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsf")
        defer { TemporaryDirectory.remove(directory) }
        let path = directory + "/d.toml"
        try "metrics-listen = \"127.0.0.1:0\"\n".write(toFile: path, atomically: false, encoding: .utf8)
        let daemon = try DaemonProcess(arguments: ["--config", path])
        let address = try daemon.metricsAddress()
        let http = try RawHTTPConnection(host: address.host, port: address.port)
        try http.send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try http.readResponse()?.status == 200)
        #expect(try daemon.stop() == 0)

        try "\nmetrics-listen = \"localhost:9464\"\n".write(toFile: path, atomically: false, encoding: .utf8)
        let bad = try runDaemonToExit(["--config", path, "--socket", directory + "/d.sock"])
        #expect(bad.code == 2)
        #expect(bad.output.hasPrefix("taskshedd: \(path):2:1: metrics-listen: 'localhost:9464' has no numeric IPv4 "),
                "\(bad.output)")
        try "metrics-listen = 9464\n".write(toFile: path, atomically: false, encoding: .utf8)
        let integer = try runDaemonToExit(["--config", path])
        #expect(integer.output == "taskshedd: \(path):1:1: metrics-listen: expected a string such as "
                + "\"127.0.0.1:9464\", found an integer\n")
    }

    @Test func aMissingConfigFileIsAnError() throws {
        let result = try runDaemonToExit(["--config", "/nonexistent/taskshedd.toml"])
        #expect(result.code == 2)
        #expect(result.output == "taskshedd: /nonexistent/taskshedd.toml: cannot read the config file: No such file or directory\n")
    }

    /// The file names the socket and data directory, and values the command line overrides (invalid ones, so
    /// that the daemon would not start unless the flags won: an array is replaced, not added to).
    @Test func theDaemonStartedWithAConfigFileServesOnTheSocketTheFileNames() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsf")
        defer { TemporaryDirectory.remove(directory) }
        let path = directory + "/d.toml"
        let socket = directory + "/from-file.sock"
        try """
            socket = "\(socket)"
            data-dir = "\(directory)/data"
            max-connections = 0
            allow-uid = ["no-such-user-xyz"]
            max-batch = 77
            socket-activation = false
            """.write(toFile: path, atomically: false, encoding: .utf8)
        let child = try ChildProcess(executable: try DaemonProcess.executablePath(),
                                     arguments: ["--config", path, "--max-connections", "5", "--allow-uid", "root"],
                                     environment: DaemonProcess.inheritedEnvironment(),
                                     outputPath: directory + "/daemon.log")
        defer { if child.isRunning { child.killAndWait() } }
        var hello: HelloOK?
        for _ in 0..<2000 where hello == nil && child.isRunning {
            if let connection = try? RawConnection(path: socket) { hello = try? connection.handshake() }
            if hello == nil { usleep(10_000) }
        }
        let log = TextFile.read(directory + "/daemon.log") ?? ""
        let served = try #require(hello, "the daemon did not serve on \(socket); log: \(log)")
        #expect(served.maxBatch == 77)
        child.send(SIGTERM)
        let status = child.wait(timeoutSeconds: 30)
        #expect(status.map(ChildProcess.exitCode(fromWaitStatus:)) == 0)
    }
}
