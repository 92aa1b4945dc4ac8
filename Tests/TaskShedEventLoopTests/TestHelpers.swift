import Glibc
import TaskShedEventLoop

/// A fresh temporary directory, removed (with its files) by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/tsel-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func remove() {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

/// A blocking client socket connected to `path`, or -1.
func connectClient(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
    }
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if result != 0 {
        close(fd)
        return -1
    }
    return fd
}

/// Reads exactly `count` bytes (blocking), or fewer at end of file.
func readExactly(_ fd: Int32, _ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
        if n <= 0 { break }
        got += n
    }
    return Array(bytes[0..<got])
}

/// Writes all bytes (blocking).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, bytes.count - sent) }
        if n <= 0 { return }
        sent += n
    }
}

/// Runs `loop` until it is stopped, with a safety timer that stops it after `limitMillis` so that a broken
/// test fails instead of hanging. Returns whether the safety timer fired.
@discardableResult
func run(_ loop: EventLoop, limitMillis: UInt64 = 10_000) throws -> Bool {
    var expired = false
    let guardTimer = try CoarseTimer(loop: loop) {
        expired = true
        loop.stop()
    }
    guardTimer.unreference()
    guardTimer.start(afterMillis: limitMillis)
    loop.run()
    guardTimer.close()
    return expired
}
