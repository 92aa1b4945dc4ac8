import TaskShedProtocol
import TaskShedStore
import TaskShedTestSupport
import Testing
@testable import TaskShedServer

/// A store job run against a real LMDB store (no daemon): the order of its parts inside the transaction.
@Suite struct StoreJobTests {
    private static let second: Int64 = 1_000_000
    private static let start: Int64 = 1_767_225_600 * second
    private static let worker: UInt64 = 7

    /// A store in a fresh directory with one task leased to `worker` until `start + 2 s`.
    private static func storeWithLease(ids: [String]) throws -> (directory: String, store: LMDBTaskStore) {
        let directory = try TemporaryDirectory.create(prefix: "storejob")
        let store = try LMDBTaskStore(directory: directory + "/store", options: StoreOptions(durable: false))
        _ = try store.add(ids.map { TaskSpec(id: $0, callback: "cb", runAt: start) }, now: start)
        let claimed = try store.claim(callbacks: ["cb"], max: ids.count, holder: worker,
                                      leaseDeadline: start + 2 * second, now: start)
        #expect(claimed.map(\.id).sorted() == ids.sorted())
        return (directory, store)
    }

    private static func job(now: Int64, requests: [Message]) -> StoreJob {
        var job = StoreJob()
        job.now = now
        job.horizon = now
        job.defaultLease = 30 * second
        job.expireLeases = true
        job.requests = requests.map { JobRequest(holder: worker, subscriptionLease: 2 * second, message: $0) }
        return job
    }

    @Test func requestsQueuedPastTheDeadlineKeepTheirLeases() throws {
        let (directory, store) = try Self.storeWithLease(ids: ["touched", "acked", "idle"])
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        // The job begins 0.5 s after the deadline: the TOUCH and the ACK reached the daemon in time but
        // waited behind a slow job.
        let now = Self.start + 2_500_000
        let job = Self.job(now: now, requests: [
            .touch(Touch(lease: LeaseRef(id: "touched", attempt: 1))),
            .ack(LeaseRef(id: "acked", attempt: 1)),
        ])
        let result = try job.run(on: .lmdb(store)).get()
        #expect(result.replies == [.leaseExtended(deadline: now + 2 * Self.second), .ok])
        // Only the lease nobody answered for expires.
        #expect(result.expired.map(\.id) == ["idle"])
        let records = try store.fetch(.ids(["touched", "acked", "idle"]))
        #expect(records.map(\.id).sorted() == ["idle", "touched"])
        #expect(records.first { $0.id == "touched" }?.leaseDeadline == now + 2 * Self.second)
        #expect(records.first { $0.id == "idle" }?.state == .scheduled)
    }

    @Test func anAckSentJustBeforeClosingIsApplied() throws {
        let (directory, store) = try Self.storeWithLease(ids: ["acked", "held"])
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        // The worker acked one task and closed its connection while a job ran: the next job applies the ACK,
        // then releases what the worker still held.
        var job = Self.job(now: Self.start + Self.second, requests: [.ack(LeaseRef(id: "acked", attempt: 1))])
        job.expireLeases = false
        job.releaseHolders = [Self.worker]
        let result = try job.run(on: .lmdb(store)).get()
        #expect(result.replies == [.ok])
        #expect(result.released == 1)
        let records = try store.fetch(.ids(["acked", "held"]))
        #expect(records.map(\.id) == ["held"])
        #expect(records.first?.state == .scheduled)
        #expect(records.first?.lastError == "worker disconnected")
    }

    @Test func aClaimOfAClosingConnectionTakesNothing() throws {
        let directory = try TemporaryDirectory.create(prefix: "storejob")
        let store = try LMDBTaskStore(directory: directory + "/store", options: StoreOptions(durable: false))
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        _ = try store.add([TaskSpec(id: "due", callback: "cb", runAt: Self.start)], now: Self.start)
        var job = Self.job(now: Self.start, requests: [])
        job.expireLeases = false
        job.requests = [JobRequest(holder: Self.worker, subscriptionLease: nil,
                                   message: .claim(Claim(callbacks: ["cb"], max: 5, leaseMicros: nil)),
                                   holderClosing: true)]
        job.releaseHolders = [Self.worker]
        let result = try job.run(on: .lmdb(store)).get()
        #expect(result.replies == [.tasks([])])
        // Not leased to the closed connection, so not counted against the task when the holder is released.
        #expect(result.released == 0)
        let record = try #require(try store.fetch(.ids(["due"])).first)
        #expect(record.state == .scheduled && record.attempt == 0 && record.lastError == nil)
    }

    @Test func theExpirySparesLeasesThatHeldRequestsName() throws {
        let (directory, store) = try Self.storeWithLease(ids: ["named", "other", "unnamed"])
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        // A TOUCH of "named" waits behind a read of its connection for the next job; a TOUCH of "other" from
        // another connection spares nothing (it would get LEASE_LOST anyway).
        var job = Self.job(now: Self.start + 2_500_000, requests: [])
        job.sparedLeases = [RequestedLease(id: "named", holder: Self.worker), RequestedLease(id: "other", holder: Self.worker + 1)]
        let result = try job.run(on: .lmdb(store)).get()
        #expect(result.expired.map(\.id) == ["other", "unnamed"])
        #expect(try store.fetch(.ids(["named"])).first?.state == .leased)
        // The next job applies the TOUCH: the lease is still there.
        let touch = Self.job(now: Self.start + 2_600_000, requests: [.touch(Touch(lease: LeaseRef(id: "named", attempt: 1)))])
        #expect(try touch.run(on: .lmdb(store)).get().replies == [.leaseExtended(deadline: Self.start + 4_600_000)])
    }

    @Test func aPollingClaimInTheExpiryJobGetsTheExpiredTask() throws {
        let (directory, store) = try Self.storeWithLease(ids: ["expired"])
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        var job = Self.job(now: Self.start + 3 * Self.second, requests: [])
        job.requests = [JobRequest(holder: Self.worker + 1, subscriptionLease: nil,
                                   message: .claim(Claim(callbacks: ["cb"], max: 10, leaseMicros: nil)))]
        let result = try job.run(on: .lmdb(store)).get()
        #expect(result.expired.map(\.id) == ["expired"])
        guard case .tasks(let tasks) = result.replies.first else {
            Issue.record("expected TASKS, got \(result.replies)")
            return
        }
        #expect(tasks.map(\.id) == ["expired"])
        #expect(tasks.first?.attempt == 2)
    }

    @Test func aRequestAfterTheExpiryJobFindsTheLeaseLost() throws {
        let (directory, store) = try Self.storeWithLease(ids: ["late"])
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        let now = Self.start + 2_500_000
        let expiry = try Self.job(now: now, requests: []).run(on: .lmdb(store)).get()
        #expect(expiry.expired.map(\.id) == ["late"])
        var touch = Self.job(now: now + 1_000, requests: [.touch(Touch(lease: LeaseRef(id: "late", attempt: 1)))])
        touch.expireLeases = false
        let reply = try #require(try touch.run(on: .lmdb(store)).get().replies.first)
        guard case .error(let error) = reply else {
            Issue.record("expected LEASE_LOST, got \(reply)")
            return
        }
        #expect(error.code == .leaseLost)
    }

    /// A job that holds a durable change flushes the store itself only when no write waits for the next job
    /// (whose commit would flush its meta page anyway), and only after a commit.
    @Test func aJobFlushesItselfOnlyWhenAloneAndCommitted() throws {
        let directory = try TemporaryDirectory.create(prefix: "storejob-flush")
        let store = try LMDBTaskStore(directory: directory + "/store",
                                      options: StoreOptions(durable: true, deferMetaSync: true))
        defer {
            store.close()
            TemporaryDirectory.remove(directory)
        }
        let arrivals = WriteArrivals()
        func addJob(_ id: String) -> StoreJob {
            var job = Self.job(now: Self.start, requests: [.addTasks(AddTasks(tasks: [
                TaskSpec(id: id, callback: "cb", runAt: Self.start + 60 * Self.second)]))])
            job.expireLeases = false
            job.flushesItself = true
            return job
        }

        let alone = addJob("alone")
        #expect(alone.flushIfAlone(.lmdb(store), alone.run(on: .lmdb(store)), arrivals: arrivals))

        arrivals.set(true)
        let followed = addJob("followed")
        #expect(!followed.flushIfAlone(.lmdb(store), followed.run(on: .lmdb(store)), arrivals: arrivals),
                "a write waits: the next job's commit flushes this one's meta page")
        arrivals.set(false)

        // Only lease changes (CLAIM, TOUCH): the periodic flush covers them.
        var notDurable = addJob("not-durable")
        notDurable.flushesItself = false
        #expect(!notDurable.flushIfAlone(.lmdb(store), notDurable.run(on: .lmdb(store)), arrivals: arrivals))

        // A second add of the same id fails (FAIL on conflict): nothing committed, nothing to flush.
        var conflict = Self.job(now: Self.start, requests: [.addTasks(AddTasks(onConflict: .fail, tasks: [
            TaskSpec(id: "alone", callback: "cb", runAt: Self.start)]))])
        conflict.expireLeases = false
        conflict.flushesItself = true
        let result = conflict.run(on: .lmdb(store))
        #expect((try? result.get().committed) == false)
        #expect(!conflict.flushIfAlone(.lmdb(store), result, arrivals: arrivals))
    }
}
