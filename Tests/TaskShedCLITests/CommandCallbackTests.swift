import Foundation
import TaskShed
import Testing

@testable import TaskShedCLI

@Suite("Command callbacks")
struct CommandCallbackTests {
    let log = WorkerLog(quiet: true)

    @Test func successfulCommandReturns() async throws {
        let task = ScheduledTask(callback: "check", kwargs: ["n": 1], id: "c1")
        try await CommandCallbackRunner.run(
            CommandCallback(name: "check", command: #"test "$(cat)" = '{"n":1}' && test "$TASKSHED_TASK_ID" = c1"#),
            task: task, baseEnvironment: ["PATH": "/usr/bin:/bin"], timeoutMicros: nil, log: log)
    }

    @Test func failingCommandThrowsItsStandardErrorAsTheDescription() async throws {
        let task = ScheduledTask(callback: "check", id: "c2")
        await #expect {
            try await CommandCallbackRunner.run(
                CommandCallback(name: "check", command: "echo oops >&2; exit 2"), task: task,
                baseEnvironment: ["PATH": "/usr/bin:/bin"], timeoutMicros: nil, log: log)
        } throws: { error in
            (error as? CommandFailed)?.description == "exit status 2: oops"
        }
    }

    @Test func timeoutFailsTheCallback() async throws {
        let task = ScheduledTask(callback: "slow", id: "c3")
        await #expect {
            try await CommandCallbackRunner.run(
                CommandCallback(name: "slow", command: "sleep 20"), task: task,
                baseEnvironment: ["PATH": "/usr/bin:/bin"], timeoutMicros: 100_000, log: log)
        } throws: { error in
            (error as? CommandFailed)?.description.hasPrefix("timed out after") == true
        }
    }
}
