#if canImport(Glibc)
import Glibc
#endif

/// Facts about the machine a benchmark ran on, printed with every report: figures on a shared 2-core VM mean
/// little without the load next to them.
public enum MachineFacts {
    /// Online processors.
    public static var processors: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// The first `model name` of `/proc/cpuinfo`, or `unknown`.
    public static var cpuModel: String {
        guard let text = ProcFacts.readSmallFile("/proc/cpuinfo") else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return String(line[line.index(after: colon)...]).trimmingSpaces
            }
        }
        return "unknown"
    }

    /// Kernel release (`uname -r`).
    public static var kernel: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The 1, 5 and 15 minute load averages of `/proc/loadavg`.
    public static var loadAverages: [Double] {
        guard let text = ProcFacts.readSmallFile("/proc/loadavg") else { return [] }
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }

    /// One line: processors, CPU, kernel, load.
    public static var summary: String {
        "\(processors) CPUs (\(cpuModel)), Linux \(kernel), load average "
            + loadAverages.map { formatDecimal($0, digits: 2) }.joined(separator: " ")
    }

    /// The same facts as JSON.
    public static var json: BenchJSON {
        .object([("processors", .integer(Int64(processors))), ("cpu", .string(cpuModel)),
                 ("kernel", .string(kernel)), ("load_average", .array(loadAverages.map { .number($0) }))])
    }

    /// `fdatasync` latency of a 4 KiB overwrite in `directory`: the floor of one durable commit, measured in the
    /// same run because it swings by 30x on this VM when other processes write to the disk.
    /// - Parameters:
    ///   - directory: Where to create the probe file (the daemon's disk).
    ///   - count: Syncs to time.
    /// - Returns: Latencies in µs.
    /// - Throws: `BenchError` when the file cannot be written.
    public static func fdatasyncMicros(directory: String, count: Int = 200) throws -> LagDistribution {
        let path = directory + "/fsync-probe"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchError.errno("open(\(path))") }
        defer {
            close(fd)
            unlink(path)
        }
        var page = [UInt8](repeating: 0x5a, count: 4096)
        for slot in 0..<16 { guard pwrite(fd, &page, page.count, off_t(slot * 4096)) == page.count else {
            throw BenchError.errno("pwrite") } }
        fsync(fd)
        var samples: [Double] = []
        for index in 0..<count {
            page[0] = UInt8(truncatingIfNeeded: index)
            guard pwrite(fd, &page, page.count, off_t((index % 16) * 4096)) == page.count else {
                throw BenchError.errno("pwrite")
            }
            let start = BenchTime.monotonicNanos()
            guard fdatasync(fd) == 0 else { throw BenchError.errno("fdatasync") }
            samples.append(Double(BenchTime.monotonicNanos() - start) / 1000)
        }
        return LagDistribution(micros: samples)
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
