import Foundation
import Glibc
import TaskShedTestSupport
import Testing

/// The Makefile's `install` and `uninstall`, run as a package build runs them (`DESTDIR`, `PREFIX=/usr`) on the
/// binaries this test build already has (`BUILD_DIR`), so that nothing is compiled twice. Each test installs into
/// its own temporary root, with the man pages and completions generated there too (`GEN_DIR`), so that the
/// repository's own `.build/generated` is left alone. Serialized: the first install builds argument-parser's
/// generate-manual tool into `.build/tools`, and the others would only wait for SwiftPM's lock on it.
@Suite(.serialized) struct InstallTargetTests {
    /// Every file `make install DESTDIR=… PREFIX=/usr` puts, as README.md ("Under systemd", "From source") lists them, with its mode.
    static let expectedFiles: [String: mode_t] = [
        "/usr/bin/taskshedd": 0o755,
        "/usr/bin/taskshedctl": 0o755,
        "/usr/share/man/man8/taskshedd.8": 0o644,
        "/usr/share/man/man1/taskshedctl.1": 0o644,
        "/usr/lib/systemd/system/taskshedd.service": 0o644,
        "/usr/lib/systemd/system/taskshedd.socket": 0o644,
        "/usr/lib/sysusers.d/taskshed.conf": 0o644,
        "/usr/lib/tmpfiles.d/taskshed.conf": 0o644,
        "/usr/share/doc/taskshed/examples/taskshedd-postgresql.conf": 0o644,
        "/usr/share/doc/taskshed/examples/taskshedd-metrics.conf": 0o644,
        // PREFIX=/usr keeps its configuration in /etc, not /usr/etc.
        "/etc/taskshed/taskshedd.toml": 0o644,
        "/usr/share/bash-completion/completions/taskshedctl": 0o644,
        "/usr/share/zsh/vendor-completions/_taskshedctl": 0o644,
        "/usr/share/fish/vendor_completions.d/taskshedctl.fish": 0o644,
    ]

    static let canRender = access("/usr/bin/man", X_OK) == 0
    static let canVerify = access("/usr/bin/systemd-analyze", X_OK) == 0

    @Test func installPutsEveryFileWhereTheReadmeSaysAndUninstallRemovesThem() throws {
        let staging = try Staging()
        defer { staging.remove() }
        try staging.make("install")

        var found: [String: mode_t] = [:]
        for path in try Self.files(under: staging.root) {
            var info = stat()
            #expect(lstat(staging.root + path, &info) == 0)
            found[path] = info.st_mode & 0o7777
        }
        #expect(found == Self.expectedFiles)

        // The unit starts the installed binary, not the /usr/local one the repository's unit names, with the
        // installed config file.
        let service = TextFile.read(staging.root + "/usr/lib/systemd/system/taskshedd.service") ?? ""
        #expect(service.contains("\nExecStart=/usr/bin/taskshedd --config /etc/taskshed/taskshedd.toml\n"),
                "\(service)")
        #expect(!service.contains("/usr/local/"))
        let config = TextFile.read(staging.root + "/etc/taskshed/taskshedd.toml") ?? ""
        #expect(config.contains("\nsocket = \"/run/taskshed/taskshedd.sock\"\n"), "\(config)")

        let help = try Self.run(staging.root + "/usr/bin/taskshedctl", ["--help"], in: staging.directory)
        #expect(help.status == 0 && help.output.contains("USAGE: taskshedctl"), "\(help.output)")
        let daemonHelp = try Self.run(staging.root + "/usr/bin/taskshedd", ["--help"], in: staging.directory)
        #expect(daemonHelp.status == 0 && daemonHelp.output.contains("--socket"), "\(daemonHelp.output)")
        let bash = TextFile.read(staging.root + "/usr/share/bash-completion/completions/taskshedctl") ?? ""
        #expect(bash.contains("complete ") && bash.contains("taskshedctl"))

        // A second install keeps the operator's config.
        try "socket = \"/srv/edited.sock\"\n".write(toFile: staging.root + "/etc/taskshed/taskshedd.toml",
                                                      atomically: false, encoding: .utf8)
        try staging.make("install")
        #expect(TextFile.read(staging.root + "/etc/taskshed/taskshedd.toml") == "socket = \"/srv/edited.sock\"\n")

        try staging.make("uninstall")
        #expect(try Self.files(under: staging.root) == [])
    }

    @Test(.enabled(if: canRender, "needs man (man-db) to render the pages"))
    func installedManPagesRenderWithoutWarningsAndNameEveryHelpOption() throws {
        let staging = try Staging()
        defer { staging.remove() }
        try staging.make("install")
        for (page, title, binary) in [("/usr/share/man/man8/taskshedd.8", "TASKSHEDD(8)", "/usr/bin/taskshedd"),
                                      ("/usr/share/man/man1/taskshedctl.1", "TASKSHEDCTL(1)", "/usr/bin/taskshedctl")] {
            let rendered = staging.directory + "/page.txt"
            // stdout to a file of its own: what is left in the output is what man and groff warn.
            let result = try Self.run("/bin/sh", ["-c", "man --warnings -l \"$0\" > \"$1\"", staging.root + page, rendered],
                                      in: staging.directory, environment: ["MANWIDTH": "100", "LC_ALL": "C.UTF-8"])
            #expect(result.status == 0 && result.output.isEmpty, "man -l \(page): \(result.output)")
            let text = TextFile.read(rendered) ?? ""
            #expect(text.hasPrefix(title), "\(page) renders as: \(text.prefix(200))")
            // The generated part, then the hand-written one (docs/man/*.extra).
            for heading in ["SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXIT STATUS", "SIGNALS", "SEE ALSO"] {
                let count = text.components(separatedBy: "\n\(heading)\n").count - 1
                #expect(count == 1, "\(page) has \(count) \(heading) sections")
            }
            // The hand-written EXIT STATUS replaced the generator's generic one.
            #expect(!text.contains("exits 0 on success, and >0 if an error occurs"))
            // Generated from the same definitions as --help: every option --help names is in the page.
            let help = try Self.run(staging.root + binary, ["--help"], in: staging.directory).output
            let options = Set(help.matches(of: /--[a-z][a-z-]+/).map { String($0.output) })
            #expect(options.count > 2, "\(binary) --help: \(help)")
            for option in options {
                #expect(text.contains(option), "\(page) does not mention \(option)")
            }
        }
    }

    /// The installed units name /usr/bin/taskshedd, which this machine does not have: the copies verified point
    /// their ExecStart= at the installed binary under DESTDIR instead.
    @Test(.enabled(if: canVerify, "needs systemd-analyze"))
    func installedUnitsPassSystemdAnalyzeVerify() throws {
        let staging = try Staging()
        defer { staging.remove() }
        try staging.make("install")
        let units = staging.directory + "/units"
        #expect(mkdir(units, 0o755) == 0)
        for unit in ["taskshedd.service", "taskshedd.socket"] {
            let text = try #require(TextFile.read(staging.root + "/usr/lib/systemd/system/" + unit))
            let patched = text.replacing("/usr/bin/taskshedd", with: staging.root + "/usr/bin/taskshedd")
            try patched.write(toFile: units + "/" + unit, atomically: false, encoding: .utf8)
        }
        let result = try Self.run("/usr/bin/systemd-analyze",
                                  ["verify", "--man=no", units + "/taskshedd.socket", units + "/taskshedd.service"],
                                  in: staging.directory)
        #expect(result.status == 0 && result.output.isEmpty, "systemd-analyze verify: \(result.output)")
    }

    /// A temporary directory holding the install root (`root`) and the generated man pages and completions.
    struct Staging {
        let directory: String
        var root: String { directory + "/root" }

        init() throws { directory = try TemporaryDirectory.create(prefix: "tsinstall") }

        func remove() { TemporaryDirectory.remove(directory) }

        /// Runs `make -C <repository> target` for this staging root; fails the test (with make's output) unless
        /// make exits 0.
        func make(_ target: String) throws {
            let binaries = try CLIProcess.executable().split(separator: "/", omittingEmptySubsequences: false)
                .dropLast().joined(separator: "/")
            try #require(access(binaries + "/taskshedd", X_OK) == 0, "taskshedd is not built in \(binaries)")
            // The first run builds generate-manual (a minute on a loaded machine); later ones take a second.
            let result = try InstallTargetTests.run(
                "/usr/bin/make", ["-C", try InstallTargetTests.repository(), target, "DESTDIR=" + root, "PREFIX=/usr",
                                  "BUILD_DIR=" + binaries, "GEN_DIR=" + directory + "/generated"],
                in: directory, timeoutSeconds: 900)
            try #require(result.status == 0, "make \(target) exited with \(result.status):\n\(result.output)")
        }
    }

    /// The repository holding this file (where the Makefile is).
    static func repository(filePath: String = #filePath) throws -> String {
        var components = filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while !components.isEmpty {
            components.removeLast()
            let candidate = components.joined(separator: "/")
            if access(candidate + "/Makefile", R_OK) == 0 && access(candidate + "/Package.swift", R_OK) == 0 {
                return candidate
            }
        }
        throw CLITestError("no Makefile beside a Package.swift above \(filePath)")
    }

    /// Every path under `root` that is not a directory, relative to `root`, sorted.
    static func files(under root: String) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var result: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var info = stat()
            if lstat(root + "/" + relative, &info) == 0 && info.st_mode & S_IFMT != S_IFDIR {
                result.append("/" + relative)
            }
        }
        return result.sorted()
    }

    /// Runs a program with this process's environment (plus `environment`), its standard output and error in one
    /// file; returns its exit status and that output.
    static func run(_ executable: String, _ arguments: [String], in directory: String,
                    environment: [String: String] = [:], timeoutSeconds: Double = 60) throws
        -> (status: Int32, output: String)
    {
        let outputPath = directory + "/output-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(outputPath) }
        let child = try ChildProcess(executable: executable, arguments: arguments,
                                     environment: DaemonProcess.inheritedEnvironment().merging(environment) { $1 },
                                     outputPath: outputPath)
        guard let status = child.wait(timeoutSeconds: timeoutSeconds) else {
            child.killAndWait()
            throw CLITestError("\(executable) \(arguments) did not finish in \(Int(timeoutSeconds)) s")
        }
        return (ChildProcess.exitCode(fromWaitStatus: status), TextFile.read(outputPath) ?? "")
    }
}
