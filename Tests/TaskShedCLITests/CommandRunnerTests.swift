import Foundation
import Glibc
import Testing

@testable import TaskShedCLI

@Suite("Command runner")
struct CommandRunnerTests {
    func invocation(_ command: String, input: String = "", timeout: Int64? = nil, grace: Int64 = 2_000_000)
        -> CommandInvocation
    {
        let task = TaskCommandEnvironment.variables(
            taskID: "t-1", callback: "backup", attempt: 2, kwargs: input, runAtMicros: utc(2026, 3, 8, 7, 30))
        return CommandInvocation(
            command: command, standardInput: Array(input.utf8),
            environment: TaskCommandEnvironment.merged(base: ["PATH": "/usr/bin:/bin"], task: task),
            timeoutMicros: timeout, killGraceMicros: grace, standardOutput: .discard)
    }

    @Test func exitZeroIsSuccess() async throws {
        let result = try await CommandRunner.run(invocation("echo to-stdout; exit 0"))
        #expect(result.succeeded)
        #expect(result.termination == .exited(0))
        #expect(result.failureDescription == nil)
    }

    @Test func kwargsArriveOnStandardInputAndInTheEnvironment() async throws {
        let kwargs = #"{"path":"/srv","n":3}"#
        let result = try await CommandRunner.run(
            invocation(#"cat >&2; echo >&2; echo "$TASKSHED_KWARGS|$TASKSHED_TASK_ID|$TASKSHED_CALLBACK|$TASKSHED_ATTEMPT|$TASKSHED_RUN_AT|$TASKSHED_RUN_AT_US" >&2; exit 1"#, input: kwargs))
        #expect(result.standardErrorTail == [
            kwargs, "\(kwargs)|t-1|backup|2|2026-03-08T07:30:00.000000Z|\(utc(2026, 3, 8, 7, 30))",
        ])
    }

    @Test func nonzeroExitFailsWithTheLastLinesOfStandardError() async throws {
        let result = try await CommandRunner.run(invocation("echo first >&2; seq 1 40 >&2; echo 'disk full' >&2; exit 3"))
        #expect(!result.succeeded)
        #expect(result.termination == .exited(3))
        #expect(result.standardErrorTail.count == CommandResult.tailLines)
        #expect(result.standardErrorTail.last == "disk full")
        #expect(result.failureDescription == "exit status 3: " + (32...40).map(String.init).joined(separator: "\n") + "\ndisk full")
    }

    @Test func failureWithoutStandardErrorNamesTheStatus() async throws {
        let result = try await CommandRunner.run(invocation("exit 7"))
        #expect(result.failureDescription == "exit status 7")
    }

    @Test func unknownCommandFailsWithTheShellsMessage() async throws {
        let result = try await CommandRunner.run(invocation("no-such-command-taskshed"))
        #expect(result.termination == .exited(127))
        #expect(result.failureDescription?.contains("not found") == true)
    }

    @Test func longDescriptionsKeepTheirEndWithinTheLimit() async throws {
        let result = try await CommandRunner.run(invocation("yes é | head -n 10000 | tr -d '\\n' >&2; echo >&2; echo END >&2; exit 1"))
        let description = try #require(result.failureDescription)
        #expect(description.utf8.count <= CommandResult.maxDescriptionBytes)
        #expect(description.hasPrefix("exit status 1: "))
        #expect(description.hasSuffix("éé\nEND"))
        #expect(!description.contains("\u{FFFD}"))
    }

    @Test func timeoutTerminatesTheProcessGroup() async throws {
        let result = try await CommandRunner.run(
            invocation("sleep 30 & echo $! >&2; sleep 30", timeout: 200_000))
        #expect(result.timedOut)
        #expect(result.termination == .signaled(SIGTERM))
        #expect(result.failureDescription?.hasPrefix("timed out after") == true)
        let background = try #require(result.standardErrorTail.first.flatMap { pid_t($0) })
        #expect(await processEnds(background))
    }

    @Test func commandsIgnoringSIGTERMAreKilledAfterTheGrace() async throws {
        let result = try await CommandRunner.run(
            invocation("trap '' TERM; echo ready >&2; while :; do sleep 1; done", timeout: 200_000, grace: 200_000))
        #expect(result.timedOut)
        #expect(result.termination == .signaled(SIGKILL))
    }

    @Test func aBackgroundProcessHoldingStandardErrorDoesNotDelayTheResult() async throws {
        let result = try await CommandRunner.run(invocation("sleep 60 & echo $! >&2; exit 0"))
        #expect(result.succeeded)
        let background = try #require(result.standardErrorTail.first.flatMap { pid_t($0) })
        // Well under the background sleep: the exit was seen through the pidfd, not at EOF.
        #expect(result.elapsedMicros < 30_000_000)
        kill(background, SIGKILL)
    }

    @Test func cancellationStopsTheCommand() async throws {
        let run = Task { try await CommandRunner.run(invocation("echo started >&2; sleep 30")) }
        try await Task.sleep(for: .milliseconds(100))
        run.cancel()
        let result = try await run.value
        #expect(result.cancelled)
        #expect(!result.succeeded)
        #expect(result.failureDescription?.hasPrefix("cancelled") == true)
    }

    /// Waits (up to 10 s) until no process has this pid; the orphan is reaped by init after its group is killed.
    func processEnds(_ pid: pid_t) async -> Bool {
        for _ in 0..<200 {
            if kill(pid, 0) != 0 { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
