// The worker half of the split example: a PollingWorker that runs "say_hello" tasks, polling every 3 seconds
// (the original's default). Stops gracefully on SIGINT or SIGTERM: finishes running callbacks (up to 30 s),
// gives back what is unfinished.
//
// `swift run SayHelloWorker` while `SayHelloScheduler` runs in another process.

import Dispatch
import Foundation
import Logging
import TaskShed

LoggingSystem.bootstrap(StreamLogHandler.standardError)

let worker = try PollingWorker(callbackMap: [
    "say_hello": { _ in print("Hello!") }
])

// Signals arrive through Dispatch so that shutdown can run as ordinary async code; on the main queue because
// top-level code (and so this handler) is main-actor isolated.
signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let signalSources = [SIGINT, SIGTERM].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
    source.setEventHandler {
        Task { await worker.shutdown() }
    }
    source.resume()
    return source
}

try await worker.run()
withExtendedLifetime(signalSources) {}
