/// How the CLI shows instants and durations: RFC 3339 UTC for scripts, local wall-clock times with a relative
/// hint for people.
public enum TimeFormatting {
    /// RFC 3339 in UTC with exactly six fractional digits: `2026-11-29T10:15:04.250000Z`. The fixed width keeps
    /// the text sortable and the field stable for scripts.
    /// - Parameter micros: Microseconds since the epoch.
    /// - Returns: The timestamp.
    public static func rfc3339UTC(micros: Int64) -> String {
        let civil = CivilDateTime.fromNaiveMicros(micros)
        return "\(pad(civil.year, 4))-\(pad(civil.month, 2))-\(pad(civil.day, 2))T"
            + "\(pad(civil.hour, 2)):\(pad(civil.minute, 2)):\(pad(civil.second, 2)).\(pad(civil.microsecond, 6))Z"
    }

    /// A local wall-clock time, `YYYY-MM-DD HH:MM:SS`, in the context's zone.
    /// - Parameters:
    ///   - micros: Microseconds since the epoch.
    ///   - context: The zone to show the time in.
    /// - Returns: The local time.
    public static func local(micros: Int64, context: TimeContext) -> String {
        context.resolver.localTime(ofMicros: micros).description
    }

    /// A local time followed by its relative hint: `2026-11-29 10:15:04 (in 4m 10s)`.
    /// - Parameters:
    ///   - micros: Microseconds since the epoch.
    ///   - context: The zone and the "now" the hint is relative to.
    /// - Returns: The text.
    public static func localWithHint(micros: Int64, context: TimeContext) -> String {
        "\(local(micros: micros, context: context)) (\(relative(micros: micros, context: context)))"
    }

    /// A relative hint: `in 4m 10s`, `3s ago`, `now` (within a second), with the two largest nonzero units
    /// (d, h, m, s), truncated toward zero.
    /// - Parameters:
    ///   - micros: Microseconds since the epoch.
    ///   - context: The "now" to compare with.
    /// - Returns: The hint.
    public static func relative(micros: Int64, context: TimeContext) -> String {
        let delta = micros.subtractingReportingOverflow(context.nowMicros)
        guard !delta.overflow else { return micros > context.nowMicros ? "in a very long time" : "long ago" }
        let magnitude = delta.partialValue.magnitude
        if magnitude < 1_000_000 { return "now" }
        let text = coarse(seconds: magnitude / 1_000_000)
        return delta.partialValue > 0 ? "in \(text)" : "\(text) ago"
    }

    /// The two largest nonzero units of a number of seconds: `4m 10s`, `2d 3h`, `1h`.
    static func coarse(seconds: UInt64) -> String {
        let parts: [(UInt64, String)] = [
            (seconds / 86_400, "d"), (seconds % 86_400 / 3600, "h"), (seconds % 3600 / 60, "m"), (seconds % 60, "s"),
        ]
        guard let first = parts.firstIndex(where: { $0.0 > 0 }) else { return "0s" }
        var text = "\(parts[first].0)\(parts[first].1)"
        if first + 1 < parts.count, parts[first + 1].0 > 0 {
            text += " \(parts[first + 1].0)\(parts[first + 1].1)"
        }
        return text
    }

    /// A duration in the syntax `DurationParser` reads back, every nonzero unit from largest to smallest:
    /// `2h30m`, `500ms`, `1d1s`; `0s` for zero.
    /// - Parameter micros: A non-negative duration.
    /// - Returns: The text.
    public static func duration(micros: Int64) -> String {
        guard micros > 0 else { return "0s" }
        var rest = micros
        var text = ""
        for (size, unit) in [
            (Int64(86_400_000_000), "d"), (3_600_000_000, "h"), (60_000_000, "m"), (1_000_000, "s"), (1000, "ms"),
            (1, "us"),
        ] where rest >= size {
            text += "\(rest / size)\(unit)"
            rest %= size
        }
        return text
    }

    /// A short measurement such as a lag: `85us`, `1.25ms`, `2.50s`, with three significant figures at most.
    /// - Parameter micros: The duration (negative values keep their sign).
    /// - Returns: The text.
    public static func measurement(micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let value = Double(micros.magnitude)
        if value < 1000 { return "\(sign)\(micros.magnitude)us" }
        if value < 1_000_000 { return sign + fixed(value / 1000) + "ms" }
        return sign + fixed(value / 1_000_000) + "s"
    }

    /// Two decimals below 10, one below 100, none above: a steady three significant figures.
    private static func fixed(_ value: Double) -> String {
        let decimals = value < 10 ? 2 : (value < 100 ? 1 : 0)
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = Int64((value * scale).rounded())
        let whole = rounded / Int64(scale)
        guard decimals > 0 else { return String(whole) }
        return "\(whole).\(pad(Int(rounded % Int64(scale)), decimals))"
    }
}
