import TaskShedProtocol

/// Human and JSON renderings of the daemon's statistics (`taskshedctl stats`) and of a ping.
public enum StatsFormatting {
    /// The summary block followed by the per-callback table and, for a shared datastore, the daemons' table.
    /// - Parameters:
    ///   - stats: The statistics.
    ///   - daemons: The daemons sharing the datastore (`nil`: not asked, or the daemon cannot tell).
    ///   - socketPath: The socket the CLI talked to.
    ///   - context: The zone and "now" (uptime and the next wake-up are shown relative to the server's clock).
    /// - Returns: The text.
    public static func text(_ stats: Stats, daemons: [DaemonInfo]? = nil, socketPath: String, context: TimeContext)
        -> String
    {
        var serverNow = context
        serverNow.nowMicros = stats.serverTime
        let uptime = max(0, stats.serverTime - stats.startedAt)
        let lag = stats.lag
        let lagText = lag.count == 0
            ? "no runs yet"
            : "p50 \(TimeFormatting.measurement(micros: lag.p50)), p90 \(TimeFormatting.measurement(micros: lag.p90)), "
                + "p99 \(TimeFormatting.measurement(micros: lag.p99)), max \(TimeFormatting.measurement(micros: lag.max)) "
                + "(\(lag.count) recent \(lag.count == 1 ? "run" : "runs"))"
        let rows: [(String, String)] = [
            ("daemon", "taskshedd \(stats.serverVersion) at \(socketPath)"),
            ("uptime", "\(TimeFormatting.coarse(seconds: UInt64(uptime / 1_000_000))) (since \(TimeFormatting.local(micros: stats.startedAt, context: context)))"),
            ("tasks", "\(stats.pending) pending, \(stats.due) due, \(stats.paused) paused, \(stats.leased) leased, \(stats.dead) dead"),
            ("waiting", "\(stats.waitingForWorker) due \(stats.waitingForWorker == 1 ? "task has" : "tasks have") no connected worker for the callback"),
            ("next wake-up", stats.nextWakeup.map { TimeFormatting.localWithHint(micros: $0, context: serverNow) } ?? "none"),
            ("connections", String(stats.connections)),
            ("store", stats.storeMapBytes == 0
                ? "shared database, tasks table \(bytes(stats.storeFileBytes)) (counts are all daemons'; workers, waiting and lag this one's)"
                : "\(bytes(stats.storeUsedBytes)) used of a \(bytes(stats.storeMapBytes)) map, file \(bytes(stats.storeFileBytes))"),
            ("lag", lagText),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        var output = rows.map { label, value in
            label + ":" + String(repeating: " ", count: width - label.count + 2) + value
        }.joined(separator: "\n") + "\n"
        if !stats.callbacks.isEmpty {
            var table = TextTable(columns: [
                .init("CALLBACK"), .init("SCHEDULED", alignment: .right), .init("DUE", alignment: .right),
                .init("LEASED", alignment: .right), .init("DEAD", alignment: .right), .init("WORKERS", alignment: .right),
            ])
            for entry in stats.callbacks {
                table.append([
                    entry.callback, String(entry.scheduled), String(entry.due), String(entry.leased), String(entry.dead),
                    String(entry.workers),
                ])
            }
            output += "\n" + table.render()
        }
        if let daemons {
            output += "\n" + daemonTable(daemons, context: serverNow)
        }
        return output
    }

    /// The daemons' table (`taskshedctl daemons`, and `stats` with a shared datastore): the answering daemon
    /// marked with `*`; uptime relative to `context.nowMicros`.
    public static func daemonTable(_ daemons: [DaemonInfo], context: TimeContext) -> String {
        var table = TextTable(columns: [
            .init("DAEMON"), .init("HOST"), .init("PID", alignment: .right), .init("UP", alignment: .right),
            .init("HEARTBEAT", alignment: .right), .init("LEASED", alignment: .right),
        ])
        for daemon in daemons {
            let uptime = UInt64(max(0, context.nowMicros - daemon.startedAt) / 1_000_000)
            table.append([
                (daemon.isThisDaemon ? "* " : "  ") + daemon.name, daemon.host, String(daemon.pid),
                TimeFormatting.coarse(seconds: uptime),
                daemon.heartbeatAgeMicros == 0 && daemon.isThisDaemon ? "now" : TimeFormatting.measurement(micros: daemon.heartbeatAgeMicros) + " ago", String(daemon.leased),
            ])
        }
        return table.render()
    }

    /// The documented JSON object of one daemon (README-cli.md, "JSON output").
    public static func json(_ daemon: DaemonInfo) -> JSONOutput {
        .object([("name", .string(daemon.name)), ("host", .string(daemon.host)), ("pid", .uint(UInt64(daemon.pid)))]
            + TaskFormatting.timeMembers("started_at", daemon.startedAt)
            + [("heartbeat_age_us", .int(daemon.heartbeatAgeMicros)), ("leased", .uint(daemon.leased)),
               ("this_daemon", .bool(daemon.isThisDaemon))])
    }

    /// The documented JSON object of the statistics (README-cli.md, "JSON output"); `daemons`, when known, as
    /// a `daemons` array.
    public static func json(_ stats: Stats, daemons: [DaemonInfo]? = nil, socketPath: String) -> JSONOutput {
        var members: [(String, JSONOutput)] = [
            ("server_version", .string(stats.serverVersion)),
            ("socket", .string(socketPath)),
        ]
        members += TaskFormatting.timeMembers("server_time", stats.serverTime)
        members += TaskFormatting.timeMembers("started_at", stats.startedAt)
        members += [
            ("uptime_us", .int(max(0, stats.serverTime - stats.startedAt))),
            ("tasks", .object([
                ("pending", .uint(stats.pending)), ("due", .uint(stats.due)), ("paused", .uint(stats.paused)),
                ("leased", .uint(stats.leased)), ("dead", .uint(stats.dead)),
            ])),
            ("waiting_for_worker", .uint(stats.waitingForWorker)),
        ]
        members += TaskFormatting.timeMembers("next_wakeup", stats.nextWakeup)
        members += [
            ("connections", .uint(UInt64(stats.connections))),
            ("callbacks", .array(stats.callbacks.map { entry in
                .object([
                    ("callback", .string(entry.callback)), ("scheduled", .uint(entry.scheduled)), ("due", .uint(entry.due)),
                    ("leased", .uint(entry.leased)), ("dead", .uint(entry.dead)), ("workers", .uint(UInt64(entry.workers))),
                ])
            })),
            ("store", .object([
                ("file_bytes", .uint(stats.storeFileBytes)), ("map_bytes", .uint(stats.storeMapBytes)),
                ("used_bytes", .uint(stats.storeUsedBytes)),
            ])),
            ("lag", .object([
                ("count", .uint(stats.lag.count)), ("p50_us", .int(stats.lag.p50)), ("p90_us", .int(stats.lag.p90)),
                ("p99_us", .int(stats.lag.p99)), ("max_us", .int(stats.lag.max)),
            ])),
        ]
        if let daemons {
            members.append(("daemons", .array(daemons.map(json))))
        }
        return .object(members)
    }

    /// A byte count in binary units: `512 B`, `1.50 KiB`, `8.00 MiB`.
    public static func bytes(_ count: UInt64) -> String {
        if count < 1024 { return "\(count) B" }
        var value = Double(count)
        for unit in ["KiB", "MiB", "GiB", "TiB"] {
            value /= 1024
            if value < 1024 || unit == "TiB" {
                let hundredths = Int64((value * 100).rounded())
                return "\(hundredths / 100).\(pad(Int(hundredths % 100), 2)) \(unit)"
            }
        }
        return "\(count) B"
    }
}
