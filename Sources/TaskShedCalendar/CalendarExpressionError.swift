/// Why a calendar expression (cron or systemd syntax) or its time zone was refused.
///
/// Every refusal happens at parse time, so a rule that parsed can always be evaluated. The error names the
/// field and the token it could not accept and says what is allowed, for example
/// `day-of-month: "32" is out of range 1…31`. As elsewhere in TaskShed the error is a struct wrapping a code,
/// so new codes do not break callers that switch on the existing ones.
public struct CalendarExpressionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of refusal, as a struct wrapping a string so that new kinds can be added.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// A stable, machine-readable name of the code.
        public var rawValue: String
        /// Wraps a raw code name.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The raw name.
        public var description: String { rawValue }

        /// The expression is empty or only white space.
        public static let empty = Code(rawValue: "empty")
        /// A cron expression has a number of fields other than 5, 6 or 7.
        public static let wrongFieldCount = Code(rawValue: "wrong-field-count")
        /// A cron expression has 6 or 7 fields, which other dialects read in incompatible ways.
        public static let ambiguousFieldCount = Code(rawValue: "ambiguous-field-count")
        /// An `@name` (cron) or shorthand (systemd) that does not exist.
        public static let unknownShorthand = Code(rawValue: "unknown-shorthand")
        /// A shorthand that exists elsewhere but is not a calendar schedule (`@reboot`).
        public static let unsupportedShorthand = Code(rawValue: "unsupported-shorthand")
        /// A token that is not a number, name, `*`, range or step where one was expected.
        public static let invalidToken = Code(rawValue: "invalid-token")
        /// A value outside its field's range.
        public static let outOfRange = Code(rawValue: "out-of-range")
        /// A range whose start is after its end.
        public static let reversedRange = Code(rawValue: "reversed-range")
        /// A step of 0, or larger than the field's span.
        public static let invalidStep = Code(rawValue: "invalid-step")
        /// A fractional second (systemd allows them; TaskShed schedules whole seconds).
        public static let fractionalSeconds = Code(rawValue: "fractional-seconds")
        /// A time zone that is not in the system tzdata.
        public static let unknownTimeZone = Code(rawValue: "unknown-time-zone")
        /// A tzdata file exists but is not valid TZif data.
        public static let invalidTimeZoneData = Code(rawValue: "invalid-time-zone-data")
        /// The expression is well formed but no date satisfies all its fields.
        public static let neverMatches = Code(rawValue: "never-matches")
    }

    /// The kind of refusal.
    public var code: Code
    /// The field the refusal is about (`minute`, `day-of-month`, `weekday`, `time zone`, …), if one.
    public var field: String?
    /// The token that was refused, exactly as written, if one.
    public var token: String?
    /// The whole message, for people: field, token, and what is allowed.
    public var message: String

    /// Creates an error; `message` is the complete text shown to people.
    public init(code: Code, field: String? = nil, token: String? = nil, message: String) {
        self.code = code
        self.field = field
        self.token = token
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// `field: "token" <problem>`: the shape of every per-token message.
    static func token(_ code: Code, field: String, token: String, _ problem: String) -> CalendarExpressionError {
        CalendarExpressionError(code: code, field: field, token: token, message: "\(field): \"\(token)\" \(problem)")
    }
}
