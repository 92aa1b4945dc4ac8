import CTimerFD
import Glibc
import TaskShedProtocol

/// A delivery that arrived before its task's due time, waiting for it.
struct DeferredDelivery {
    /// The subscription's request id (its push handler starts the task).
    let requestID: UInt32
    /// The leased task.
    let task: TaskRecord
    /// The task's due time, `CLOCK_REALTIME` ns.
    var startNanos: Int64 { task.runAt &* 1_000 }
}

/// The deliveries a daemon sent ahead of their due time (SUBSCRIBE_AHEAD, protocol version 3), held by the
/// connection's reading until then, and the timer that wakes the reading at the earliest one.
///
/// The worker starts such a task from this timer at its `run_at`, never before; but first it reads whatever the
/// daemon has written to the socket by then (`Connection`'s reading checks `drainedNanos`), so that a `REVOKE`
/// sent before the due time (the task was removed, paused, rescheduled or replaced) is seen before the start.
///
/// The timer is a `timerfd` on `CLOCK_REALTIME` (the clock of run times) armed for an absolute instant with
/// `TFD_TIMER_CANCEL_ON_SET`: a stepped clock wakes the reading, which then looks at the clock again. A
/// `timerfd`'s expiry has no timer slack, unlike `poll`'s own timeout (50 µs by default for a thread). When no
/// `timerfd` can be created (descriptor limit), the reading waits with `poll`'s millisecond timeout instead.
///
/// - Important: Part of `ReaderState`: only the thread holding the reading turn touches it.
struct DeferredDeliveries: ~Copyable {
    /// Waiting deliveries from `head` on, earliest due time first. A moving head, not `removeFirst`: a burst of
    /// tasks due at one instant can leave thousands waiting, and shifting the array at each start would make
    /// starting them quadratic.
    private var entries: [DeferredDelivery] = []
    private var head = 0
    /// The timer's descriptor, created on first use; -1 before, or when it cannot be created.
    private var timer: Int32 = -1
    /// Creating the timer failed once: wait with `ppoll`'s timeout.
    private var timerFailed = false
    /// The instant the timer is armed for (`CLOCK_REALTIME` ns), 0 when disarmed.
    private var armedNanos: Int64 = 0

    /// Whether nothing waits.
    var isEmpty: Bool { head == entries.count }

    /// The earliest waiting delivery.
    var first: DeferredDelivery? { isEmpty ? nil : entries[head] }

    /// Adds a delivery, keeping due-time order (deliveries usually arrive in that order: appended).
    mutating func add(_ delivery: DeferredDelivery) {
        var index = entries.count
        while index > head && entries[index - 1].startNanos > delivery.startNanos { index -= 1 }
        entries.insert(delivery, at: index)
    }

    /// Removes and returns the earliest delivery; the queue must not be empty.
    mutating func removeFirst() -> DeferredDelivery {
        let delivery = entries[head]
        head += 1
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= entries.count {
            entries.removeSubrange(..<head)
            head = 0
        }
        return delivery
    }

    /// Removes the delivery of this lease (a `REVOKE`): whether it was waiting.
    mutating func revoke(_ lease: LeaseRef) -> Bool {
        guard let index = entries[head...].firstIndex(where: { $0.task.id == lease.id && $0.task.attempt == lease.attempt })
        else { return false }
        entries.remove(at: index)
        return true
    }

    /// Waits until `socket` is readable or the earliest delivery is due (or a signal or clock step interrupts).
    /// - Returns: Whether the socket is readable (or in error: the next `read` says which).
    mutating func wait(socket: Int32) -> Bool {
        guard let first else { return true }
        var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
        var timeoutMillis: Int32 = -1
        if arm(first.startNanos) {
            fds.append(pollfd(fd: timer, events: Int16(POLLIN), revents: 0))
        } else {
            // Rounded up: waking before the due time would only wait again.
            let left = max(0, first.startNanos - Self.realtimeNanos())
            timeoutMillis = Int32(clamping: (left + 999_999) / 1_000_000)
        }
        let ready = poll(&fds, nfds_t(fds.count), timeoutMillis)
        if ready > 0 && fds.count > 1 && fds[1].revents != 0 {
            // Expired or cancelled by a clock step: either way it must be armed again.
            var expirations: UInt64 = 0
            _ = Glibc.read(timer, &expirations, MemoryLayout<UInt64>.size)
            armedNanos = 0
        }
        return ready > 0 && fds[0].revents != 0
    }

    /// Closes the timer (the reading has ended).
    mutating func close() {
        if timer >= 0 { Glibc.close(timer) }
        timer = -1
        entries.removeAll()
        head = 0
    }

    /// Arms the timer for `nanos` unless it already is: whether the timer can be waited on.
    private mutating func arm(_ nanos: Int64) -> Bool {
        if timer < 0 {
            guard !timerFailed else { return false }
            timer = timerfd_create(CLOCK_REALTIME, Int32(TFD_CLOEXEC) | Int32(TFD_NONBLOCK))
            timerFailed = timer < 0
            guard timer >= 0 else { return false }
        }
        guard armedNanos != nanos else { return true }
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(nanos / 1_000_000_000)
        spec.it_value.tv_nsec = Int(nanos % 1_000_000_000)
        // An instant of 0 would disarm it: the earliest instant there is, 1 ns, fires at once just the same.
        if nanos <= 0 { spec.it_value.tv_nsec = 1 }
        guard timerfd_settime(timer, Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET), &spec, nil) == 0 else {
            return false
        }
        armedNanos = nanos
        return true
    }

    /// `CLOCK_REALTIME` in nanoseconds.
    static func realtimeNanos() -> Int64 {
        ReadingLoan.realtimeNanos()
    }
}
