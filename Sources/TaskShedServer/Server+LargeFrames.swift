import Logging
import TaskShedEventLoop
import TaskShedProtocol

/// The outcome of decoding and checking a large frame on the thread pool, written there before libuv runs the
/// completion on the loop (which orders the two, hence the unchecked conformance).
final class LargeFrameOutcome: @unchecked Sendable {
    var frame: Result<Frame, ProtocolError>?
    /// The field checks' outcome: `.some(nil)` when they passed.
    var checked: RequestError??
}

/// A large frame waiting for its turn on the thread pool.
struct LargeFrameDecode {
    let session: ClientSession
    let raw: FrameDecoder.RawFrame
}

/// Large frames are decoded and checked on libuv's thread pool, not on the loop: decoding an `ADD_TASKS` of
/// 100,000 tasks and checking their kwargs takes tens of milliseconds, which every other client's pushes and
/// replies would wait for. The connection decodes nothing more until its large frame is handled (its requests
/// keep their order); other connections are served meanwhile. One large frame is decoded at a time, so that a
/// flood of them cannot take the pool threads that store jobs and flushes need.
extension Server {
    /// Frames of at least this many bytes are decoded off the loop.
    static let offLoopFrameBytes = 256 << 10

    /// Takes the session's next frame for the thread pool if it is large and complete.
    /// - Returns: Whether it did (the session's decoding waits for it).
    func decodeLargeFrameOffLoop(of session: ClientSession) -> Bool {
        guard session.isReady, let raw = session.decoder.takeFrame(ifAtLeast: Self.offLoopFrameBytes) else {
            return false
        }
        session.decodeInFlight = true
        waitingDecodes.append(LargeFrameDecode(session: session, raw: raw))
        startWaitingDecodes()
        return true
    }

    /// Starts the oldest waiting decode unless one runs.
    func startWaitingDecodes() {
        guard decodesInFlight == 0, !waitingDecodes.isEmpty, let loop else { return }
        let decode = waitingDecodes.removeFirst()
        decodesInFlight += 1
        let outcome = LargeFrameOutcome()
        let raw = decode.raw
        let validation = validation
        let work: @Sendable () -> Void = {
            let frame = Result { () throws(ProtocolError) -> Frame in try raw.decode() }
            outcome.frame = frame
            if case .success(let decoded) = frame, decoded.message.type.isRequest {
                do throws(RequestError) {
                    try validation.request(decoded.message)
                    outcome.checked = .some(nil)
                } catch {
                    outcome.checked = .some(error)
                }
            }
        }
        do {
            try BackgroundWork.run(on: loop, work, completion: { [unowned self] in
                self.largeFrameDecoded(decode.session, outcome)
            })
        } catch {
            logger.warning("no thread-pool thread to decode a large frame; decoding it on the loop thread: \(error)")
            work()
            largeFrameDecoded(decode.session, outcome)
        }
    }

    /// A large frame was decoded (loop thread): handles it as if decoded here, then the connection's later
    /// frames, then the next waiting decode.
    func largeFrameDecoded(_ session: ClientSession, _ outcome: LargeFrameOutcome) {
        decodesInFlight -= 1
        session.decodeInFlight = false
        if !session.isClosing, let frame = outcome.frame {
            switch frame {
            case .success(let frame):
                handle(frame, on: session, checked: outcome.checked)
            case .failure(let error):
                logger.info("bad frame", metadata: ["taskshed.conn": "\(session.id)", "error": "\(error)"])
                send(Frame(requestID: error.requestID ?? 0, message: .error(error.errorReply)), to: session)
            }
            handleBufferedFrames(of: session)
        }
        if session.peerEnded && !session.decodeInFlight { session.connection.close() }
        startWaitingDecodes()
        if isShuttingDown { finishShutdown() }
        // The handled request wants a store job or a reply flushed: the iteration that ran this completion
        // ends with both.
    }
}
