import Foundation
import Glibc
import Synchronization
import TaskShedProtocol

/// A scripted stand-in for taskshedd on a real Unix socket, for connection-level behaviour that the real daemon
/// cannot be made to show on demand (replies out of order, a reply that never comes, a frame that is garbage).
///
/// It accepts one connection, answers HELLO itself, and hands every other request to the test, which replies
/// with `send`. Everything else about the client is tested against the real daemon.
final class FakeDaemon: Sendable {
    let directory: String
    let socketPath: String
    private let listener: Int32
    /// Whether `listener` is still open; the serving thread closes it, under this lock, so that `stop` never
    /// shuts down a descriptor number that another socket has reused.
    private let listenerOpen = Mutex(true)
    private let client = Mutex<Int32>(-1)
    private let requests: AsyncStream<Frame>
    private let requestsContinuation: AsyncStream<Frame>.Continuation
    let helloOK: HelloOK
    private let helloReply: Message?

    /// - Parameters:
    ///   - maxBatch: The batch limit announced in HELLO_OK.
    ///   - helloReply: What to answer HELLO with instead of HELLO_OK (an ERROR is followed by closing).
    ///   - version: The protocol version HELLO_OK announces (3 for the requests of version 3, such as the run
    ///     history).
    init(maxBatch: UInt32 = 100_000, helloReply: Message? = nil, version: UInt16 = 1) throws {
        self.helloReply = helloReply
        var template = Array("/tmp/taskshed-fake-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        directory = String(cString: made)
        socketPath = directory + "/fake.sock"
        helloOK = HelloOK(
            version: version, serverName: "fake", serverVersion: "0", maxFrameBytes: ProtocolLimits.defaultMaxFrameBytes,
            maxBatch: maxBatch, maxKwargsBytes: 65536, defaultLeaseMicros: 30_000_000, connectionID: 7)
        (requests, requestsContinuation) = AsyncStream<Frame>.makeStream()

        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// The next request the client sent (after HELLO).
    func nextRequest() async -> Frame? {
        var iterator = requests.makeAsyncIterator()
        return await iterator.next()
    }

    /// Sends raw bytes to the client.
    func send(bytes: [UInt8]) {
        // Under the lock: the serving thread closes the descriptor under it too, so the number cannot be
        // reused by another socket in between.
        client.withLock { fd in
            guard fd >= 0 else { return }
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if written <= 0 { return }
                    offset += written
                }
            }
        }
    }

    /// Sends one frame to the client.
    func send(_ message: Message, requestID: UInt32) {
        send(bytes: encode(message, requestID: requestID))
    }

    /// One frame's bytes, in the layouts of the version this daemon's HELLO_OK announces.
    func encode(_ message: Message, requestID: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        FrameEncoder.encode(Frame(requestID: requestID, message: message), into: &bytes, version: helloOK.version)
        return bytes
    }

    /// Closes the client's connection (as a daemon that stops would).
    func disconnect() {
        client.withLock { fd in
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Stops listening and removes the socket.
    func stop() {
        disconnect()
        // Wakes (or pre-empts) the serving thread's accept; that thread closes the descriptor, so the number
        // cannot be reused by another test's socket while it is still blocked on it.
        listenerOpen.withLock { open in
            if open { shutdown(listener, Int32(SHUT_RDWR)) }
        }
        unlink(socketPath)
        rmdir(directory)
    }

    private func serve() {
        let fd = accept(listener, nil, nil)
        // Kept open (later connections wait unanswered in the backlog) until the one client is gone.
        defer {
            listenerOpen.withLock { open in
                Glibc.close(listener)
                open = false
            }
        }
        guard fd >= 0 else {
            requestsContinuation.finish()
            return
        }
        client.withLock { $0 = fd }
        var decoder = FrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 65536)
        reading: while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            decoder.append(contentsOf: buffer[..<count])
            while true {
                guard let frame = try? decoder.next() else { break }
                if case .hello = frame.message {
                    send(helloReply ?? .helloOK(helloOK), requestID: frame.requestID)
                    if case .error = helloReply { break reading }
                } else {
                    requestsContinuation.yield(frame)
                }
            }
        }
        requestsContinuation.finish()
        client.withLock { fd in
            Glibc.close(fd)
            fd = -1
        }
    }
}
