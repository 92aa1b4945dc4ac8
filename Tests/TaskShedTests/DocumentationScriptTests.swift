import Glibc
import TaskShedTestSupport
import Testing

/// `scripts/build-docs.sh`: the DocC catalog (`Sources/TaskShed/TaskShed.docc`) and the library's doc comments
/// build with swift-docc-plugin without a single warning, so that a broken symbol link or a parameter documented
/// under the wrong name fails the suite rather than a reader. The script builds in its own scratch folder
/// (`.build-docs`), so it does not wait for the lock that the running `swift test` holds on `.build`; the first run
/// on a clean clone takes about 40 s on two cores, later runs a few seconds.
@Suite struct DocumentationScriptTests {
    @Test func documentationBuildsWithoutWarnings() async throws {
        let script = try Self.scriptPath()
        let directory = try TemporaryDirectory.create(prefix: "tsdocs")
        defer { TemporaryDirectory.remove(directory) }
        let outputPath = directory + "/output"
        let process = try ChildProcess(
            executable: "/bin/bash", arguments: [script, "--output", directory + "/docs"],
            environment: DaemonProcess.inheritedEnvironment(), outputPath: outputPath)
        // Generous for a cold build on a loaded machine; SIGTERM past it, then SIGKILL. Waited for off the
        // cooperative pool: the build takes ~40 s on a clean clone, and the async worker tests need the pool.
        var status = await process.waitOffPool(timeoutSeconds: 300)
        if status == nil {
            process.send(SIGTERM)
            status = process.wait(timeoutSeconds: 10)
            if status == nil { process.killAndWait() }
        }
        let output = TextFile.read(outputPath) ?? ""
        let code = status.map(ChildProcess.exitCode(fromWaitStatus:))
        #expect(code == 0, "build-docs.sh exited with \(code.map(String.init) ?? "nothing (killed)"):\n\(output)")
        #expect(!output.contains("warning:"), "output:\n\(output)")
        #expect(access(directory + "/docs/TaskShed.doccarchive/data/documentation/taskshed.json", R_OK) == 0,
                "no archive with the landing page; output:\n\(output)")
    }

    /// `scripts/build-docs.sh` of the repository holding this source file.
    static func scriptPath(filePath: String = #filePath) throws -> String {
        var components = filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while !components.isEmpty {
            components.removeLast()
            let candidate = components.joined(separator: "/") + "/scripts/build-docs.sh"
            if access(candidate, R_OK) == 0 { return candidate }
        }
        throw TestSupportError("scripts/build-docs.sh not found above \(filePath)")
    }
}
