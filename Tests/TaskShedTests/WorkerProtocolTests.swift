import Foundation
import Synchronization
import TaskShed
import TaskShedProtocol
import Testing

/// What the workers send for each situation, checked frame by frame against the scripted fake daemon (the
/// end-to-end suite checks the same behaviour against the real one).
@Suite("Worker protocol", .timeLimit(.minutes(1)))
struct WorkerProtocolTests {
    static func record(
        _ id: String, callback: String, attempt: UInt32 = 1, kwargs: String = "{}", leaseFor lease: Duration = .seconds(60)
    ) -> TaskRecord {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let leaseMicros = lease.components.seconds * 1_000_000 + lease.components.attoseconds / 1_000_000_000_000
        return TaskRecord(
            id: id, callback: callback, runAt: now, schedule: .once, kwargs: Array(kwargs.utf8), group: nil, paused: false,
            pausedAt: nil, coalesce: true, state: .leased, attempt: attempt, maxAttempts: 3,
            leaseDeadline: now + leaseMicros, lastError: nil, createdAt: now, lastRunAt: now, lastFailureAt: nil)
    }

    /// Starts an event-driven worker against the fake and answers its SUBSCRIBE.
    static func subscribed(_ worker: EventDrivenWorker, _ fake: FakeDaemon, leaseMicros: Int64 = 30_000_000) async throws
        -> (requestID: UInt32, subscribe: Subscribe)
    {
        let start = Task { try await worker.start() }
        let frame = try #require(await fake.nextRequest())
        guard case .subscribe(let subscribe) = frame.message else {
            Issue.record("expected SUBSCRIBE, got \(frame.message)")
            throw CancellationError()
        }
        fake.send(.subscribed(Subscribed(leaseMicros: leaseMicros)), requestID: frame.requestID)
        try await start.value
        return (frame.requestID, subscribe)
    }

    /// Answers the next `count` ACKs with OK; returns the acked task ids in arrival order.
    static func answerAcks(_ count: Int, from fake: FakeDaemon) async throws -> [String] {
        var acked: [String] = []
        for _ in 0..<count {
            let ack = try #require(await fake.nextRequest())
            guard case .ack(let lease) = ack.message else {
                Issue.record("expected ACK, got \(ack.message)")
                break
            }
            acked.append(lease.id)
            fake.send(.ok, requestID: ack.requestID)
        }
        return acked
    }

    @Test func eventDrivenWorkerSubscribesRunsTheCallbackAndAcks() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let seen = Mutex<[String]>([])
        let worker = try EventDrivenWorker(
            callbackMap: [
                "greet": { task in seen.withLock { $0.append(task.kwargs["name"]?.description ?? "-") } },
                "other": { _ in },
            ], socketPath: fake.socketPath, concurrency: 4, lease: .seconds(2))
        let (subscription, subscribe) = try await Self.subscribed(worker, fake)
        #expect(subscribe == Subscribe(callbacks: ["greet", "other"], concurrency: 4, leaseMicros: 2_000_000))

        fake.send(.delivery(Self.record("t1", callback: "greet", kwargs: #"{"name":"Ada"}"#)), requestID: subscription)
        let ack = try #require(await fake.nextRequest())
        #expect(ack.message == .ack(LeaseRef(id: "t1", attempt: 1)))
        fake.send(.ok, requestID: ack.requestID)
        #expect(seen.withLock { $0 } == [#""Ada""#])

        let stop = Task { await worker.shutdown() }
        let unsubscribe = try #require(await fake.nextRequest())
        #expect(unsubscribe.message == .unsubscribe)
        fake.send(.ok, requestID: unsubscribe.requestID)
        #expect(await stop.value == 0)
    }

    @Test func aThrowingCallbackIsReportedAsAFailureWithItsDescription() async throws {
        struct MailServerDown: Error, CustomStringConvertible {
            var description: String { "mail server down" }
        }
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let worker = try EventDrivenWorker(callbackMap: ["send": { _ in throw MailServerDown() }], socketPath: fake.socketPath)
        let (subscription, _) = try await Self.subscribed(worker, fake)

        fake.send(.delivery(Self.record("t2", callback: "send", attempt: 2)), requestID: subscription)
        let fail = try #require(await fake.nextRequest())
        guard case .fail(let failure) = fail.message else {
            Issue.record("expected FAIL, got \(fail.message)")
            return
        }
        #expect(failure.lease == LeaseRef(id: "t2", attempt: 2))
        #expect(failure.retry)
        #expect(failure.error.contains("mail server down"))
        fake.send(.ok, requestID: fail.requestID)

        // The worker keeps going after a failing callback.
        fake.send(.delivery(Self.record("t3", callback: "send")), requestID: subscription)
        let second = try #require(await fake.nextRequest())
        guard case .fail(let again) = second.message else {
            Issue.record("expected FAIL, got \(second.message)")
            return
        }
        #expect(again.lease.id == "t3")
        fake.send(.ok, requestID: second.requestID)
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func anUnknownCallbackNameFailsTheTaskWithoutRetry() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let worker = try EventDrivenWorker(callbackMap: ["known": { _ in }], socketPath: fake.socketPath)
        let (subscription, _) = try await Self.subscribed(worker, fake)

        fake.send(.delivery(Self.record("t4", callback: "unknown")), requestID: subscription)
        let fail = try #require(await fake.nextRequest())
        guard case .fail(let failure) = fail.message else {
            Issue.record("expected FAIL, got \(fail.message)")
            return
        }
        #expect(!failure.retry)
        #expect(failure.error.contains("IncorrectCallbackNameError"))
        #expect(failure.error.contains("\"unknown\""))
        fake.send(.ok, requestID: fail.requestID)
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func aLongCallbackHasItsLeaseExtendedUntilItReturns() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let (gate, open) = AsyncStream<Void>.makeStream()
        let worker = try EventDrivenWorker(
            callbackMap: ["slow": { _ in for await _ in gate { break } }], socketPath: fake.socketPath, lease: .milliseconds(300))
        let (subscription, _) = try await Self.subscribed(worker, fake)

        fake.send(.delivery(Self.record("t5", callback: "slow", leaseFor: .milliseconds(300))), requestID: subscription)
        for _ in 0..<2 {
            let touch = try #require(await fake.nextRequest())
            #expect(touch.message == .touch(Touch(lease: LeaseRef(id: "t5", attempt: 1), extendMicros: 300_000)))
            let deadline = Int64(Date().timeIntervalSince1970 * 1_000_000) + 300_000
            fake.send(.leaseExtended(deadline: deadline), requestID: touch.requestID)
        }
        open.yield()
        // Any TOUCH already in flight may arrive first; then the ACK.
        var frame = try #require(await fake.nextRequest())
        while case .touch = frame.message {
            fake.send(.leaseExtended(deadline: Int64(Date().timeIntervalSince1970 * 1_000_000) + 300_000), requestID: frame.requestID)
            frame = try #require(await fake.nextRequest())
        }
        #expect(frame.message == .ack(LeaseRef(id: "t5", attempt: 1)))
        fake.send(.ok, requestID: frame.requestID)
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    /// Two callbacks: "hold" blocks its thread without ever suspending (a CPU-bound or blocking callback) until
    /// "free" has run, 20 s at most, and records whether "free" released it.
    final class HoldAndFree: Sendable {
        let released = Mutex(false)
        let holding = Mutex(false)
        let heldUntilReleased = Mutex<Bool?>(nil)

        var callbackMap: [String: TaskCallback] {
            [
                "hold": { [self] _ in
                    holding.withLock { $0 = true }
                    let start = ContinuousClock.now
                    while !released.withLock({ $0 }) && ContinuousClock.now - start < .seconds(20) { usleep(1_000) }
                    heldUntilReleased.withLock { $0 = released.withLock { $0 } }
                },
                "free": { [self] _ in released.withLock { $0 = true } },
            ]
        }
    }

    @Test func framesBehindADeliveryWhoseCallbackBlocksItsThreadAreStillHandled() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let callbacks = HoldAndFree()
        let worker = try EventDrivenWorker(callbackMap: callbacks.callbackMap, socketPath: fake.socketPath, concurrency: 2)
        let (subscription, _) = try await Self.subscribed(worker, fake)

        // One write: the second DELIVERY waits in the client's decoder behind the first, whose callback starts
        // on the reading thread; the reading must carry on elsewhere.
        fake.send(bytes: fake.encode(.delivery(Self.record("h1", callback: "hold")), requestID: subscription)
            + fake.encode(.delivery(Self.record("f1", callback: "free")), requestID: subscription))
        let acked = try await Self.answerAcks(2, from: fake)
        // Both are acked; their order is not the point (once "free" has run, "hold" notices within a
        // millisecond and may ack first on a busy machine). That "hold" was released by "free" shows that the
        // second delivery was handled while the first callback blocked its thread.
        #expect(acked.sorted() == ["f1", "h1"])
        #expect(callbacks.heldUntilReleased.withLock { $0 } == true, "the blocked callback was not released by the other one")
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func aDeliveryArrivingWhileACallbackBlocksTheReadingThreadIsStillHandled() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let callbacks = HoldAndFree()
        let worker = try EventDrivenWorker(callbackMap: callbacks.callbackMap, socketPath: fake.socketPath, concurrency: 2)
        let (subscription, _) = try await Self.subscribed(worker, fake)

        fake.send(.delivery(Self.record("h2", callback: "hold")), requestID: subscription)
        let deadline = ContinuousClock.now + .seconds(10)
        while !callbacks.holding.withLock({ $0 }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        // "hold" runs on the reading thread, lent to it, and nothing is left in the decoder: only the loan's
        // timer can move the reading to another thread.
        fake.send(.delivery(Self.record("f2", callback: "free")), requestID: subscription)
        let acked = try await Self.answerAcks(2, from: fake)
        #expect(acked.sorted() == ["f2", "h2"])
        #expect(callbacks.heldUntilReleased.withLock { $0 } == true, "the blocked callback was not released by the other one")
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func shutdownUnsubscribesWaitsThenReleasesUnfinishedTasks() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let cancelled = Mutex(false)
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let worker = try EventDrivenWorker(
            callbackMap: [
                "stuck": { _ in
                    startedContinuation.yield()
                    do {
                        try await Task.sleep(for: .seconds(3600))
                    } catch {
                        cancelled.withLock { $0 = true }
                        throw error
                    }
                }
            ], socketPath: fake.socketPath)
        let (subscription, _) = try await Self.subscribed(worker, fake)
        fake.send(.delivery(Self.record("t6", callback: "stuck", attempt: 1)), requestID: subscription)
        for await _ in started { break }
        #expect(worker.runningCount == 1)

        let stop = Task { await worker.shutdown(timeout: .milliseconds(50)) }
        let unsubscribe = try #require(await fake.nextRequest())
        #expect(unsubscribe.message == .unsubscribe)
        fake.send(.ok, requestID: unsubscribe.requestID)
        let release = try #require(await fake.nextRequest())
        #expect(release.message == .release(LeaseRef(id: "t6", attempt: 1)))
        fake.send(.ok, requestID: release.requestID)
        #expect(await stop.value == 1)
        #expect(cancelled.withLock { $0 })
    }

    @Test func shutdownWaitsForACallbackThatFinishesInTime() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let (gate, open) = AsyncStream<Void>.makeStream()
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let worker = try EventDrivenWorker(
            callbackMap: [
                "job": { _ in
                    startedContinuation.yield()
                    for await _ in gate { break }
                }
            ], socketPath: fake.socketPath)
        let (subscription, _) = try await Self.subscribed(worker, fake)
        fake.send(.delivery(Self.record("t7", callback: "job")), requestID: subscription)
        for await _ in started { break }

        let stop = Task { await worker.shutdown(timeout: .seconds(3600)) }
        let unsubscribe = try #require(await fake.nextRequest())
        #expect(unsubscribe.message == .unsubscribe)
        fake.send(.ok, requestID: unsubscribe.requestID)
        open.yield()
        let ack = try #require(await fake.nextRequest())
        #expect(ack.message == .ack(LeaseRef(id: "t7", attempt: 1)))
        fake.send(.ok, requestID: ack.requestID)
        #expect(await stop.value == 0)
    }

    @Test func addingACallbackToARunningEventDrivenWorkerResubscribes() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let worker = try EventDrivenWorker(callbackMap: ["a": { _ in }], socketPath: fake.socketPath, concurrency: 2)
        _ = try await Self.subscribed(worker, fake)

        let add = Task { try await worker.addCallback("b") { _ in } }
        let unsubscribe = try #require(await fake.nextRequest())
        #expect(unsubscribe.message == .unsubscribe)
        fake.send(.ok, requestID: unsubscribe.requestID)
        let subscribe = try #require(await fake.nextRequest())
        #expect(subscribe.message == .subscribe(Subscribe(callbacks: ["a", "b"], concurrency: 2, leaseMicros: nil)))
        fake.send(.subscribed(Subscribed(leaseMicros: 30_000_000)), requestID: subscribe.requestID)
        try await add.value
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func anEventDrivenWorkerStartedWithoutCallbacksSubscribesWhenTheFirstIsAdded() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let worker = try EventDrivenWorker(callbackMap: [:], socketPath: fake.socketPath)
        try await worker.start()

        let add = Task { try await worker.addCallback("first") { _ in } }
        let subscribe = try #require(await fake.nextRequest())
        #expect(subscribe.message == .subscribe(Subscribe(callbacks: ["first"], concurrency: 100, leaseMicros: nil)))
        fake.send(.subscribed(Subscribed(leaseMicros: 30_000_000)), requestID: subscribe.requestID)
        try await add.value
        fake.disconnect()
        await worker.shutdown(timeout: .zero)
    }

    @Test func runReturnsOnceShutdownHasCompletedAndAWorkerStartsOnlyOnce() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let worker = try PollingWorker(callbackMap: ["job": { _ in }], pollingInterval: .seconds(3600), socketPath: fake.socketPath)
        let running = Task { try await worker.run() }
        let claim = try #require(await fake.nextRequest())
        fake.send(.tasks([]), requestID: claim.requestID)
        await #expect { try await worker.start() } throws: {
            ($0 as? TaskShedError)?.code == .invalidUsage && ($0 as? TaskShedError)?.message.contains("already started") == true
        }
        #expect(await worker.shutdown() == 0)
        try await running.value
        // A second shutdown returns at once.
        #expect(await worker.shutdown() == 0)
    }

    @Test func pollingWorkerClaimsUpToItsFreeCapacityAndAgainWhenABatchWasFull() async throws {
        let fake = try FakeDaemon()
        defer { fake.stop() }
        let runs = Mutex(0)
        let worker = try PollingWorker(
            callbackMap: ["job": { _ in runs.withLock { $0 += 1 } }], pollingInterval: .seconds(3600),
            socketPath: fake.socketPath, concurrency: 3, lease: .seconds(5))
        let start = Task { try await worker.start() }
        try await start.value

        // The first claim comes at once (catch-up at start-up), for the whole capacity.
        let claim = try #require(await fake.nextRequest())
        #expect(claim.message == .claim(Claim(callbacks: ["job"], max: 3, leaseMicros: 5_000_000)))
        fake.send(
            .tasks([Self.record("p1", callback: "job"), Self.record("p2", callback: "job"), Self.record("p3", callback: "job")]),
            requestID: claim.requestID)

        // A full batch: acks, then a new claim as soon as slots free, long before the polling interval.
        var acked: Set<String> = []
        var nextClaim: Frame?
        while nextClaim == nil {
            let frame = try #require(await fake.nextRequest())
            switch frame.message {
            case .ack(let lease):
                acked.insert(lease.id)
                fake.send(.ok, requestID: frame.requestID)
            case .claim(let claim):
                #expect(claim.max >= 1 && claim.max <= 3)
                nextClaim = frame
            default:
                Issue.record("unexpected \(frame.message)")
                return
            }
        }
        let second = try #require(nextClaim)
        fake.send(.tasks([]), requestID: second.requestID)
        while acked.count < 3 {
            let frame = try #require(await fake.nextRequest())
            if case .ack(let lease) = frame.message {
                acked.insert(lease.id)
                fake.send(.ok, requestID: frame.requestID)
            } else if case .claim = frame.message {
                fake.send(.tasks([]), requestID: frame.requestID)
            }
        }
        #expect(acked == ["p1", "p2", "p3"])
        #expect(runs.withLock { $0 } == 3)
        #expect(await worker.shutdown() == 0)
    }
}
