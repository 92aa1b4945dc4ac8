import CTimerFD
import Dispatch
import Foundation
import Glibc
import Synchronization
import TaskShedProtocol

/// The reading state of a connection: the decoder (with any bytes of frames not yet dispatched), the read
/// buffer, and the timer of reading loans.
///
/// - Important: Only the thread holding the reading turn touches it. It changes threads only through the
///   connection's handoff (under the connection's lock, then a semaphore or a thread start), which orders the
///   old holder's last access before the new holder's first; hence `@unchecked Sendable`.
final class ReaderState: @unchecked Sendable {
    var decoder = FrameDecoder(maxFrameBytes: Connection.maxIncomingFrameBytes)
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// When the last `read(2)` returned (`CLOCK_REALTIME` ns): the arrival of the frames it brought (for a
    /// delivery sent ahead, when it was taken from `deferred` to start).
    var readNanos: Int64 = 0
    /// Deliveries that arrived before their due time, and their timer.
    var deferred = DeferredDeliveries()
    /// A time (`CLOCK_REALTIME` ns) by which every byte the daemon had written was read: a read that began then
    /// left the socket empty. A delivery sent ahead starts only once this has passed its due time.
    var drainedNanos: Int64 = 0
    private let onLoanExpired: @Sendable () -> Void
    private var timer: ReadingLoan?
    /// timerfd creation failed once (descriptor limit): loans fall back to moving the reading at once.
    private var timerFailed = false

    /// - Parameter onLoanExpired: Runs on the timer's thread when a loan's grace has run out.
    init(onLoanExpired: @escaping @Sendable () -> Void) {
        self.onLoanExpired = onLoanExpired
    }

    /// The loan timer, created on first use; `nil` when it cannot be created.
    func loanTimer() -> ReadingLoan? {
        if let timer { return timer }
        if timerFailed { return nil }
        timer = ReadingLoan(onExpiry: onLoanExpired)
        timerFailed = timer == nil
        return timer
    }

    /// Stops the loan timer's thread and closes its descriptor, and the deferred deliveries' timer (when the
    /// reading ends).
    func stopTimers() {
        timer?.stop()
        timer = nil
        deferred.close()
    }
}

/// A reader thread's turn while a push handler runs: lets the handler keep the thread.
///
/// - Important: Valid only during the push handler's call, on the reader thread.
final class ReaderTurn {
    /// How a handler keeps the thread.
    enum Keep {
        /// The reading is lent: it moves to another thread only if the handler outlasts the loan's grace.
        case lent
        /// The reading moved to another thread at once.
        case handedOff
    }

    private let connection: Connection
    private let reader: ReaderState
    /// How the handler kept the thread; `nil` while it has not.
    private(set) var keep: Keep?
    /// When the frame being handled was read from the socket (`CLOCK_REALTIME` ns).
    var frameReadNanos: Int64 { reader.readNanos }

    init(connection: Connection, reader: ReaderState) {
        self.connection = connection
        self.reader = reader
    }

    /// Lets the handler keep running on this thread (for example run a callback until its first suspension)
    /// for as long as it likes: if it is still running after `Connection.loanGraceNanos`, the reading moves to
    /// another thread, so the frames behind wait at most that long.
    /// - Returns: Whether the thread is kept; when `false` (the connection is closing, or
    ///   `Connection.maxKeptThreads` threads are kept already) the handler must hand its work off and return.
    func keepThread() -> Bool {
        if keep == nil { keep = connection.lendReading(reader) }
        return keep != nil
    }
}

/// The timer of a connection's reading loans: a `timerfd` (`CLOCK_MONOTONIC`) watched by a thread of its own,
/// which runs `onExpiry` each time it fires.
///
/// Arming and disarming are one `timerfd_settime(2)` each and wake nobody, which is the point: lending the
/// reading thread to a callback costs two system calls instead of waking a reader thread before the callback
/// can start.
///
/// - Important: `arm` and `disarm` are called only by the reading's holder; `stop` once, when the reading ends.
///   The descriptor is closed by `stop` after the thread has exited.
final class ReadingLoan: @unchecked Sendable {
    private let descriptor: Int32
    private let stopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Creates the timer and starts its thread; `nil` when `timerfd_create(2)` fails.
    init?(onExpiry: @escaping @Sendable () -> Void) {
        let descriptor = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
        // The thread holds the timer until `stop`.
        let thread = Thread { [self] in
            var expirations: UInt64 = 0
            while true {
                let count = Glibc.read(descriptor, &expirations, MemoryLayout<UInt64>.size)
                if count < 0 && errno == EINTR { continue }
                if stopping.load(ordering: .acquiring) || count < 0 { break }
                onExpiry()
            }
            stopped.signal()
        }
        thread.name = "taskshed-loan"
        thread.start()
    }

    /// Fires once, `nanos` from now (replacing any earlier arming).
    func arm(afterNanos nanos: Int64) {
        set(nanos)
    }

    /// Cancels the pending expiry, if any.
    func disarm() {
        set(0)
    }

    /// Ends the thread and closes the descriptor.
    func stop() {
        stopping.store(true, ordering: .releasing)
        set(1)
        stopped.wait()
        Glibc.close(descriptor)
    }

    private func set(_ nanos: Int64) {
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(nanos / 1_000_000_000)
        spec.it_value.tv_nsec = Int(nanos % 1_000_000_000)
        // Fails only for a bad descriptor or value, neither possible here.
        _ = timerfd_settime(descriptor, 0, &spec, nil)
    }

    /// `CLOCK_MONOTONIC` in nanoseconds (the loans' clock).
    static func monotonicNanos() -> Int64 {
        nanos(CLOCK_MONOTONIC)
    }

    /// `CLOCK_REALTIME` in nanoseconds (the clock of run times, for frame arrival times).
    static func realtimeNanos() -> Int64 {
        nanos(CLOCK_REALTIME)
    }

    private static func nanos(_ clock: clockid_t) -> Int64 {
        var now = timespec()
        clock_gettime(clock, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
