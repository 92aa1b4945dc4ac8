#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on `<directory>/taskshed.lock`, holding the owner's pid, so that only one process
/// (and one store object) opens a store directory at a time.
///
/// - Important: The lock is released when `close()` runs or the object is freed (closing the descriptor
///   releases the `flock`).
final class DirectoryLock {
    static let fileName = "taskshed.lock"

    private var fd: Int32

    /// How long a held lock is waited for before opening fails (1 s, in 10 ms steps).
    ///
    /// A lock can be held for a moment by a process that has just released it: a child spawned by another
    /// thread of the holder's process keeps a copy of the lock's descriptor from its fork until its `exec` closes
    /// it (`O_CLOEXEC`), so a close and a reopen in one process can meet it; and a daemon restarted by its
    /// supervisor can meet its predecessor still exiting. A second opener that really runs waits this long and
    /// then fails.
    static let contentionWaitSteps = 100

    /// Takes the lock, waiting up to `contentionWaitSteps` × 10 ms for a holder to let go, or fails naming
    /// the process that holds it.
    /// - Throws: `StoreError` `internalError` with field `directory`.
    init(directory: String) throws(StoreError) {
        let path = directory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(
                code: .internalError, field: "directory",
                message: "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        var rc: Int32
        var waited = 0
        while true {
            repeat { rc = flock(fd, LOCK_EX | LOCK_NB) } while rc != 0 && errno == EINTR
            guard rc != 0 && errno == EWOULDBLOCK && waited < Self.contentionWaitSteps else { break }
            usleep(10_000)
            waited += 1
        }
        if rc != 0 {
            let err = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            Glibc.close(fd)
            if err == EWOULDBLOCK {
                let holder = n > 0
                    ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace() : "unknown"
                throw StoreError(
                    code: .internalError, field: "directory",
                    message: "store directory \(directory) is in use by process \(holder) (lock file \(path))")
            }
            throw StoreError(
                code: .internalError, field: "directory",
                message: "cannot lock \(path): \(String(cString: strerror(err)))")
        }
        let pid = Array("\(getpid())\n".utf8)
        // The pid is informational (for the error above); failing to write it does not make the lock invalid.
        if ftruncate(fd, 0) == 0 {
            _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        self.fd = fd
    }

    /// Releases the lock.
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace || c == "\0" { s.removeFirst() }
        while let c = s.last, c.isWhitespace || c == "\0" { s.removeLast() }
        return s.isEmpty ? "unknown" : String(s)
    }
}

/// A `pthread_mutex_t` on the heap (a Swift-stored one could move).
package final class PthreadMutex {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }
}

/// A `pthread_rwlock_t` on the heap: many readers or one exclusive holder, and a waiting exclusive holder
/// goes before readers that come after it.
///
/// Why writer-preferring: glibc's default lock lets a new reader in whenever another reader holds the lock,
/// so readers that overlap without pause (threads calling `stats` in a loop) kept a map resize, which takes
/// the store's lock exclusively, waiting for as long as they ran (117 s in a review's stress test;
/// `ConcurrencyTests`). The price of glibc's writer-preferring kind: a thread that takes the lock shared while
/// it already holds it waits for itself if an exclusive holder began waiting in between (see the store's
/// `access` and `LeaseTable`, whose readers and writer each take it once per call).
final class PthreadRWLock {
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        rwlock = .allocate(capacity: 1)
        rwlock.initialize(to: pthread_rwlock_t())
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(rwlock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(rwlock) }
    func lockExclusive() { pthread_rwlock_wrlock(rwlock) }
    func unlock() { pthread_rwlock_unlock(rwlock) }
}
