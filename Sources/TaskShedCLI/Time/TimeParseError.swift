/// A time or duration argument that could not be understood; its description is one line that says what is
/// wrong and lists the accepted formats.
public struct TimeParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of value was expected.
    public enum Kind: Sendable, Hashable {
        /// A point in time (`--at`, `reschedule`, `--due-before`).
        case time
        /// A duration (`--in`, `--every`, `--timeout`, `--poll`).
        case duration
    }

    /// Whether a time or a duration was expected.
    public var kind: Kind
    /// The text as given.
    public var input: String
    /// What is wrong with it.
    public var problem: String

    /// Creates an error.
    public init(kind: Kind, input: String, problem: String) {
        self.kind = kind
        self.input = input
        self.problem = problem
    }

    /// The accepted time formats, as listed in error messages and help texts.
    public static let acceptedTimeFormats =
        "RFC 3339 with an offset (2026-03-08T14:30:00Z, 2026-03-08T14:30:00.5+01:00), "
        + "local 'YYYY-MM-DD HH:MM[:SS]', local 'HH:MM[:SS]' (the next such time), 'now', "
        + "or '+DURATION' from now (+90s, +2h30m)"

    /// The accepted duration format, as listed in error messages and help texts.
    public static let acceptedDurationFormats =
        "numbers with units d, h, m, s, ms, us, largest first, decimals down to 1us (500ms, 0.2s, 90s, 1.5m, 2h30m, 1d)"

    /// One line: the input, the problem and the accepted formats.
    public var description: String {
        switch kind {
        case .time:
            return "invalid time '\(input)': \(problem); accepted: \(TimeParseError.acceptedTimeFormats)"
        case .duration:
            return "invalid duration '\(input)': \(problem); accepted: \(TimeParseError.acceptedDurationFormats)"
        }
    }
}
