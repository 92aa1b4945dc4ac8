/// Which language an expression is written in.
public enum CalendarSyntax: String, Sendable, Hashable, CaseIterable {
    /// Vixie cron: 5 fields, `@daily`-style names, optional `CRON_TZ=Zone` prefix.
    case cron
    /// systemd's calendar events (`man systemd.time`): `Mon..Fri *-*-* 09:00:00 Europe/Berlin`.
    case systemd
}
