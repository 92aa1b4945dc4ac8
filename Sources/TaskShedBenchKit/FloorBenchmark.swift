#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// The floor of "due time → another process receives it" on this machine: a bare `timerfd` and one Unix stream
/// socket hop, no scheduler logic at all.
///
/// The **sender** (a child process, `taskshed-bench _floor-sender`) arms a `timerfd` on `CLOCK_REALTIME` with
/// `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET` and 1 ns timer slack — exactly the daemon's timer — for each
/// instant in turn, waits for it with `poll`, reads the expiry count, and writes a 32-byte frame over the
/// socket its parent gave it as descriptor 3. The **receiver** (the bench process) reads frames with blocking
/// `read` and records `clock_gettime(CLOCK_REALTIME)` − instant for each.
///
/// Frame layout (little-endian, the two processes are the same binary on the same machine):
/// ```
///  0        8                16               24               32
///  +--------+----------------+----------------+----------------+
///  | index  | instant ns     | fired ns       | reserved (0)   |
///  | u64    | i64            | i64            | u64            |
///  +--------+----------------+----------------+----------------+
/// ```
/// `fired` is the sender's clock right after the timer read, which splits the lag into timer and hop parts.
public enum FloorBenchmark {
    /// Bytes per frame.
    public static let frameBytes = 32

    /// Settings shared by the two processes.
    public struct Config: Sendable, Hashable {
        /// Number of deadlines.
        public var count: Int
        /// Window the deadlines are spread over, in seconds.
        public var seconds: Double
        /// Seed of the instants.
        public var seed: UInt64
        /// The earliest instant (µs since the epoch); the sender is started before it.
        public var startMicros: Int64

        /// Creates a configuration.
        /// - Parameters:
        ///   - count: Number of deadlines.
        ///   - seconds: Window width.
        ///   - seed: Seed of the instants.
        ///   - startMicros: Start of the window.
        public init(count: Int, seconds: Double, seed: UInt64, startMicros: Int64) {
            self.count = count
            self.seconds = seconds
            self.seed = seed
            self.startMicros = startMicros
        }

        /// The instants, ascending, µs since the epoch.
        public var instants: [Int64] {
            RandomInstants.micros(count: count, startMicros: startMicros, spanMicros: Int64(seconds * 1e6),
                                  seed: seed)
        }

        /// Arguments of the hidden sender subcommand after its name.
        var senderArguments: [String] {
            ["--count", "\(count)", "--seconds", "\(seconds)", "--seed", "\(seed)", "--start-micros", "\(startMicros)"]
        }
    }

    /// Runs the floor: spawns the sender (the bench binary's `_floor-sender` subcommand) and receives its frames.
    /// - Parameters:
    ///   - count: Number of deadlines.
    ///   - seconds: Window width in seconds.
    ///   - seed: Seed of the instants.
    ///   - leadSeconds: Time between now and the window's start, for the sender to start.
    ///   - senderCommand: Subcommand name of the sender in this executable.
    /// - Returns: The lag distribution with its timer and hop components.
    /// - Throws: `BenchError` when the socket pair or spawn fails, or the sender exits with an error.
    public static func run(count: Int, seconds: Double, seed: UInt64 = 7, leadSeconds: Double = 0.5,
                           senderCommand: String = "_floor-sender") throws -> LagRun {
        let start = BenchTime.realtimeNanos() / 1000 + Int64(leadSeconds * 1e6)
        let config = Config(count: count, seconds: seconds, seed: seed, startMicros: start)
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw BenchError.errno("socketpair")
        }
        let receiveFD = pair[0]
        defer { close(receiveFD) }
        let child: BenchProcess
        do {
            child = try BenchProcess(executable: try BenchProcess.selfExecutable(),
                                     arguments: [senderCommand] + config.senderArguments, descriptors: [3: pair[1]])
        } catch {
            close(pair[1])
            throw error
        }
        close(pair[1])
        let records = receive(from: receiveFD, count: count)
        let status = child.wait()
        guard status == 0 else { throw BenchError("floor sender exited with status \(status)") }
        return LagRun.from(
            name: "floor: timerfd + Unix socket", expected: count,
            records: records.map { ($0.index, Double($0.received - $0.instant) / 1000) },
            components: [
                NamedDistribution(name: "floor timer (fired − due)",
                                  distribution: LagDistribution(micros: records.map { Double($0.fired - $0.instant) / 1000 })),
                NamedDistribution(name: "floor hop (received − fired)",
                                  distribution: LagDistribution(micros: records.map { Double($0.received - $0.fired) / 1000 })),
            ])
    }

    struct Record {
        var index: Int
        var instant: Int64
        var fired: Int64
        var received: Int64
    }

    /// Reads frames until end of stream; the receive time is taken as soon as `read` returns.
    static func receive(from fd: Int32, count: Int) -> [Record] {
        var records: [Record] = []
        records.reserveCapacity(count)
        var buffer = [UInt8](repeating: 0, count: 65536)
        var filled = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            let now = BenchTime.realtimeNanos()
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            filled += n
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while filled - offset >= frameBytes {
                    let index = Int(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                    let instant = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: Int64.self))
                    let fired = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: Int64.self))
                    records.append(Record(index: index, instant: instant, fired: fired, received: now))
                    offset += frameBytes
                }
            }
            if offset > 0 {
                buffer.replaceSubrange(0..<(filled - offset), with: buffer[offset..<filled])
                filled -= offset
            }
        }
        return records
    }

    /// The sender's side (runs in the child): one timer deadline after another, one frame each.
    /// - Parameters:
    ///   - config: The deadlines.
    ///   - socketFD: The connected socket to write frames to; closed on return.
    /// - Throws: `BenchError` when the timer cannot be created or armed, or a write fails.
    public static func runSender(config: Config, socketFD: Int32) throws {
        defer { close(socketFD) }
        // 1 ns slack as the daemon sets for its loop thread: without it the kernel may defer the wake-up by
        // the default 50 µs slack.
        guard TimerSlack.set(nanoseconds: 1) else { throw BenchError.errno("prctl(PR_SET_TIMERSLACK)") }
        let timer = timerfd_create(CLOCK_REALTIME, Int32(TFD_CLOEXEC))
        guard timer >= 0 else { throw BenchError.errno("timerfd_create") }
        defer { close(timer) }
        var frame = [UInt8](repeating: 0, count: frameBytes)
        for (index, instantMicros) in config.instants.enumerated() {
            let instantNanos = instantMicros * 1000
            var spec = itimerspec()
            spec.it_value = timespec(tv_sec: Int(instantNanos / 1_000_000_000), tv_nsec: Int(instantNanos % 1_000_000_000))
            var fired: Int64 = 0
            while true {
                guard timerfd_settime(timer, Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET), &spec, nil) == 0
                else { throw BenchError.errno("timerfd_settime") }
                var pfd = pollfd(fd: timer, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, -1)
                if ready < 0 && errno == EINTR { continue }
                guard ready == 1 else { throw BenchError.errno("poll") }
                var expirations: UInt64 = 0
                let n = read(timer, &expirations, 8)
                fired = BenchTime.realtimeNanos()
                if n == 8 { break }
                // ECANCELED: the wall clock was set; re-arm against the new clock, as the daemon does.
                if n < 0 && (errno == ECANCELED || errno == EINTR || errno == EAGAIN) { continue }
                throw BenchError.errno("read(timerfd)")
            }
            frame.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt64(index).littleEndian, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: instantNanos.littleEndian, toByteOffset: 8, as: Int64.self)
                raw.storeBytes(of: fired.littleEndian, toByteOffset: 16, as: Int64.self)
            }
            try writeAll(socketFD, frame)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError.errno("write") }
            offset += n
        }
    }
}
