import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// The daemon's wall-clock-step path: a `clock_settime(CLOCK_REALTIME)` while a task is pending cancels the
/// daemon's timerfd (`TFD_TIMER_CANCEL_ON_SET`); the daemon logs it, re-arms by the new clock, and the task still
/// goes out at its due time. The step is ~0 (`ClockStep.stepByZero`), so the shared machine's clock does not move.
@Suite(.enabled(if: ClockStep.isPermitted, "needs CAP_SYS_TIME to call clock_settime(CLOCK_REALTIME)"))
struct ClockStepTests {
    @Test func stepWhileATaskIsPendingIsLoggedAndTheTaskIsDeliveredAtItsDueTime() throws {
        let daemon = try DaemonProcess()
        let scheduler = try Client(daemon)
        let worker = try Client(daemon)
        try worker.subscribe(["tick"], concurrency: 2)
        let due = nowMicros() + 1_000_000
        try scheduler.add([task("before-step", callback: "tick", runAt: due)])
        // The ADDED reply follows the iteration that re-armed the timer for this task; give the daemon a moment
        // anyway, so the step finds the timer armed and the loop asleep.
        pause(0.2)
        let result = ClockStep.stepByZero()
        if result == EPERM { try Test.cancel("clock_settime(CLOCK_REALTIME) failed with EPERM") }
        try #require(result == 0, "clock_settime failed with errno \(result)")
        let steppedAt = nowMicros()
        // A task added after the step is armed by the new clock too.
        let laterDue = nowMicros() + 600_000
        try scheduler.add([task("after-step", callback: "tick", runAt: laterDue)])

        var received: [String: Int64] = [:]
        while received.count < 2, let delivery = try worker.nextDelivery(timeout: 15) {
            let receivedAt = nowMicros()
            #expect(received[delivery.id] == nil, "\(delivery.id) delivered twice")
            received[delivery.id] = receivedAt
            #expect(try worker.ack(delivery) == .ok)
        }
        #expect(Set(received.keys) == ["before-step", "after-step"], "log:\n\(daemon.log())")
        if let at = received["before-step"] {
            #expect(steppedAt < due, "the step came after the due time: the test proves nothing about re-arming")
            #expect(at >= due, "before-step delivered \(due - at) µs early")
        }
        if let at = received["after-step"] { #expect(at >= laterDue, "after-step delivered \(laterDue - at) µs early") }
        #expect(try worker.nextDelivery(timeout: 0.3) == nil)
        let log = daemon.log()
        #expect(log.contains("wall clock was set"), "log:\n\(log)")
        #expect(!log.contains("cannot arm the task timer"), "log:\n\(log)")
        #expect(try daemon.stop() == 0)
    }
}
