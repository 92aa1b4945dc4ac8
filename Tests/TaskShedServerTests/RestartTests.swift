import Dispatch
import Glibc
import Synchronization
import TaskShedProtocol
import TaskShedTestSupport
import Testing

@Suite struct RestartTests {
    @Test func everyAcknowledgedAddSurvivesSIGKILLDuringConcurrentAdds() throws {
        let daemon = try DaemonProcess()
        let acknowledged = Mutex<[String]>([])
        let writers = 4
        let group = DispatchGroup()
        let socketPath = daemon.socketPath
        for writer in 0..<writers {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                guard let connection = try? RawConnection(path: socketPath), (try? connection.handshake()) != nil else {
                    return
                }
                var batch = 0
                while true {
                    let ids = (0..<5).map { "w\(writer)-b\(batch)-\($0)" }
                    let specs = ids.map { task($0, callback: "crash", runAt: nowMicros() + 3_600_000_000) }
                    do {
                        let reply = try connection.request(.addTasks(AddTasks(tasks: specs)), id: UInt32(batch + 1),
                                                           timeoutSeconds: 10)
                        guard case .added = reply else { return }
                        acknowledged.withLock { $0.append(contentsOf: ids) }
                    } catch {
                        return  // the daemon died mid-request: that batch was not acknowledged
                    }
                    batch += 1
                }
            }
        }
        // Let the writers get going, then crash the daemon under them.
        let deadline = monotonic() + 20
        while acknowledged.withLock({ $0.count }) < 200 && monotonic() < deadline { pause(0.01) }
        daemon.kill()
        group.wait()
        let ids = acknowledged.withLock { $0 }
        #expect(ids.count >= 200)
        try daemon.restart()
        let client = try Client(daemon)
        var found = Set<String>()
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let chunk = Array(ids[start..<min(ids.count, start + 1000)])
            for record in try client.fetch(chunk) { found.insert(record.id) }
        }
        let missing = Set(ids).subtracting(found)
        #expect(missing.isEmpty, "\(missing.count) acknowledged tasks lost, e.g. \(missing.prefix(5))")
        #expect(try daemon.stop() == 0)
    }

    @Test func leasesHeldAtShutdownAreDueAgainAfterRestart() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        try scheduler.add([task("h1", callback: "held")])
        let worker = try Client(daemon)
        #expect(try worker.claim(["held"], max: 1).map(\.id) == ["h1"])
        daemon.kill()
        try daemon.restart()
        let next = try Client(daemon)
        #expect(try next.claim(["held"], max: 1).map(\.id) == ["h1"])
        #expect(try daemon.stop() == 0)
    }

    @Test(arguments: [true, false])
    func recurringTaskCatchesUpPerCoalesceAfterDowntime(coalesce: Bool) throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let interval: Int64 = 200_000
        let first = nowMicros() + 100_000
        try scheduler.add([task("rec", callback: "tick", runAt: first, schedule: .interval(micros: interval),
                                coalesce: coalesce)])
        try daemon.stop()
        // Downtime of about six intervals.
        pause(1.3)
        try daemon.restart()
        let worker = try Client(daemon)
        try worker.subscribe(["tick"], concurrency: 1)
        var runTimes: [Int64] = []
        var ackTimes: [Int64] = []
        for _ in 0..<3 {
            guard let delivery = try worker.nextDelivery(timeout: 20) else { break }
            runTimes.append(delivery.runAt)
            ackTimes.append(nowMicros())
            #expect(try worker.ack(delivery) == .ok)
        }
        #expect(runTimes.count == 3)
        guard runTimes.count == 3 else { return }
        #expect(runTimes[0] == first, "the first missed occurrence runs first")
        if coalesce {
            // One catch-up run, then the schedule jumps past now.
            #expect(runTimes[1] > ackTimes[0], "coalesce ran a missed occurrence twice: \(runTimes)")
        } else {
            // One run per missed interval, back to back.
            #expect(runTimes[1] == first + interval)
            #expect(runTimes[2] == first + 2 * interval)
            #expect(runTimes[2] < ackTimes[0], "missed occurrences were not caught up one by one")
        }
        #expect(try daemon.stop() == 0)
    }
}
