import TaskShedEventLoop
import TaskShedProtocol

/// An event-driven worker's subscription on one connection.
struct Subscription {
    /// The SUBSCRIBE frame's request id: every DELIVERY carries it.
    var requestID: UInt32
    /// Callback names served.
    var callbacks: [String]
    /// Most tasks leased through this subscription at once.
    var concurrency: Int
    /// Lease length of pushed tasks (µs).
    var leaseMicros: Int64
    /// How long before its due time a task may be written to the worker (SUBSCRIBE_AHEAD; 0 for SUBSCRIBE).
    var aheadMicros: Int64
}

/// A task written to its worker before its due time (SUBSCRIBE_AHEAD): a change to it before then is revoked.
struct AheadPush {
    /// The record as written.
    let task: TaskRecord
    /// The SUBSCRIBE_AHEAD's request id, which the REVOKE carries (also after an UNSUBSCRIBE).
    let requestID: UInt32
}

/// The server's state for one client connection.
///
/// - Important: Loop-thread only, like everything in the server.
final class ClientSession {
    /// Connection id: the lease holder of everything this connection claims, and the id in logs and HELLO_OK.
    let id: UInt64
    /// The socket.
    let connection: Connection
    /// The peer's credentials at connect time.
    let peer: PeerCredentials
    /// Incremental decoder of this connection's input.
    var decoder: FrameDecoder
    /// Whether HELLO succeeded.
    var isReady = false
    /// Whether the session counts against `Configuration.maxConnections` (ready and not closing).
    var countsAsConnection = false
    /// The client's name from HELLO, for logs.
    var clientName = ""
    /// The connection's deadline: HELLO must arrive before it fires; later, once the connection is closing
    /// after an error, it bounds how long the peer has to read the error before the socket is closed anyway.
    var deadlineTimer: CoarseTimer?
    /// Set while the connection is closing: requests are no longer read and pushes stop.
    var isClosing = false
    /// The event-driven subscription, if any.
    var subscription: Subscription?
    /// Tasks pushed to this connection and not yet settled by ack, fail, release or lease expiry (id → attempt).
    var pushed: [String: UInt32] = [:]
    /// The pushed tasks that were written ahead and whose due time had not passed at the last look (by id).
    var pushedAhead: [String: AheadPush] = [:]
    /// Requests of this connection waiting for the iteration's commit: while non-zero, this connection's reads
    /// wait too, so that a reply never describes a state older than a change the same client made before it.
    var queuedRequests = 0
    /// Set while a read of this connection runs on (or waits for) the thread pool (`Server.startBackgroundRead`):
    /// its later requests stay queued until it is answered.
    var readInFlight = false
    /// Whether this connection's later requests (and the staged tasks its UNSUBSCRIBE gave back) wait for the
    /// reply to a read on the thread pool. Not while closing: that read goes unanswered, and the connection's
    /// writes (acks above all) must not wait for it.
    var awaitsReadReply: Bool { readInFlight && !isClosing }
    /// Set once the session was disconnected for not reading its output; nothing more is sent to it.
    var isSlowConsumer = false
    /// Leased, due deliveries not yet written because the connection's output was past the push window
    /// (`Server.pushWindowBytes`), oldest first from `heldHead`: written as the peer reads, given back
    /// uncounted if the connection goes away first.
    var heldDeliveries: [TaskRecord] = []
    /// The first delivery of `heldDeliveries` still held (those before it were written or given back).
    var heldHead = 0
    /// Whether deliveries are held.
    var holdsDeliveries: Bool { heldHead < heldDeliveries.count }
    /// Average encoded size of this connection's deliveries (bytes): how many tasks one claim may take for it
    /// without overfilling its push window.
    var deliveryBytesEstimate = 1024
    /// Set while the daemon reads no more requests of this connection because the peer has not read its
    /// replies (`Configuration.maxOutputBytes`); decoded frames wait in the decoder.
    var inputPaused = false
    /// Set while reading is stopped until the end of the loop iteration (the connection filled a read buffer).
    var readThrottled = false
    /// Set when the peer closed its end: the frames left in the decoder are handled, whatever the output.
    var peerEnded = false
    /// Set while a large frame of this connection is decoded off the loop (`Server+LargeFrames`): its later
    /// frames wait in the decoder, and its close waits for the frame to be handled.
    var decodeInFlight = false
    /// When (monotonic ns) bytes last arrived: bounds how long a partial frame may stall.
    var lastInputNanos: UInt64 = 0
    /// Bytes of this connection's decoder buffer counted in the daemon-wide input budget.
    var bufferedInputBytes = 0
    /// Whether the connection has output waiting for the end-of-iteration flush.
    var needsFlush = false

    /// Creates the state of a connection that has not sent `HELLO` yet: its frames are limited to
    /// `ProtocolLimits.maxHandshakeFrameBytes` until the handshake raises the limit.
    init(id: UInt64, connection: Connection, peer: PeerCredentials) {
        self.id = id
        self.connection = connection
        self.peer = peer
        decoder = FrameDecoder(maxFrameBytes: ProtocolLimits.maxHandshakeFrameBytes, accepting: .requests)
    }

    /// Free delivery slots of the subscription (0 without one).
    var freeCapacity: Int {
        guard let subscription, !isClosing else { return 0 }
        return max(0, subscription.concurrency - pushed.count)
    }
}
