import Glibc
import TaskShedTestSupport
import Testing
@testable import TaskShedEventLoop

/// The wall-clock-step path of `PreciseTimer`: `clock_settime(CLOCK_REALTIME)` cancels a timerfd armed with
/// `TFD_TIMER_CANCEL_ON_SET`. Every test sets the clock to the time it already has (a step of ~0), which the
/// kernel reports exactly like an NTP step, without moving the clock of the shared machine.
///
/// Serialized: the steps of one test would otherwise show up as extra clock changes in another.
@Suite(.serialized, .enabled(if: ClockStep.isPermitted, "needs CAP_SYS_TIME to call clock_settime(CLOCK_REALTIME)"))
struct PreciseTimerClockStepTests {
    @Test func armedTimerReportsAZeroStepAndStillFiresAtItsDeadline() throws {
        let loop = try EventLoop()
        // A second of margin: the step (20 ms in) must come before the deadline even on a loaded machine.
        let deadline = WallClock.nowMicros() + 1_000_000
        var events: [String] = []
        var firedAt: Int64?
        var stepResult: Int32 = -1
        var stepBeforeDeadline = false
        let timer = try PreciseTimer(loop: loop, onFire: {}, onClockChange: {})
        timer.onClockChange = {
            events.append("clock")
            // What the daemon does: re-arm by the new clock (here the same absolute deadline).
            do { try timer.arm(atMicros: deadline) } catch { Issue.record("re-arm failed: \(error)") }
        }
        timer.onFire = {
            events.append("fire")
            firedAt = WallClock.nowMicros()
            loop.stop()
        }
        try timer.arm(atMicros: deadline)
        // The step comes from a loop callback, so the loop learns of it from the timerfd while it polls.
        let stepper = try CoarseTimer(loop: loop) {
            stepBeforeDeadline = WallClock.nowMicros() < deadline
            stepResult = ClockStep.stepByZero()
            if stepResult != 0 { loop.stop() }
        }
        stepper.start(afterMillis: 20)
        let expired = try run(loop)
        stepper.close()
        timer.close()
        try loop.close()
        if stepResult == EPERM { try Test.cancel("clock_settime(CLOCK_REALTIME) failed with EPERM") }
        try #require(stepResult == 0, "clock_settime failed with errno \(stepResult)")
        #expect(!expired)
        #expect(stepBeforeDeadline, "the loop was too slow to step the clock before the deadline")
        #expect(events.first == "clock")
        #expect(events.filter { $0 == "fire" }.count == 1)
        if let firedAt { #expect(firedAt >= deadline, "fired \(deadline - firedAt) µs early") }
    }

    @Test func stepReportedByTimerfdSettimeStillArmsTheNewDeadline() throws {
        let loop = try EventLoop()
        var clockChanges = 0
        var firedAt: Int64?
        let timer = try PreciseTimer(loop: loop, onFire: {}, onClockChange: {})
        timer.onClockChange = { clockChanges += 1 }
        timer.onFire = {
            firedAt = WallClock.nowMicros()
            loop.stop()
        }
        try timer.arm(atMicros: WallClock.nowMicros() + 10_000_000)
        let result = ClockStep.stepByZero()
        if result == EPERM { try Test.cancel("clock_settime(CLOCK_REALTIME) failed with EPERM") }
        try #require(result == 0, "clock_settime failed with errno \(result)")
        // No read of the timerfd since the step: the kernel reports it from timerfd_settime (ECANCELED), after
        // arming the new deadline, and clears the readiness, so the loop would never see it.
        let deadline = WallClock.nowMicros() + 50_000
        try timer.arm(atMicros: deadline)
        #expect(clockChanges == 1)
        #expect(timer.deadline == deadline)
        let expired = try run(loop)
        timer.close()
        try loop.close()
        #expect(!expired)
        // More only if another process stepped the clock meanwhile.
        #expect(clockChanges >= 1)
        let fired = try #require(firedAt)
        #expect(fired >= deadline, "fired \(deadline - fired) µs early")
    }

    @Test func expiryJustBeforeAStepIsNotLost() throws {
        let loop = try EventLoop()
        var clockChanges = 0
        var fires = 0
        let timer = try PreciseTimer(loop: loop, onFire: {}, onClockChange: {})
        // An owner that does nothing on a clock change: the timer alone must not lose the expiry.
        timer.onClockChange = { clockChanges += 1 }
        timer.onFire = {
            fires += 1
            loop.stop()
        }
        try timer.arm(atMicros: WallClock.nowMicros() + 1_000)
        // The kernel timer expires while nobody reads it; the step then cancels the unread expiry.
        usleep(20_000)
        let result = ClockStep.stepByZero()
        if result == EPERM { try Test.cancel("clock_settime(CLOCK_REALTIME) failed with EPERM") }
        try #require(result == 0, "clock_settime failed with errno \(result)")
        let expired = try run(loop, limitMillis: 2_000)
        timer.close()
        try loop.close()
        #expect(!expired, "the expiry was lost")
        #expect(clockChanges >= 1)
        #expect(fires == 1)
    }

    @Test func disarmAfterAStepPreventsFiring() throws {
        let loop = try EventLoop()
        var clockChanges = 0
        var fires = 0
        let timer = try PreciseTimer(loop: loop, onFire: { fires += 1 }, onClockChange: {})
        timer.onClockChange = {
            clockChanges += 1
            timer.disarm()
        }
        let deadline = WallClock.nowMicros() + 100_000
        try timer.arm(atMicros: deadline)
        let result = ClockStep.stepByZero()
        if result == EPERM { try Test.cancel("clock_settime(CLOCK_REALTIME) failed with EPERM") }
        try #require(result == 0, "clock_settime failed with errno \(result)")
        let stopper = try CoarseTimer(loop: loop) { loop.stop() }
        // Well past the deadline: a kernel timer left armed would have fired by then.
        stopper.start(afterMillis: 300)
        try run(loop)
        stopper.close()
        timer.close()
        try loop.close()
        #expect(WallClock.nowMicros() > deadline)
        #expect(clockChanges >= 1)
        #expect(timer.deadline == nil)
        #expect(fires == 0)
    }
}
