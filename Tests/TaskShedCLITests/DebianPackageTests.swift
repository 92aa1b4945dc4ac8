import Foundation
import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// `scripts/build-deb.sh` run on the debug build this test build already has (`--build-dir`, with
/// `--allow-toolchain-runtime` since a debug build loads Swift's runtime from the toolchain), so that nothing is
/// compiled again: the release package differs only in its binaries (`--static-swift-stdlib`). The package is
/// built once, by the first test that needs it, then inspected with dpkg-deb and unpacked with `dpkg -x`.
@Suite(.serialized) struct DebianPackageTests {
    static let canBuild = access("/usr/bin/dpkg-deb", X_OK) == 0 && access("/usr/bin/dpkg-shlibdeps", X_OK) == 0
    static let hasLintian = access("/usr/bin/lintian", X_OK) == 0

    /// The package's files (besides directories), with their modes: what `make install` puts, with the man pages
    /// gzipped, plus the Debian documentation and lintian overrides.
    static let expectedFiles: [String: String] = {
        var files: [String: String] = [:]
        for (path, mode) in InstallTargetTests.expectedFiles {
            let packaged = path.hasPrefix("/usr/share/man/") ? path + ".gz" : path
            files["." + packaged] = mode == 0o755 ? "-rwxr-xr-x" : "-rw-r--r--"
        }
        for path in ["./usr/share/doc/taskshed/copyright", "./usr/share/doc/taskshed/changelog.gz",
                     "./usr/share/doc/taskshed/changelog.Debian.gz", "./usr/share/lintian/overrides/taskshed"] {
            files[path] = "-rw-r--r--"
        }
        return files
    }()

    @Test(.enabled(if: canBuild, "needs dpkg-deb and dpkg-shlibdeps (dpkg-dev)"))
    func controlFileNamesTheVersionTheComputedDependsAndTheConffile() throws {
        let package = try Self.package()
        let info = try Self.output("/usr/bin/dpkg-deb", ["--info", package.deb])
        let architecture = try Self.output("/usr/bin/dpkg", ["--print-architecture"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for field in ["Package: taskshed", "Version: \(TaskShedVersion.current)-1", "Architecture: \(architecture)",
                      "Section: admin", "Priority: optional", "Maintainer: TaskShed maintainers <"] {
            #expect(info.contains("\n " + field), "no \(field) in:\n\(info)")
        }
        let depends = try #require(info.split(separator: "\n").first { $0.hasPrefix(" Depends: ") })
        for library in ["libc6 (", "libuv1 (", "liblmdb0 (", "libhttp-parser2.9 (", "libpq5 (",
                        "systemd | systemd-standalone-sysusers"] {
            #expect(depends.contains(library), "\(depends)")
        }
        let conffiles = try Self.output("/usr/bin/dpkg-deb", ["--info", package.deb, "conffiles"])
        #expect(conffiles == "/etc/taskshed/taskshedd.toml\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(info.contains(" \(script) "), "no \(script) in:\n\(info)")
        }
        let postinst = try Self.output("/usr/bin/dpkg-deb", ["--info", package.deb, "postinst"])
        #expect(postinst.contains("systemd-sysusers taskshed.conf"))
        #expect(postinst.contains("deb-systemd-helper enable 'taskshedd.socket'"))
    }

    @Test(.enabled(if: canBuild, "needs dpkg-deb and dpkg-shlibdeps (dpkg-dev)"))
    func packageHoldsEveryInstalledFileOwnedByRootWithItsMode() throws {
        let package = try Self.package()
        let contents = try Self.output("/usr/bin/dpkg-deb", ["--contents", package.deb])
        var found: [String: String] = [:]
        for line in contents.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            try #require(fields.count >= 6, "\(line)")
            #expect(fields[1] == "root/root", "\(line)")
            if fields[0].hasPrefix("d") {
                #expect(fields[0] == "drwxr-xr-x", "\(line)")
            } else {
                found[String(fields[5])] = String(fields[0])
            }
        }
        #expect(found == Self.expectedFiles)
    }

    @Test(.enabled(if: canBuild, "needs dpkg-deb and dpkg-shlibdeps (dpkg-dev)"))
    func unpackedBinariesRunAndPrintTheVersion() throws {
        let package = try Self.package()
        let version = try InstallTargetTests.run(package.root + "/usr/bin/taskshedd", ["--version"],
                                                 in: package.directory)
        #expect(version.status == 0 && version.output == TaskShedVersion.current + "\n", "\(version.output)")
        let help = try InstallTargetTests.run(package.root + "/usr/bin/taskshedctl", ["--help"], in: package.directory)
        #expect(help.status == 0 && help.output.contains("USAGE: taskshedctl"), "\(help.output)")
    }

    @Test(.enabled(if: canBuild && InstallTargetTests.canRender, "needs dpkg-dev and man (man-db)"))
    func unpackedGzippedManPagesRender() throws {
        let package = try Self.package()
        for (page, title) in [("/usr/share/man/man8/taskshedd.8.gz", "TASKSHEDD(8)"),
                              ("/usr/share/man/man1/taskshedctl.1.gz", "TASKSHEDCTL(1)")] {
            let rendered = package.directory + "/page.txt"
            let result = try InstallTargetTests.run(
                "/bin/sh", ["-c", "man --warnings -l \"$0\" > \"$1\"", package.root + page, rendered],
                in: package.directory, environment: ["MANWIDTH": "100", "LC_ALL": "C.UTF-8"])
            #expect(result.status == 0 && result.output.isEmpty, "man -l \(page): \(result.output)")
            let text = TextFile.read(rendered) ?? ""
            #expect(text.hasPrefix(title) && text.contains("\nSYNOPSIS\n"), "\(page): \(text.prefix(200))")
        }
    }

    /// As in InstallTargetTests: copies of the units whose ExecStart= names the unpacked binary.
    @Test(.enabled(if: canBuild && InstallTargetTests.canVerify, "needs dpkg-dev and systemd-analyze"))
    func unpackedUnitsPassSystemdAnalyzeVerify() throws {
        let package = try Self.package()
        let units = package.directory + "/units"
        _ = mkdir(units, 0o755)
        for unit in ["taskshedd.service", "taskshedd.socket"] {
            let text = try #require(TextFile.read(package.root + "/usr/lib/systemd/system/" + unit))
            try text.replacing("/usr/bin/taskshedd", with: package.root + "/usr/bin/taskshedd")
                .write(toFile: units + "/" + unit, atomically: false, encoding: .utf8)
        }
        let result = try InstallTargetTests.run(
            "/usr/bin/systemd-analyze", ["verify", "--man=no", units + "/taskshedd.socket", units + "/taskshedd.service"],
            in: package.directory)
        #expect(result.status == 0 && result.output.isEmpty, "systemd-analyze verify: \(result.output)")
    }

    /// build-deb.sh runs lintian (`--fail-on error,warning`) when it is installed; its output is in the build log.
    @Test(.enabled(if: canBuild && hasLintian, "needs lintian (scripts/ensure-deps.sh installs it)"))
    func lintianReportsNoErrorsOrWarnings() throws {
        let package = try Self.package()
        #expect(!package.log.contains("lintian is not installed"))
        let tags = package.log.split(separator: "\n").filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") }
        #expect(tags.isEmpty, "\(tags)")
    }

    /// Without `--allow-toolchain-runtime`, binaries that load Swift's runtime from the toolchain (this debug build)
    /// are refused before anything is staged: that package would not run on a machine without the toolchain.
    @Test(.enabled(if: canBuild, "needs dpkg-deb and dpkg-shlibdeps (dpkg-dev)"))
    func toolchainLinkedBinariesAreRefusedUnlessAllowed() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsdebno")
        defer { TemporaryDirectory.remove(directory) }
        let result = try InstallTargetTests.run(
            try InstallTargetTests.repository() + "/scripts/build-deb.sh",
            ["--build-dir", try Self.debugBinaries(), "--output", directory + "/out"], in: directory)
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("libswiftCore.so") && result.output.contains("--static-swift-stdlib"),
                "\(result.output)")
        #expect(try InstallTargetTests.files(under: directory + "/out") == [])
    }

    /// The release package's binaries as `scripts/build-deb.sh` builds them (`--static-swift-stdlib` in
    /// .build/deb): they need no library from the toolchain. Compiling them takes about 4 minutes on two cores
    /// from nothing (measured: 3 min 50 s), too long for the suite, so this runs only once they are built.
    static let releaseBinaries = (try? InstallTargetTests.repository()).map { $0 + "/.build/deb/release" } ?? ""
    static let hasReleaseBuild = access(releaseBinaries + "/taskshedd", X_OK) == 0
        && access(releaseBinaries + "/taskshedctl", X_OK) == 0

    @Test(.enabled(if: canBuild && hasReleaseBuild,
                   "needs the static release build: run scripts/build-deb.sh once (about 4 minutes)"))
    func releasePackageDependsOnDebianPackagesOnly() throws {
        let directory = try TemporaryDirectory.create(prefix: "tsdebrel")
        defer { TemporaryDirectory.remove(directory) }
        let result = try InstallTargetTests.run(
            try InstallTargetTests.repository() + "/scripts/build-deb.sh",
            ["--build-dir", Self.releaseBinaries, "--output", directory + "/out"], in: directory, timeoutSeconds: 900)
        try #require(result.status == 0, "\(result.output)")
        let deb = try #require(result.output.split(separator: "\n").last.map(String.init))
        let depends = try Self.output("/usr/bin/dpkg-deb", ["--field", deb, "Depends"])
        #expect(!depends.contains("swift"), "\(depends)")
        let root = directory + "/root"
        _ = try Self.output("/usr/bin/dpkg", ["-x", deb, root])
        for binary in ["taskshedd", "taskshedctl"] {
            let libraries = try Self.output("/usr/bin/ldd", [root + "/usr/bin/" + binary])
            #expect(!libraries.contains("/opt/swift") && !libraries.contains("libswiftCore"), "\(libraries)")
        }
        let version = try InstallTargetTests.run(root + "/usr/bin/taskshedd", ["--version"], in: directory)
        #expect(version.output == TaskShedVersion.current + "\n", "\(version.output)")
        #expect(!result.output.split(separator: "\n").contains { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") })
    }

    /// The package built once for the suite and unpacked: `deb`, its unpacked tree `root`, the build's `log`.
    struct BuiltPackage: Sendable {
        let directory: String
        let deb: String
        let log: String
        var root: String { directory + "/root" }
    }

    private static let built: Result<BuiltPackage, any Error> = Result { try buildAndUnpack() }

    /// The suite's package; fails the calling test with the build's output if it could not be built.
    static func package() throws -> BuiltPackage { try built.get() }

    private static func buildAndUnpack() throws -> BuiltPackage {
        let directory = try TemporaryDirectory.create(prefix: "tsdeb")
        var succeeded = false
        defer { if !succeeded { TemporaryDirectory.remove(directory) } }
        let binaries = try debugBinaries()
        // strip, man page generation, dpkg-deb -Zxz of ~150 MB of debug binaries and lintian: about a minute.
        let result = try InstallTargetTests.run(
            try InstallTargetTests.repository() + "/scripts/build-deb.sh",
            ["--build-dir", binaries, "--allow-toolchain-runtime", "--output", directory + "/out"],
            in: directory, timeoutSeconds: 900)
        guard result.status == 0,
              let deb = result.output.split(separator: "\n").last.map(String.init), deb.hasSuffix(".deb")
        else {
            throw CLITestError("build-deb.sh exited with \(result.status):\n\(result.output)")
        }
        let unpack = try InstallTargetTests.run("/usr/bin/dpkg", ["-x", deb, directory + "/root"], in: directory)
        guard unpack.status == 0 else { throw CLITestError("dpkg -x: \(unpack.output)") }
        succeeded = true
        // The tests share it until the process exits; then it goes.
        atexit { if case .success(let package) = DebianPackageTests.built { TemporaryDirectory.remove(package.directory) } }
        return BuiltPackage(directory: directory, deb: deb, log: result.output)
    }

    /// The directory holding this test build's taskshedd and taskshedctl.
    static func debugBinaries() throws -> String {
        try CLIProcess.executable().split(separator: "/", omittingEmptySubsequences: false).dropLast()
            .joined(separator: "/")
    }

    /// Standard output and error of a command that must succeed.
    static func output(_ executable: String, _ arguments: [String]) throws -> String {
        let result = try InstallTargetTests.run(executable, arguments, in: "/tmp")
        try #require(result.status == 0, "\(executable) \(arguments): \(result.output)")
        return result.output
    }
}
