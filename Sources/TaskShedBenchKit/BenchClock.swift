#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// Monotonic time and process facts for benchmarks.
public enum BenchClock {
    /// Nanoseconds of `CLOCK_MONOTONIC`.
    public static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// CPU nanoseconds used by the calling thread (user + system): unlike wall time, not inflated when other
    /// processes compete for the CPUs, but blind to time spent waiting for the disk (fsync).
    public static func threadCPUNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Wall-clock microseconds since the epoch (`CLOCK_REALTIME`), for task times.
    public static func wallMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// A field of `/proc/self/status` in KiB (e.g. "RssAnon", "VmRSS"), or nil.
    public static func procStatusKiB(_ field: String) -> Int? {
        guard let f = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix(field + ":") else { continue }
            let digits = text.dropFirst(field.count + 1).filter { $0.isNumber }
            return Int(digits)
        }
        return nil
    }

    /// Bytes the C heap has handed out and not had back (`mallinfo2`: in-use arena chunks plus mmapped ones).
    /// Unlike RSS, it does not count freed memory that `malloc` keeps, so the difference across a step is
    /// what the step still holds.
    public static func heapBytesInUse() -> Int {
        let info = mallinfo2()
        return Int(info.uordblks) + Int(info.hblkhd)
    }

    /// Asks the kernel to drop clean page-cache pages (needs root); returns whether it worked.
    public static func dropPageCache() -> Bool {
        sync()
        guard let f = fopen("/proc/sys/vm/drop_caches", "w") else { return false }
        let ok = fputs("3\n", f) >= 0
        return fclose(f) == 0 && ok
    }
}
