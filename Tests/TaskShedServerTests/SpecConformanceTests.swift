import Glibc
import TaskShedProtocol
import TaskShedTestSupport
import Testing

/// Differences between PROTOCOL.md and the daemon that a client written from the specification alone found
/// (issue 17), and the behaviours the specification now states where it was silent: each test speaks raw frames
/// to a real daemon and checks what the specification says.
@Suite struct SpecConformanceTests {
    /// An instant well after now, so that nothing is delivered while a test looks at it.
    static let later = nowMicros() + 3_600_000_000

    // MARK: FETCH_TASKS

    @Test func groupFetchIsOrderedByRunAtThenID() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([
            task("a", runAt: Self.later + 3, group: "g"), task("z", runAt: Self.later + 1, group: "g"),
            task("m", runAt: Self.later + 1, group: "g"), task("b", runAt: Self.later + 2, group: "g"),
            task("other", runAt: Self.later, group: "h"),
        ])
        guard case .tasks(let tasks) = try client.call(.fetchTasks(.group("g"))) else {
            Issue.record("FETCH did not answer TASKS")
            return
        }
        #expect(tasks.map(\.id) == ["m", "z", "b", "a"])
        #expect(try daemon.stop() == 0)
    }

    @Test func fetchWithKindAllNamesTheSelectorKind() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        expectError(try client.call(.fetchTasks(.all)), .invalidArgument, field: "selector.kind")
        #expect(try daemon.stop() == 0)
    }

    @Test func fetchOfAGroupLargerThanMaxBatchIsRefused() throws {
        let daemon = try DaemonProcess(arguments: ["--max-batch", "10"])
        let client = try Client(daemon)
        try client.add((0..<10).map { task("big-\($0)", runAt: Self.later, group: "big") })
        try client.add([task("big-10", runAt: Self.later, group: "big")] + (0..<9).map { task("fits-\($0)", group: "fits") })
        try client.add([task("fits-9", runAt: Self.later, group: "fits")])
        expectError(try client.call(.fetchTasks(.group("big"))), .invalidArgument, field: "selector.group")
        guard case .tasks(let fits) = try client.call(.fetchTasks(.group("fits"))) else {
            Issue.record("a group of max_batch tasks was refused")
            return
        }
        #expect(fits.count == 10)
        #expect(try daemon.stop() == 0)
    }

    // MARK: PAUSE_TASKS and RESUME_TASKS

    @Test func pauseAndResumeLeaveDeadTasksAloneSoThatARetriedTaskRuns() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("dies", callback: "once", group: "g", maxAttempts: 1),
                        task("waits", callback: "later", runAt: Self.later, group: "g")])
        let claimed = try client.claim(["once"], max: 1)
        #expect(claimed.map(\.id) == ["dies"])
        if let dies = claimed.first { #expect(try client.fail(dies, retry: false) == .ok) }
        #expect(try client.fetch(["dies"]).first?.state == .dead)

        #expect(try client.affected(.pauseTasks(.group("g"))) == 1)
        let dead = try #require(try client.fetch(["dies"]).first)
        #expect(!dead.paused && dead.pausedAt == nil)
        #expect(try client.fetch(["waits"]).first?.paused == true)
        // A retried task runs at once rather than staying paused.
        #expect(try client.affected(.retryDead(.group("g"))) == 1)
        #expect(try client.claim(["once"], max: 1).map(\.id) == ["dies"])
        // RESUME counts only the tasks it applies to: "waits" (and the leased "dies", which was not paused).
        #expect(try client.affected(.resumeTasks(.group("g"))) == 2)
        #expect(try daemon.stop() == 0)
    }

    @Test func resumeDoesNotCountDeadTasks() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("dies", callback: "once", maxAttempts: 1)])
        if let dies = try client.claim(["once"], max: 1).first { #expect(try client.fail(dies, retry: false) == .ok) }
        #expect(try client.affected(.resumeTasks(.ids(["dies"]))) == 0)
        #expect(try client.affected(.pauseTasks(.all)) == 0)
        #expect(try daemon.stop() == 0)
    }

    // MARK: Decoding order

    /// A client must not send server-to-client types at all: the type is refused before the payload is read,
    /// whatever the payload holds, before and after the handshake (PROTOCOL.md section 2, vector
    /// `bad.reply_type.hex`).
    @Test func aReplyTypeIsAnUnknownRequestWhateverItsPayload() throws {
        let daemon = try DaemonProcess()
        // HELLO_OK (0x8001) with three bytes that are no HELLO_OK payload, then the same with no payload.
        let garbage: [UInt8] = [0, 0, 0, 11, 0x80, 0x01, 0, 0, 0, 0, 0, 21, 1, 2, 3]
        let empty: [UInt8] = [0, 0, 0, 8, 0x80, 0x31, 0, 0, 0, 0, 0, 22]

        let early = try RawConnection(path: daemon.socketPath)
        try early.send(bytes: garbage)
        let beforeHandshake = try #require(try early.receive())
        #expect(beforeHandshake.requestID == 21)
        expectError(beforeHandshake.message, .unknownMessageType)
        // Not fatal, and not a request before HELLO: the connection still takes the handshake.
        _ = try early.handshake()

        let connection = try daemon.connect()
        for (bytes, id) in [(garbage, UInt32(21)), (empty, 22)] {
            try connection.send(bytes: bytes)
            let reply = try #require(try connection.receive())
            #expect(reply.requestID == id)
            expectError(reply.message, .unknownMessageType)
        }
        #expect(try connection.request(.ping, id: 23).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    /// A request whose payload does not decode is answered MALFORMED_MESSAGE even before the handshake, and the
    /// server goes on waiting for HELLO (PROTOCOL.md section 5).
    @Test func aMalformedRequestBeforeTheHandshakeIsAnsweredAndTheConnectionKept() throws {
        let daemon = try DaemonProcess()
        let early = try RawConnection(path: daemon.socketPath)
        try early.send(bytes: [0, 0, 0, 9, 0x00, 0x02, 0, 0, 0, 0, 0, 31, 0xAA])
        let reply = try #require(try early.receive())
        #expect(reply.requestID == 31)
        expectError(reply.message, .malformedMessage)
        _ = try early.handshake()
        #expect(try early.request(.ping, id: 32).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    // MARK: Field checks

    @Test func listFilterInstantsOutsideTheRangeAreRefused() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        let latest: Int64 = 253_402_300_799_999_999
        expectError(try client.call(.listTasks(ListTasks(filter: TaskFilter(dueAfter: -1), limit: 1))),
                    .invalidArgument, field: "filter.due_after")
        expectError(try client.call(.listTasks(ListTasks(filter: TaskFilter(dueBefore: latest + 1), limit: 1))),
                    .invalidArgument, field: "filter.due_before")
        expectError(try client.call(.listTasks(ListTasks(filter: TaskFilter(dueBefore: .min), limit: 1))),
                    .invalidArgument, field: "filter.due_before")
        // The bounds themselves are instants in range.
        #expect(try client.call(.listTasks(ListTasks(filter: TaskFilter(dueAfter: 0, dueBefore: latest), limit: 1))).type
                == .taskPage)
        #expect(try daemon.stop() == 0)
    }

    /// An attempt of 0 can never name a delivery (the first delivery is attempt 1): it is the client's mistake,
    /// not a lease it lost, and gets INVALID_ARGUMENT naming the field (PROTOCOL.md section 4.5).
    @Test func aLeaseReferenceWithAttemptZeroIsAnInvalidArgument() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("t")])
        let leased = try #require(try client.claim(["cb"], max: 1).first)
        expectError(try client.call(.ack(LeaseRef(id: "t", attempt: 0))), .invalidArgument, field: "attempt")
        expectError(try client.call(.release(LeaseRef(id: "t", attempt: 0))), .invalidArgument, field: "attempt")
        expectError(try client.call(.fail(Fail(lease: LeaseRef(id: "t", attempt: 0), error: "x", retry: true))),
                    .invalidArgument, field: "lease.attempt")
        expectError(try client.call(.touch(Touch(lease: LeaseRef(id: "t", attempt: 0)))), .invalidArgument,
                    field: "lease.attempt")
        // The lease was not touched by the refused requests.
        #expect(try client.ack(leased) == .ok)
        #expect(try daemon.stop() == 0)
    }

    @Test func kwargsWithALoneSurrogateAreRefusedNamingTheField() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        for kwargs in [#"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{"a":"\ud800\u0041"}"#] {
            let reply = try client.call(.addTasks(AddTasks(tasks: [task("s", kwargs: kwargs)])))
            expectError(reply, .invalidArgument, field: "tasks[0].kwargs")
            if case .error(let error) = reply { #expect(error.message.contains("surrogate"), "\(error.message)") }
        }
        #expect(try client.fetch(["s"]).isEmpty)
        #expect(try daemon.stop() == 0)
    }

    // MARK: Where the specification was silent

    /// TOUCH without `extend_us` extends by the subscription's lease length, for a CLAIMed lease too, and not
    /// by the CLAIM's `lease_us` (PROTOCOL.md section 6.14).
    @Test func touchWithoutExtensionUsesTheSubscriptionsLeaseForAClaimedLease() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.subscribe(["pushed"], concurrency: 1, leaseMicros: 120_000_000)
        try client.add([task("polled", callback: "claimed")])
        let leased = try #require(try client.claim(["claimed"], max: 1, leaseMicros: 3_600_000_000).first)
        let before = nowMicros()
        guard case .leaseExtended(let deadline) = try client.call(
            .touch(Touch(lease: LeaseRef(id: leased.id, attempt: leased.attempt))))
        else {
            Issue.record("TOUCH did not answer LEASE_EXTENDED")
            return
        }
        #expect(deadline >= before + 120_000_000 && deadline <= nowMicros() + 120_000_000)
        // Without a subscription it is default_lease_us (30 s), again not the CLAIM's lease length.
        #expect(try client.call(.unsubscribe) == .ok)
        guard case .leaseExtended(let second) = try client.call(
            .touch(Touch(lease: LeaseRef(id: leased.id, attempt: leased.attempt))))
        else {
            Issue.record("TOUCH did not answer LEASE_EXTENDED")
            return
        }
        #expect(second <= nowMicros() + 30_000_000 && second >= before + 30_000_000)
        #expect(try daemon.stop() == 0)
    }

    /// Tasks a subscribed connection CLAIMs do not take its subscription's delivery slots.
    @Test func claimedLeasesDoNotCountAgainstTheSubscriptionsConcurrency() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("polled", callback: "cb")])
        #expect(try client.claim(["cb"], max: 1).map(\.id) == ["polled"])
        try client.subscribe(["cb"], concurrency: 1)
        try client.add([task("pushed", callback: "cb")])
        #expect(try client.nextDelivery()?.id == "pushed")
        #expect(try daemon.stop() == 0)
    }

    /// kwargs are stored and returned byte for byte: whitespace, key order, duplicate keys and escapes are
    /// kept (PROTOCOL.md section 4.3).
    @Test func kwargsAreStoredVerbatim() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        let text = " {\"b\" : 1,\n\"a\":[ 1.50, 2E3 ], \"b\":\"\\u00e9\\/\u{e9}\"}\t"
        try client.add([task("v", runAt: Self.later, kwargs: text), task("empty", runAt: Self.later, kwargs: "")])
        let records = try client.fetch(["v", "empty"])
        #expect(records.first?.kwargs == Array(text.utf8))
        #expect(records.last?.kwargs == Array("{}".utf8))
        #expect(try daemon.stop() == 0)
    }

    /// A selector naming an id twice selects it once; UPDATE_RUN_TIMES applies duplicates in order (the last
    /// one wins) and counts every entry.
    @Test func duplicateIdsInSelectorsCountOnceAndTheLastUpdateWins() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([task("a", runAt: Self.later), task("b", runAt: Self.later)])
        #expect(try client.fetch(["b", "a", "b"]).map(\.id) == ["b", "a"])
        #expect(try client.affected(.pauseTasks(.ids(["a", "a", "b"]))) == 2)
        let updates = [RunTimeUpdate(id: "a", runAt: Self.later + 5), RunTimeUpdate(id: "a", runAt: Self.later + 9)]
        #expect(try client.affected(.updateRunTimes(updates)) == 2)
        #expect(try client.fetch(["a"]).first?.runAt == Self.later + 9)
        #expect(try daemon.stop() == 0)
    }

    /// A HELLO whose `client_name` is longer than 255 bytes is accepted: the name is only a label for logs.
    @Test func aLongClientNameIsAccepted() throws {
        let daemon = try DaemonProcess()
        let connection = try RawConnection(path: daemon.socketPath)
        let ok = try connection.handshake(clientName: String(repeating: "n", count: 1000))
        #expect(ok.version == 1)
        #expect(try connection.request(.ping, id: 2).type == .pong)
        #expect(try daemon.stop() == 0)
    }

    /// STATS: a callback's `scheduled` counts its scheduled tasks paused or not, due or not (not leased, not
    /// dead); `waiting_for_worker` counts the due tasks of callbacks without a subscription, even where a
    /// polling worker CLAIMs them; `lag` covers DELIVERY pushes only.
    @Test func statsCountsAsTheSpecificationSays() throws {
        let daemon = try DaemonProcess()
        let client = try Client(daemon)
        try client.add([
            task("due", callback: "polled"), task("pending", callback: "polled", runAt: Self.later),
            task("paused", callback: "polled", paused: true), task("leased", callback: "polled"),
            task("pushed", callback: "pushed"),
        ])
        // A polling worker holds "leased" or "due" (both due; either may come first).
        let polled = try #require(try client.claim(["polled"], max: 1).first)
        let worker = try Client(daemon)
        try worker.subscribe(["pushed"], concurrency: 1)
        #expect(try worker.nextDelivery()?.id == "pushed")
        let stats = try client.stats()
        let entry = try #require(stats.callbacks.first { $0.callback == "polled" })
        #expect(entry.scheduled == 3 && entry.due == 1 && entry.leased == 1 && entry.workers == 0)
        #expect(stats.waitingForWorker == 1)
        #expect(stats.lag.count == 1, "CLAIM of \(polled.id) counted in the lag")
        #expect(try daemon.stop() == 0)
    }
}
