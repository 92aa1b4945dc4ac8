import Logging
import Synchronization
import TaskShedProtocol

/// The scheduler's one connection: opened on first use, opened again on the next call after the daemon closed
/// it, never more than one at a time (concurrent first calls share one connect).
final class LazyConnection: Sendable {
    private enum Slot {
        case idle
        case connecting(Task<Connection, any Error>)
        case connected(Connection)
        case shutDown
    }

    let socketPath: String
    private let clientName: String
    private let logger: Logger
    private let slot = Mutex(Slot.idle)

    init(socketPath: String, clientName: String, logger: Logger) {
        self.socketPath = socketPath
        self.clientName = clientName
        self.logger = logger
    }

    /// The open connection, connecting first when there is none.
    /// - Throws: `TaskShedError` `.connectionFailed` or a handshake error; `.shutDown` after `shutdown()`.
    func get() async throws -> Connection {
        enum Next {
            case ready(Connection)
            case wait(Task<Connection, any Error>)
            case fail(TaskShedError)
        }
        let next = slot.withLock { slot -> Next in
            switch slot {
            case .connected(let connection) where !connection.isClosed:
                return .ready(connection)
            case .connecting(let task):
                return .wait(task)
            case .shutDown:
                return .fail(TaskShedError(.shutDown, message: "the scheduler was shut down"))
            case .idle, .connected:
                let (path, name, logger) = (socketPath, clientName, logger)
                let task = Task { try await Connection.open(path: path, clientName: name, logger: logger) }
                slot = .connecting(task)
                return .wait(task)
            }
        }
        switch next {
        case .ready(let connection):
            return connection
        case .fail(let error):
            throw error
        case .wait(let task):
            do {
                let connection = try await task.value
                // Every caller that shared this connect gets here; the first one stores the connection.
                let keep = slot.withLock { slot -> Bool in
                    switch slot {
                    case .connecting:
                        slot = .connected(connection)
                        return true
                    case .shutDown:
                        return false
                    case .connected, .idle:
                        return true
                    }
                }
                if !keep {
                    connection.close()
                    throw TaskShedError(.shutDown, message: "the scheduler was shut down")
                }
                return connection
            } catch {
                slot.withLock { slot in
                    if case .connecting = slot { slot = .idle }
                }
                throw error
            }
        }
    }

    /// Sends one request on the connection (connecting first if needed).
    func request(_ message: Message) async throws -> Message {
        try await get().request(message)
    }

    /// Closes the connection; later calls fail with `.shutDown`.
    func shutdown() {
        let previous = slot.withLock { slot -> Slot in
            let previous = slot
            slot = .shutDown
            return previous
        }
        switch previous {
        case .connected(let connection): connection.close()
        case .connecting(let task):
            Task { try? await task.value.close() }
        case .idle, .shutDown: break
        }
    }
}
