// The scheduler half of the split example: adds a "say_hello" task due in three seconds, every three seconds,
// forever. Run `SayHelloWorker` in another process (or on another machine's shell sharing the socket) to run them.
//
// `swift run SayHelloScheduler` (set TASKSHED_SOCKET to use a non-default socket).

import Foundation
import Logging
import TaskShed

LoggingSystem.bootstrap(StreamLogHandler.standardError)

let scheduler = Scheduler()
try await scheduler.start()

while true {
    try await scheduler.addTask(callback: "say_hello", runAt: Date.now.addingTimeInterval(3))
    try await Task.sleep(for: .seconds(3))
}
