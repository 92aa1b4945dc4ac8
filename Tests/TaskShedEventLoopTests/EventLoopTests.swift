import Glibc
import Testing
@testable import TaskShedEventLoop

@Suite struct EventLoopTests {
    @Test func loopWithoutHandlesRunsDryAndCloses() throws {
        let loop = try EventLoop()
        #expect(loop.run() == false)
        try loop.close()
    }

    @Test func closeRefusesWhileAHandleIsOpenAndSucceedsAfter() throws {
        let loop = try EventLoop()
        let timer = try CoarseTimer(loop: loop) {}
        #expect(throws: UVError.self) { try loop.close() }
        do {
            try loop.close()
        } catch {
            #expect(error.code == -EBUSY)
            #expect(error.detail.contains("timer"))
        }
        var closed = false
        timer.onClose = { closed = true }
        timer.close()
        try loop.close()
        #expect(closed)
    }

    @Test func coarseTimerFiresAndRepeats() throws {
        let loop = try EventLoop()
        var fired = 0
        let timer = try CoarseTimer(loop: loop) {}
        timer.onFire = {
            fired += 1
            if fired == 3 { timer.close() }
        }
        timer.start(afterMillis: 1, repeatMillis: 1)
        let expired = try run(loop)
        #expect(!expired)
        #expect(fired == 3)
        try loop.close()
    }

    @Test func signalWatcherDeliversOnTheLoop() throws {
        let loop = try EventLoop()
        var received: Int32 = 0
        let watcher = try SignalWatcher(loop: loop, signal: SIGUSR2) { _ in }
        watcher.onSignal = { signal in
            received = signal
            watcher.close()
        }
        let kick = try CoarseTimer(loop: loop) { kill(getpid(), SIGUSR2) }
        kick.start(afterMillis: 1)
        try run(loop)
        kick.close()
        #expect(received == SIGUSR2)
        try loop.close()
    }

    @Test func timerSlackCanBeSet() throws {
        try EventLoop.setTimerSlack(nanoseconds: 1)
        // Restore the default (0 = the thread's default slack) for whatever else runs on this test thread.
        try EventLoop.setTimerSlack(nanoseconds: 0)
    }

    @Test func wallClockAgreesWithTime() {
        let seconds = Int64(time(nil))
        let micros = WallClock.nowMicros()
        #expect(abs(micros / 1_000_000 - seconds) <= 1)
    }

    @Test func uvErrorDescribesTheFailure() {
        let error = UVError(code: -EADDRINUSE, operation: "uv_pipe_bind", detail: "/x.sock")
        #expect(error.name == "EADDRINUSE")
        #expect(error.description == "uv_pipe_bind(/x.sock): address already in use (EADDRINUSE)")
    }
}

@Suite struct BackgroundWorkTests {
    @Test func workRunsOffTheLoopThreadAndCompletionOnIt() throws {
        let loop = try EventLoop()
        let loopThread = pthread_self()
        final class Flag: @unchecked Sendable { var ranOffLoop = false }
        let flag = Flag()
        var completed = false
        try BackgroundWork.run(on: loop, {
            flag.ranOffLoop = pthread_equal(pthread_self(), loopThread) == 0
            usleep(20_000)
        }, completion: {
            completed = pthread_equal(pthread_self(), loopThread) != 0
        })
        // The pending job keeps the loop alive until its completion ran.
        #expect(loop.run() == false)
        #expect(completed)
        #expect(flag.ranOffLoop)
        try loop.close()
    }
}
