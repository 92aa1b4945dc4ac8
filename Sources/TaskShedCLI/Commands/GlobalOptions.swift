import ArgumentParser
import Foundation
import Glibc
import TaskShedProtocol

/// Options every subcommand takes: where the daemon is, and whether to print JSON.
public struct GlobalOptions: ParsableArguments {
    /// The daemon's socket, or `nil` for the default.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's Unix socket.",
            discussion: "Default: $TASKSHED_SOCKET, else $XDG_RUNTIME_DIR/taskshed/taskshedd.sock, else "
                + "/tmp/taskshed-<uid>/taskshedd.sock. The system service listens on /run/taskshed/taskshedd.sock.",
            valueName: "path"))
    public var socket: String?

    /// Print JSON instead of text.
    @Flag(name: .long, help: "Print JSON with stable, documented fields (see README-cli.md) instead of text.")
    public var json = false

    /// Creates the options with their defaults.
    public init() {}

    /// The socket path to use: `--socket`, else the shared default rule.
    public var socketPath: String {
        if let socket, !socket.isEmpty { return socket }
        return DefaultSocketPath.resolve(environment: ProcessInfo.processInfo.environment, uid: getuid())
    }
}

/// `--state` values of `list`.
public enum StateOption: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Scheduled, not paused, not yet due.
    case pending
    /// Due and waiting for a worker.
    case due
    /// Paused.
    case paused
    /// Running on a worker (leased).
    case leased
    /// Dead-lettered.
    case dead

    /// The protocol's filter value.
    public var filter: StateFilter {
        switch self {
        case .pending: return .pending
        case .due: return .due
        case .paused: return .paused
        case .leased: return .leased
        case .dead: return .dead
        }
    }
}

/// Paging options shared by `list` and `failed`.
public struct PagingOptions: ParsableArguments {
    /// Tasks per page.
    @Option(name: .long, help: ArgumentHelp("Most tasks to show (per page with --all).", valueName: "n"))
    public var limit: Int = 100

    /// Where to continue.
    @Option(
        name: .long,
        help: ArgumentHelp("Continue after a previous page: the cursor it printed.", valueName: "cursor"))
    public var cursor: String?

    /// Every page.
    @Flag(name: .long, help: "Show every matching task, fetching page after page.")
    public var all = false

    /// Creates the options with their defaults.
    public init() {}

    /// Checks the limit and the cursor's form.
    public func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        if let cursor, CursorText.decode(cursor) == nil {
            throw ValidationError("--cursor: '\(cursor)' is not a cursor printed by a previous page")
        }
        if all && cursor != nil { throw ValidationError("--all starts at the first page; leave out --cursor") }
    }
}

/// Page cursors as the CLI prints them: lowercase hex of the daemon's opaque bytes.
public enum CursorText {
    /// Hex text of cursor bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// The bytes of hex text, or `nil` if it is not even-length hex.
    public static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
