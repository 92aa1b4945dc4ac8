import TaskShedProtocol

/// 2026-01-01T00:00:00Z in microseconds: the base instant of every vector.
let t0: Int64 = 1_767_225_600_000_000

let recordReport = TaskRecord(
    id: "report-1", callback: "report", runAt: t0, schedule: .interval(micros: 3_600_000_000),
    kwargs: Array("{}".utf8), group: "reports", paused: true, pausedAt: t0 - 60_000_000, coalesce: false,
    state: .scheduled, attempt: 0, maxAttempts: 5, leaseDeadline: nil, lastError: "ValueError: bad input",
    createdAt: t0 - 86_400_000_000, lastRunAt: t0 - 3_600_000_000, lastFailureAt: t0 - 3_599_000_000)

let recordT2 = TaskRecord(
    id: "t2", callback: "cleanup", runAt: t0 + 1_000_000, schedule: .once, kwargs: [], group: nil, paused: false,
    pausedAt: nil, coalesce: true, state: .scheduled, attempt: 0, maxAttempts: 3, leaseDeadline: nil,
    lastError: nil, createdAt: t0, lastRunAt: nil, lastFailureAt: nil)

let recordLeased = TaskRecord(
    id: "mail-42", callback: "send_email", runAt: t0, schedule: .once, kwargs: Array(#"{"to":"a@b.c"}"#.utf8),
    group: nil, paused: false, pausedAt: nil, coalesce: true, state: .leased, attempt: 1, maxAttempts: 3,
    leaseDeadline: t0 + 60_000_250, lastError: nil, createdAt: t0 - 5_000_000, lastRunAt: t0 + 250,
    lastFailureAt: nil)

let recordDead = TaskRecord(
    id: "mail-7", callback: "send_email", runAt: t0 - 10_000_000, schedule: .once,
    kwargs: Array(#"{"to":"x@y.z"}"#.utf8), group: "mail", paused: false, pausedAt: nil, coalesce: true,
    state: .dead, attempt: 3, maxAttempts: 3, leaseDeadline: nil, lastError: "SMTPError: 550 mailbox unavailable",
    createdAt: t0 - 20_000_000, lastRunAt: t0 - 9_000_000, lastFailureAt: t0 - 8_999_000)

/// What every valid vector in `proto-spec/vectors` must decode to, by vector name. Written from the values in
/// the vectors' descriptions, not from the encoder, so a layout mistake on either side shows up.
let expectedFrames: [String: Frame] = [
    "hello": Frame(requestID: 1, message: .hello(Hello(minVersion: 1, maxVersion: 1, clientName: "taskshedctl 0.1.0"))),
    "hello_ok": Frame(
        requestID: 1,
        message: .helloOK(
            HelloOK(
                version: 1, serverName: "taskshedd", serverVersion: "0.1.0", maxFrameBytes: 67_108_864,
                maxBatch: 100_000, maxKwargsBytes: 65_536, defaultLeaseMicros: 30_000_000, connectionID: 7))),
    "ping": Frame(requestID: 2, message: .ping),
    "pong": Frame(requestID: 2, message: .pong(Pong(serverTime: t0 + 1_500_000, nextWakeup: t0 + 60_000_000))),
    "pong.idle": Frame(requestID: 3, message: .pong(Pong(serverTime: t0, nextWakeup: nil))),
    "add_tasks.once": Frame(
        requestID: 3,
        message: .addTasks(
            AddTasks(
                onConflict: .replace,
                tasks: [TaskSpec(callback: "send_email", kwargs: Array(#"{"to":"a@b.c"}"#.utf8))]))),
    "add_tasks.batch": Frame(
        requestID: 4,
        message: .addTasks(
            AddTasks(
                onConflict: .keep,
                tasks: [
                    TaskSpec(
                        id: "report-1", callback: "report", runAt: t0, schedule: .interval(micros: 3_600_000_000),
                        kwargs: Array("{}".utf8), group: "reports", paused: true, coalesce: false, maxAttempts: 5),
                    TaskSpec(id: "t2", callback: "cleanup", runAt: t0 + 1_000_000),
                ]))),
    "added": Frame(
        requestID: 4,
        message: .added([
            AddResult(id: "report-1", outcome: .inserted), AddResult(id: "t2", outcome: .kept),
            AddResult(id: "a3f1c2d4e5b60718293a4b5c6d7e8f90", outcome: .replaced),
        ])),
    "fetch_tasks.ids": Frame(requestID: 5, message: .fetchTasks(.ids(["report-1", "t2"]))),
    "fetch_tasks.group": Frame(requestID: 6, message: .fetchTasks(.group("reports"))),
    "tasks.records": Frame(requestID: 5, message: .tasks([recordReport, recordT2])),
    "tasks.empty": Frame(requestID: 6, message: .tasks([])),
    "add_tasks.calendar": Frame(
        requestID: 40,
        message: .addTasks(
            AddTasks(
                onConflict: .fail,
                tasks: [TaskSpec(
                    id: "nightly-backup", callback: "backup",
                    schedule: .calendar(CalendarSchedule(
                        syntax: .cron, expression: "30 2 * * *", timeZone: "Europe/Berlin", catchUp: .all,
                        catchUpMaximum: 3, overlap: .queueOne, jitterMicros: 60_000_000, jitterMode: .fixed)))]))),
    "tasks.calendar": Frame(
        requestID: 41,
        message: .tasks([TaskRecord(
            id: "nightly-backup", callback: "backup", runAt: t0 + 5_417_000_000,
            schedule: .calendar(CalendarSchedule(
                syntax: .systemd, expression: "*-*-* 02:30:00", timeZone: "Europe/Berlin", jitterMicros: 60_000_000,
                jitterMode: .fixed)),
            kwargs: Array("{}".utf8), group: nil, paused: false, pausedAt: nil, coalesce: true, state: .scheduled,
            attempt: 0, maxAttempts: 3, leaseDeadline: nil, lastError: nil, createdAt: t0 - 86_400_000_000,
            lastRunAt: nil, lastFailureAt: nil, skippedRuns: 2, lastSkip: "missed")])),
    "list_tasks.first_page": Frame(requestID: 7, message: .listTasks(ListTasks(limit: 100))),
    "list_tasks.filtered": Frame(
        requestID: 8,
        message: .listTasks(
            ListTasks(
                filter: TaskFilter(
                    group: "reports", state: .due, callback: "report", dueAfter: t0,
                    dueBefore: t0 + 86_400_000_000),
                limit: 50, cursor: [0x00, 0x06, 0x4a, 0x7e, 0x4c, 0x8d, 0x10, 0x00]))),
    "task_page": Frame(
        requestID: 8,
        message: .taskPage(
            TaskPage(tasks: [recordDead], nextCursor: [0x00, 0x06, 0x4a, 0x7e, 0x4c, 0x9b, 0xb7, 0x18]))),
    "task_page.last": Frame(requestID: 7, message: .taskPage(TaskPage(tasks: [], nextCursor: nil))),
    "pause_tasks.ids": Frame(requestID: 9, message: .pauseTasks(.ids(["report-1"]))),
    "resume_tasks.group": Frame(requestID: 10, message: .resumeTasks(.group("reports"))),
    "remove_tasks.all": Frame(requestID: 11, message: .removeTasks(.all)),
    "affected": Frame(requestID: 9, message: .affected(1)),
    "update_run_times": Frame(
        requestID: 14,
        message: .updateRunTimes([
            RunTimeUpdate(id: "report-1", runAt: t0 + 7_200_000_000), RunTimeUpdate(id: "t2", runAt: t0 + 5_000_000),
        ])),
    "retry_dead.ids": Frame(requestID: 12, message: .retryDead(.ids(["mail-7"]))),
    "purge_dead.all": Frame(requestID: 13, message: .purgeDead(.all)),
    "get_stats": Frame(requestID: 15, message: .getStats),
    "get_daemons": Frame(requestID: 16, message: .getDaemons),
    "daemons": Frame(
        requestID: 16,
        message: .daemons([
            DaemonInfo(name: "db-worker-1", host: "worker1.example.com", pid: 4711, startedAt: t0 - 7_200_000_000,
                       heartbeatAgeMicros: 180_000, leased: 3, isThisDaemon: false),
            DaemonInfo(name: "scheduler", host: "sched.example.com", pid: 812, startedAt: t0 - 3_600_000_000,
                       heartbeatAgeMicros: 420_000, leased: 0, isThisDaemon: true),
        ])),
    "get_history": Frame(
        requestID: 50,
        message: .getHistory(
            HistoryQuery(taskID: "report-1", callback: "report", failedOnly: true, since: t0, limit: 20, before: 1043))),
    "get_history.empty": Frame(requestID: 51, message: .getHistory(HistoryQuery(limit: 50))),
    "history": Frame(
        requestID: 50,
        message: .history(
            HistoryPage(
                runs: [
                    RunEntry(
                        seq: 1042, taskID: "mail-42", callback: "send_email", attempt: 2, scheduledAt: t0,
                        deliveredAt: t0 + 250, finishedAt: t0 + 1_500_250, outcome: .succeeded, then: .finished,
                        error: nil, workerName: "mailer 2.0.1", workerPID: 4711, workerUID: 1000, daemon: "scheduler"),
                    RunEntry(
                        seq: 1041, taskID: "nightly-backup", callback: "backup", attempt: 0,
                        scheduledAt: t0 - 86_400_000_000, deliveredAt: nil, finishedAt: t0 - 3_600_000_000,
                        outcome: .skipped, then: .nextRun,
                        error: "2025-12-31T23:00:00Z: occurrences since 2025-12-31T00:00:00Z were missed: "
                            + "1 outside the catch-up window of 3600 s skipped",
                        workerName: "", workerPID: 0, workerUID: .max, daemon: "scheduler"),
                ],
                nextBefore: 1041))),
    "get_metrics": Frame(requestID: 52, message: .getMetrics),
    "metrics": Frame(
        requestID: 52,
        message: .metrics(
            Array(
                """
                # HELP taskshed_tasks Tasks in the datastore, by state.
                # TYPE taskshed_tasks gauge
                taskshed_tasks{state="due"} 3

                """.utf8))),
    "stats": Frame(
        requestID: 15,
        message: .stats(
            Stats(
                serverVersion: "0.1.0", serverTime: t0, startedAt: t0 - 3_600_000_000, pending: 120, due: 3,
                paused: 4, leased: 2, dead: 1, waitingForWorker: 1, nextWakeup: t0 + 250_000, connections: 5,
                callbacks: [
                    CallbackStats(callback: "report", scheduled: 10, due: 1, leased: 1, dead: 0, workers: 2),
                    CallbackStats(callback: "send_email", scheduled: 119, due: 2, leased: 1, dead: 1, workers: 1),
                ],
                storeFileBytes: 1_048_576, storeMapBytes: 67_108_864, storeUsedBytes: 524_288,
                lag: LagSummary(count: 1000, p50: 85, p90: 140, p99: 310, max: 2200)))),
    "subscribe": Frame(
        requestID: 16,
        message: .subscribe(Subscribe(callbacks: ["send_email", "report"], concurrency: 8, leaseMicros: 60_000_000))),
    "subscribe.default_lease": Frame(
        requestID: 17, message: .subscribe(Subscribe(callbacks: ["cleanup"], concurrency: 1))),
    "subscribed": Frame(requestID: 16, message: .subscribed(Subscribed(leaseMicros: 60_000_000))),
    "delivery": Frame(requestID: 16, message: .delivery(recordLeased)),
    "subscribe_ahead": Frame(
        requestID: 16,
        message: .subscribeAhead(Subscribe(callbacks: ["send_email", "report"], concurrency: 8), aheadMicros: 10_000)),
    "revoke": Frame(requestID: 16, message: .revoke(LeaseRef(id: "t2", attempt: 1))),
    "unsubscribe": Frame(requestID: 18, message: .unsubscribe),
    "ok": Frame(requestID: 18, message: .ok),
    "claim": Frame(requestID: 19, message: .claim(Claim(callbacks: ["cleanup"], max: 10))),
    "ack": Frame(requestID: 20, message: .ack(LeaseRef(id: "t2", attempt: 1))),
    "fail": Frame(
        requestID: 21,
        message: .fail(
            Fail(
                lease: LeaseRef(id: "report-1", attempt: 2), error: "TimeoutError: upstream took 30 s",
                retry: true))),
    "touch": Frame(
        requestID: 22,
        message: .touch(Touch(lease: LeaseRef(id: "report-1", attempt: 2), extendMicros: 120_000_000))),
    "touch.default": Frame(requestID: 23, message: .touch(Touch(lease: LeaseRef(id: "report-1", attempt: 2)))),
    "lease_extended": Frame(requestID: 22, message: .leaseExtended(deadline: t0 + 120_000_000)),
    "release": Frame(requestID: 24, message: .release(LeaseRef(id: "t2", attempt: 1))),
    "error.invalid_argument": Frame(
        requestID: 3,
        message: .error(
            ErrorReply(code: .invalidArgument, field: "tasks[0].schedule", message: "interval must be > 0, got 0"))),
    "error.unsupported_version": Frame(
        requestID: 1,
        message: .error(
            ErrorReply(
                code: .unsupportedVersion,
                message: "no common version: client speaks 3...4, server speaks 1...2"))),
    "error.shutting_down": Frame(
        requestID: 0, message: .error(ErrorReply(code: .shuttingDown, message: "the server is shutting down"))),
]
