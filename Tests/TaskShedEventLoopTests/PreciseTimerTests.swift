import Glibc
import Testing
@testable import TaskShedEventLoop

@Suite struct PreciseTimerTests {
    @Test func firesAtTheDeadlineAndNeverEarly() throws {
        let loop = try EventLoop()
        var firedAt: [Int64] = []
        var deadlines: [Int64] = []
        let timer = try PreciseTimer(loop: loop, onFire: {}, onClockChange: {})
        func armNext() throws {
            let deadline = WallClock.nowMicros() + 2_000
            deadlines.append(deadline)
            try timer.arm(atMicros: deadline)
        }
        timer.onFire = {
            firedAt.append(WallClock.nowMicros())
            #expect(timer.deadline == nil)
            if firedAt.count == 5 {
                loop.stop()
            } else {
                try? armNext()
            }
        }
        try armNext()
        let expired = try run(loop)
        #expect(!expired)
        #expect(firedAt.count == 5)
        for (deadline, fired) in zip(deadlines, firedAt) {
            #expect(fired >= deadline)
        }
        timer.close()
        try loop.close()
    }

    @Test func deadlineInThePastFiresAtOnce() throws {
        let loop = try EventLoop()
        var fired = false
        let timer = try PreciseTimer(loop: loop, onFire: { fired = true; loop.stop() }, onClockChange: {})
        try timer.arm(atMicros: WallClock.nowMicros() - 1_000_000)
        try run(loop)
        #expect(fired)
        fired = false
        try timer.arm(atMicros: 0)
        try run(loop)
        #expect(fired)
        timer.close()
        try loop.close()
    }

    @Test func reArmingReplacesTheDeadlineAndDisarmPreventsFiring() throws {
        let loop = try EventLoop()
        var fires: [Int64] = []
        let timer = try PreciseTimer(loop: loop, onFire: {}, onClockChange: {})
        timer.onFire = { fires.append(WallClock.nowMicros()) }
        let start = WallClock.nowMicros()
        try timer.arm(atMicros: start + 1_000)
        try timer.arm(atMicros: start + 30_000)
        #expect(timer.deadline == start + 30_000)
        let stopper = try CoarseTimer(loop: loop) { loop.stop() }
        stopper.start(afterMillis: 60)
        try run(loop)
        #expect(fires.count == 1)
        if let first = fires.first { #expect(first >= start + 30_000) }

        try timer.arm(atMicros: WallClock.nowMicros() + 5_000)
        timer.disarm()
        #expect(timer.deadline == nil)
        stopper.start(afterMillis: 30)
        try run(loop)
        #expect(fires.count == 1)
        stopper.close()
        timer.close()
        try loop.close()
    }
}
