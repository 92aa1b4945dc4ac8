// Quick start: a scheduler and an event-driven worker in one process (the original's first example).
//
// Run the daemon in one terminal (`scripts/run-daemon.sh`), then: `swift run QuickStart`.
// It schedules "say_hello" for three seconds from now, prints "Hello, World!" when the daemon pushes the task
// to the worker, and exits.

import Foundation
import Logging
import TaskShed

LoggingSystem.bootstrap(StreamLogHandler.standardError)

struct Greeting: Codable {
    var name: String
}

let (helloRan, helloRanContinuation) = AsyncStream<Void>.makeStream()

// Callbacks are async closures looked up by name, as in the original's callback_map.
let worker = try EventDrivenWorker(callbackMap: [
    "say_hello": { task in
        let greeting = try task.decodeKwargs(as: Greeting.self)
        print("Hello, \(greeting.name)!")
        helloRanContinuation.yield()
    }
])
let scheduler = Scheduler()

try await worker.start()
try await scheduler.addTask(
    callback: "say_hello",
    runAt: Date.now.addingTimeInterval(3),
    kwargs: try Kwargs(encoding: Greeting(name: "World"))
)

for await _ in helloRan { break }

await worker.shutdown()
scheduler.shutdown()
