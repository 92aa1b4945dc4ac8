import TaskShedProtocol

/// Parses durations such as `90s`, `5m`, `2h30m`, `1d`, `500ms`, `0.2s`, `1.5m` into microseconds.
///
/// The syntax is `DurationSyntax`, the daemon's too: one or more `<digits>[.<digits>]<unit>` parts with units
/// `d`, `h`, `m`, `s`, `ms`, `us` (also `µs`), each unit at most once and from the largest to the smallest
/// (`1h30m`, not `30m1h`). A part finer than a microsecond (`1.5us`) is refused, not rounded. A bare number is
/// rejected because its unit would be a guess.
public enum DurationParser {
    /// Parses a duration.
    /// - Parameter text: The argument, such as `2h30m`.
    /// - Returns: The duration in microseconds (>= 0).
    /// - Throws: `TimeParseError` (kind `.duration`) naming the problem.
    public static func parseMicros(_ text: String) throws(TimeParseError) -> Int64 {
        do {
            return try DurationSyntax.parseMicros(text)
        } catch {
            throw TimeParseError(kind: .duration, input: text, problem: error.problem)
        }
    }

    /// Parses a duration that must be longer than zero (an interval, a timeout).
    /// - Parameter text: The argument.
    /// - Returns: The duration in microseconds (> 0).
    /// - Throws: `TimeParseError` (kind `.duration`).
    public static func parsePositiveMicros(_ text: String) throws(TimeParseError) -> Int64 {
        let micros = try parseMicros(text)
        guard micros > 0 else {
            throw TimeParseError(kind: .duration, input: text, problem: "it must be longer than zero")
        }
        return micros
    }
}
