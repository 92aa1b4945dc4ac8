import Glibc
import Testing
@testable import TaskShedEventLoop

@Suite struct UnixSocketTests {
    @Test func tooLongPathIsRejectedBeforeLibuvTruncatesIt() throws {
        let loop = try EventLoop()
        let path = "/tmp/" + String(repeating: "x", count: 110) + ".sock"
        do {
            _ = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
            Issue.record("bind of a \(path.utf8.count)-byte path succeeded")
        } catch {
            #expect(error.code == -ENAMETOOLONG)
        }
        #expect(access(String(path.prefix(107)), F_OK) != 0)
        try loop.close()
    }

    @Test func listenerAppliesModeAndEchoesWithPeerCredentials() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/echo.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o640, group: getgid())
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o640)
        #expect(info.st_gid == getgid())

        var accepted: [Connection] = []
        var credentials: PeerCredentials?
        listener.onConnection = { error in
            #expect(error == nil)
            guard let connection = try? listener.accept() else { return }
            accepted.append(connection)
            credentials = try? connection.peerCredentials()
            connection.onData = { bytes in
                connection.write(bytes)
                connection.write(Array("!".utf8))
                try? connection.flush()
                loop.stop()
            }
            try? connection.startReading()
        }
        try listener.listen()
        let client = connectClient(path)
        #expect(client >= 0)
        defer { close(client) }
        writeAll(client, Array("hello".utf8))
        let expired = try run(loop)
        #expect(!expired)
        #expect(readExactly(client, 6) == Array("hello!".utf8))
        #expect(credentials == PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
        #expect(accepted.first?.bytesWritten == 6)

        accepted.forEach { $0.close() }
        listener.close()
        try loop.close()
        // The listener removes its socket file when it closes.
        #expect(access(path, F_OK) != 0)
    }

    @Test func writesTheKernelCannotTakeAreQueuedAndCounted() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/bulk.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        let total = 8 << 20
        var server: Connection?
        var pendingAfterFlush = 0
        listener.onConnection = { _ in
            guard let connection = try? listener.accept() else { return }
            server = connection
            connection.outputBuffer = [UInt8](repeating: 0x5A, count: total)
            try? connection.flush()
            pendingAfterFlush = connection.pendingOutputBytes
            loop.stop()
        }
        try listener.listen()
        let client = connectClient(path)
        defer { close(client) }
        try run(loop)
        // Nobody read yet: the socket buffer is far smaller than 8 MiB, so most bytes wait in a uv_write.
        #expect(pendingAfterFlush > 0)
        #expect(pendingAfterFlush < total)
        #expect(server?.outputBuffer.isEmpty == true)

        // Drain from the client side inside the loop until everything arrived.
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        var received = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let drain = try CoarseTimer(loop: loop) {}
        drain.onFire = {
            while true {
                let n = chunk.withUnsafeMutableBytes { read(client, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                received += n
            }
            if received == total && server?.pendingOutputBytes == 0 { loop.stop() }
        }
        drain.start(afterMillis: 1, repeatMillis: 1)
        let expired = try run(loop)
        #expect(!expired)
        #expect(received == total)
        #expect(server?.queuedOutputBytes == 0)
        #expect(server?.bytesWritten == UInt64(total))
        drain.close()
        server?.close()
        listener.close()
        try loop.close()
    }

    @Test func closeAfterFlushDeliversEverythingThenEndOfFile() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/flush.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        let payload = [UInt8](repeating: 7, count: 1 << 20)
        var closed = false
        listener.onConnection = { _ in
            guard let connection = try? listener.accept() else { return }
            connection.onClose = {
                closed = true
                listener.close()
            }
            connection.write(payload)
            connection.closeAfterFlush()
        }
        try listener.listen()
        let client = connectClient(path)
        defer { close(client) }
        // The client reads on the loop thread between iterations so that the server's write can drain.
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        var received: [UInt8] = []
        var sawEnd = false
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let drain = try CoarseTimer(loop: loop) {}
        drain.onFire = {
            while true {
                let n = chunk.withUnsafeMutableBytes { read(client, $0.baseAddress!, $0.count) }
                if n > 0 { received += chunk[0..<n]; continue }
                if n == 0 { sawEnd = true }
                break
            }
            if sawEnd { drain.close() }
        }
        drain.start(afterMillis: 1, repeatMillis: 1)
        let expired = try run(loop)
        #expect(!expired)
        #expect(closed)
        #expect(sawEnd)
        #expect(received == payload)
        try loop.close()
    }

    @Test func endOfFileIsReportedOnce() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/eof.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        var ends: [UVError?] = []
        var data: [UInt8] = []
        listener.onConnection = { _ in
            guard let connection = try? listener.accept() else { return }
            connection.onData = { data += $0 }
            connection.onEnd = { error in
                ends.append(error)
                connection.close()
                listener.close()
            }
            try? connection.startReading()
        }
        try listener.listen()
        let client = connectClient(path)
        writeAll(client, [1, 2, 3])
        close(client)
        let expired = try run(loop)
        #expect(!expired)
        #expect(data == [1, 2, 3])
        #expect(ends.count == 1)
        #expect(ends.first.map { $0 == nil } == true)
        try loop.close()
    }

    @Test func iterationHookRunsAfterTheReadsOfItsIteration() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/hook.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        var readsSinceHook = 0
        var hookSawReads: [Int] = []
        var connection: Connection?
        listener.onConnection = { _ in
            connection = try? listener.accept()
            connection?.onData = { _ in readsSinceHook += 1 }
            try? connection?.startReading()
        }
        let hook = try IterationHook(loop: loop) {
            if readsSinceHook > 0 {
                hookSawReads.append(readsSinceHook)
                readsSinceHook = 0
                loop.stop()
            }
        }
        try listener.listen()
        let client = connectClient(path)
        defer { close(client) }
        writeAll(client, [9])
        let expired = try run(loop)
        #expect(!expired)
        #expect(hookSawReads == [1])
        hook.close()
        connection?.close()
        listener.close()
        try loop.close()
    }

    @Test func adoptedListeningDescriptorAcceptsConnections() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/adopted.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0)
        #expect(try SocketInspection.kind(ofDescriptor: fd).isListeningUnixStream == false)
        #expect(Glibc.listen(fd, 16) == 0)
        let kind = try SocketInspection.kind(ofDescriptor: fd)
        #expect(kind.isListeningUnixStream)

        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, adoptingDescriptor: fd)
        var accepted = false
        listener.onConnection = { _ in
            if let connection = try? listener.accept() {
                accepted = true
                connection.close()
            }
            listener.close()
        }
        try listener.listen()
        let client = connectClient(path)
        defer { close(client) }
        let expired = try run(loop)
        #expect(!expired)
        #expect(accepted)
        try loop.close()
        // An adopted socket's file belongs to whoever created it.
        #expect(access(path, F_OK) == 0)
    }

    @Test func inspectionRejectsDescriptorsThatAreNotSockets() throws {
        let fd = open("/dev/null", O_RDONLY)
        defer { close(fd) }
        do {
            _ = try SocketInspection.kind(ofDescriptor: fd)
            Issue.record("/dev/null inspected as a socket")
        } catch {
            #expect(error.code == -ENOTSOCK)
        }
    }

    @Test func probeTellsAbsentLiveStaleAndForeignPaths() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/probe.sock"
        #expect(try SocketInspection.probe(path: path) == .absent)

        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        try listener.listen()
        #expect(try SocketInspection.probe(path: path) == .live)
        listener.close()
        try loop.close()

        // A socket file nobody listens on: bind without listen, then close the descriptor.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)
        #expect(try SocketInspection.probe(path: path) == .stale)
        unlink(path)

        let file = open(path, O_CREAT | O_WRONLY, 0o600)
        close(file)
        #expect(try SocketInspection.probe(path: path) == .notASocket)
        unlink(path)
    }
}

@Suite struct ConnectionAbortTests {
    @Test func abortSendsTheFinalBytesWhenNothingIsQueuedAndCloses() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/abort.sock"
        let loop = try EventLoop()
        let listener = try UnixListener(loop: loop, path: path, mode: 0o600, group: nil)
        var closed = false
        listener.onConnection = { _ in
            guard let connection = try? listener.accept() else { return }
            connection.onClose = {
                closed = true
                listener.close()
            }
            connection.write([1, 2, 3])  // gathered, never flushed: dropped by abort
            connection.abort(sendingIfPossible: [9, 9])
        }
        try listener.listen()
        let client = connectClient(path)
        defer { close(client) }
        let expired = try run(loop)
        #expect(!expired)
        #expect(closed)
        #expect(readExactly(client, 16) == [9, 9])
        try loop.close()
    }
}
