#!/usr/bin/env python3
"""Measures the Python original (PyPI `taskshed` 0.10.0) on the scenarios `taskshed-bench` measures.

Subcommands (each prints a short table, or one JSON object with --json):

  lag    N one-off tasks due at random instants over S seconds, starting 1 s after the add (as
         `taskshed-bench lag -n N -s S`); the lag is callback start minus the task's run_at.
  floor  the same instants on a bare asyncio timer (loop.call_later, no TaskShed): what the event loop
         itself costs, the counterpart of `taskshed-bench floor`.
  add    N tasks due in 1-2 days in one AsyncScheduler.add_tasks call (as the 100k batch of
         `taskshed-bench add`).
  drain  N tasks already due (run_at spread over the last 60 s, as `taskshed-bench drain`), added with no
         worker running, then one worker started: wall time, tasks/s, process CPU per task.

It uses only the package's public API: taskshed.datastores.InMemoryDataStore (or RedisDataStore with
--store redis), taskshed.schedulers.AsyncScheduler, taskshed.workers.EventDrivenWorker / PollingWorker and
taskshed.models.task_models.Task. Run it through scripts/bench-python-original.sh, which makes the venv.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import platform
import random
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from importlib import metadata

from taskshed.datastores import InMemoryDataStore
from taskshed.models.task_models import Task
from taskshed.schedulers import AsyncScheduler
from taskshed.workers import EventDrivenWorker, PollingWorker

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_US = timedelta(microseconds=1)
# The kwargs of taskshed-bench's add and drain tasks: {"user_id": 12345, "kind": "reminder"} (39 bytes of JSON).
# In memory they are never serialized; with Redis they are json.dumps'ed per task, as the original always does.
KIND = "reminder"
LOOP_NAME = "?"  # set by main() from the running loop


# ------------------------------------------------------------------------------------------------ helpers


def micros_of(dt: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime (no float rounding: timedelta is integral)."""
    return (dt - EPOCH) // ONE_US


def at_micros(us: int) -> datetime:
    """The aware UTC datetime of `us` microseconds since the epoch, exactly (datetime's resolution is 1 µs)."""
    return EPOCH + timedelta(microseconds=us)


def percentile(sorted_values: list[float], p: float) -> float:
    """Exact percentile as taskshed-bench takes it: the sample at rank ceil(p/100 * n) (1-based)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def distribution(values_us: list[float]) -> dict:
    s = sorted(values_us)
    return {
        "count": len(s),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "max": s[-1] if s else float("nan"),
        "min": s[0] if s else float("nan"),
        "mean": sum(s) / len(s) if s else float("nan"),
    }


def max_rss_kib() -> int:
    # ru_maxrss is in KiB on Linux: the process's peak resident set, a rough memory figure for big N.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "taskshed": metadata.version("taskshed"),
        # The original runs on whatever loop asyncio gives it; it does not install uvloop. We use the default
        # (selector loop on epoll), which is what a plain `asyncio.run` user gets.
        "event_loop": LOOP_NAME,
    }


def make_datastore(args):
    """The datastore for this run. InMemoryDataStore by default; RedisDataStore only when asked (it needs a
    running redis-server; the bench wipes the original's `scheduler*` keys on it first)."""
    if args.store == "memory":
        return InMemoryDataStore()
    from taskshed.datastores import RedisConfig, RedisDataStore

    if args.redis_socket:
        config = RedisConfig(unix_socket_path=args.redis_socket)
    else:
        config = RedisConfig(host=args.redis_host, port=args.redis_port)
    return RedisDataStore(config)


async def store_cpu_s(args) -> float | None:
    """CPU seconds (user + system) the redis-server has used so far, from its INFO, on a connection of our own;
    None for the in-memory store, whose work is all in this process's CPU already. The bench's process CPU
    is the original's side only: with Redis the store's own work is beside it, reported apart."""
    if args.store == "memory":
        return None
    from redis.asyncio import Redis

    if args.redis_socket:
        client = Redis(unix_socket_path=args.redis_socket)
    else:
        client = Redis(host=args.redis_host, port=args.redis_port)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        await client.aclose()


def per_task_us(seconds: float | None, n: int) -> float | None:
    return None if seconds is None else seconds * 1e6 / n


async def clear_store(datastore) -> None:
    # InMemoryDataStore.start() clears itself; a Redis store keeps whatever an earlier run left.
    if not isinstance(datastore, InMemoryDataStore):
        await datastore.remove_all_tasks()


def make_worker(args, callback_map, datastore):
    if args.worker == "event":
        return EventDrivenWorker(callback_map=callback_map, datastore=datastore)
    # PollingWorker takes any timedelta; nothing in 0.10.0 enforces a minimum, so 0.1 s is allowed.
    return PollingWorker(
        callback_map=callback_map,
        datastore=datastore,
        polling_interval=timedelta(seconds=args.polling_interval),
    )


def worker_label(args) -> str:
    if args.worker == "event":
        return "EventDrivenWorker"
    return f"PollingWorker ({args.polling_interval:g} s)"


def store_label(args) -> str:
    return "InMemoryDataStore" if args.store == "memory" else "RedisDataStore"


async def stop(worker, scheduler) -> None:
    """Shuts the worker, then the scheduler, down (the worker's shutdown also closes the shared datastore).

    One loop turn first: the original's PollingWorker.shutdown() cancels its timer handle but not a poll that
    the timer has just started as an asyncio Task; that poll then runs after shutdown() has closed the
    datastore (InMemoryDataStore sets its lock to None) and dies with "TypeError: 'NoneType' object does not
    support the asynchronous context manager protocol" ("Task exception was never retrieved"), seen with a
    0.1 s interval. With an in-memory store a poll never really suspends, so letting it finish here avoids it.
    """
    await asyncio.sleep(0)
    await worker.shutdown()
    await scheduler.shutdown()


# ------------------------------------------------------------------------------------------------ lag


async def run_lag(args) -> dict:
    n, span_s, lead_s = args.n, args.s, args.lead
    rng = random.Random(args.seed)
    lags_us: list[float | None] = [None] * n
    duplicates = 0
    seen = 0
    all_seen = asyncio.Event()
    due_us: list[int] = [0] * n

    async def on_due(i: int) -> None:
        # First statement: the callback's start, on the wall clock the run_at is on (run_at is UTC wall time,
        # so CLOCK_REALTIME via time.time_ns(), as taskshed-bench's CLOCK_REALTIME lags).
        started_ns = time.time_ns()
        nonlocal seen, duplicates
        if lags_us[i] is not None:
            duplicates += 1
            return
        lags_us[i] = (started_ns - due_us[i] * 1000) / 1000
        seen += 1
        if seen == n:
            all_seen.set()

    datastore = make_datastore(args)
    worker = make_worker(args, {"bench.lag": on_due}, datastore)
    # The EventDrivenWorker must be handed to the scheduler, which re-arms its timer on every change
    # (AsyncScheduler._notify_worker); a PollingWorker is decoupled and never notified.
    scheduler = AsyncScheduler(datastore, worker=worker if args.worker == "event" else None)
    await scheduler.start()
    await clear_store(datastore)
    # The worker runs before the add, as in taskshed-bench (its worker is subscribed before the tasks arrive):
    # for a PollingWorker the poll phase is then independent of the due times.
    await worker.start()

    # Random instants over [start, start + S), start = now + lead (taskshed-bench: 1 s lead, uniform instants).
    # Python's Mersenne Twister, not the Swift bench's SplitMix64: same distribution, not the same instants.
    start_us = time.time_ns() // 1000 + int(lead_s * 1e6)
    tasks = []
    for i in range(n):
        task = Task(callback="bench.lag", run_at=at_micros(start_us + rng.randrange(int(span_s * 1e6))),
                    kwargs={"i": i}, task_id=f"lag-{i}")
        # Lag is measured against the run_at the Task holds (after its own UTC conversion), exactly.
        due_us[i] = micros_of(task.run_at)
        tasks.append(task)
    add_started = time.perf_counter_ns()
    await scheduler.add_tasks(tasks)
    add_ns = time.perf_counter_ns() - add_started
    if time.time_ns() // 1000 >= start_us:
        raise SystemExit(f"adding {n} tasks took longer than the {lead_s} s lead; raise --lead")

    # taskshed-bench's deadline: lead + S + 15 s; a polling worker may also need one interval after the last.
    deadline_s = lead_s + span_s + 15 + (args.polling_interval if args.worker == "polling" else 0)
    cpu0 = time.process_time_ns()
    try:
        await asyncio.wait_for(all_seen.wait(), timeout=deadline_s)
        # Stay 300 ms after the N-th distinct task to count late duplicates (taskshed-bench does the same).
        await asyncio.sleep(0.3)
    except asyncio.TimeoutError:
        pass
    cpu_ns = time.process_time_ns() - cpu0
    await stop(worker, scheduler)

    got = [v for v in lags_us if v is not None]
    return {
        "scenario": "lag",
        "worker": worker_label(args),
        "store": store_label(args),
        "count": n,
        "seconds": span_s,
        "seed": args.seed,
        "received": len(got),
        "missing": n - len(got),
        "duplicates": duplicates,
        "lag_us": distribution(got),
        "add_ms": add_ns / 1e6,
        "cpu_ms_during_window": cpu_ns / 1e6,
    }


async def run_floor(args) -> dict:
    """The same kind of instants on a bare loop.call_later, armed the way EventDrivenWorker arms its timer
    (delay = run_at - datetime.now(), on the loop's monotonic clock): asyncio's own wake-up cost. On Linux
    the selector waits in epoll_wait, whose timeout Python rounds UP to whole milliseconds, so this floor
    is ~0.5 ms on average by construction."""
    n, span_s, lead_s = args.n, args.s, args.lead
    rng = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    lags_us: list[float] = []
    done = asyncio.Event()
    start_us = time.time_ns() // 1000 + int(lead_s * 1e6)
    instants = [start_us + rng.randrange(int(span_s * 1e6)) for _ in range(n)]

    def fire(due: int) -> None:
        started_ns = time.time_ns()
        lags_us.append((started_ns - due * 1000) / 1000)
        if len(lags_us) == n:
            done.set()

    for due in instants:
        delay = max((at_micros(due) - datetime.now(timezone.utc)).total_seconds(), 0)
        loop.call_later(delay, fire, due)
    await asyncio.wait_for(done.wait(), timeout=lead_s + span_s + 15)
    return {
        "scenario": "floor",
        "worker": "bare asyncio loop.call_later",
        "store": "-",
        "count": n,
        "seconds": span_s,
        "seed": args.seed,
        "received": len(lags_us),
        "missing": n - len(lags_us),
        "duplicates": 0,
        "lag_us": distribution(lags_us),
    }


# ------------------------------------------------------------------------------------------------ add


async def run_add(args) -> dict:
    n = args.n
    rng = random.Random(args.seed)
    datastore = make_datastore(args)

    async def never(**kwargs) -> None:  # the tasks are due in a day or two: nothing runs
        pass

    worker = make_worker(args, {"bench.add": never}, datastore)
    scheduler = AsyncScheduler(datastore, worker=worker if args.worker == "event" else None)
    await scheduler.start()
    await clear_store(datastore)
    await worker.start()

    # Due in a day plus a random offset within a day, generated ids (uuid4 hex, Task's default), the 39-byte
    # kwargs: taskshed-bench's pending task. Building the Task objects is the caller's cost in Python, timed
    # apart from the add (our batch's figure includes encoding the frame and the daemon's decoding, so the
    # honest Python counterpart is somewhere between "add" and "build + add").
    now_us = time.time_ns() // 1000
    day_us = 86_400_000_000
    build0, cpu_b0 = time.perf_counter_ns(), time.process_time_ns()
    tasks = [
        Task(callback="bench.add", run_at=at_micros(now_us + day_us + rng.randrange(day_us)),
             kwargs={"user_id": 12345, "kind": KIND})
        for _ in range(n)
    ]
    build_ns, build_cpu_ns = time.perf_counter_ns() - build0, time.process_time_ns() - cpu_b0

    # One add_tasks call: the datastore's add (a dict insert per task in memory; one pipeline with Redis),
    # then, with an EventDrivenWorker, the scheduler's notification, which re-reads the earliest run_at
    # (InMemoryDataStore.fetch_next_wakeup: a scan of every stored task).
    store_cpu0 = await store_cpu_s(args)
    add0, cpu_a0 = time.perf_counter_ns(), time.process_time_ns()
    await scheduler.add_tasks(tasks)
    add_ns, add_cpu_ns = time.perf_counter_ns() - add0, time.process_time_ns() - cpu_a0
    store_cpu1 = await store_cpu_s(args)

    await stop(worker, scheduler)
    return {
        "scenario": "add",
        "worker": worker_label(args),
        "store": store_label(args),
        "count": n,
        "add_s": add_ns / 1e9,
        "add_tasks_per_s": n / (add_ns / 1e9),
        "add_cpu_us_per_task": add_cpu_ns / 1e3 / n,
        "store_cpu_us_per_task": per_task_us(None if store_cpu0 is None else store_cpu1 - store_cpu0, n),
        "build_s": build_ns / 1e9,
        "build_cpu_us_per_task": build_cpu_ns / 1e3 / n,
        "build_and_add_tasks_per_s": n / ((build_ns + add_ns) / 1e9),
        "max_rss_kib": max_rss_kib(),
    }


# ------------------------------------------------------------------------------------------------ drain


async def run_drain(args) -> dict:
    n = args.n
    ran = bytearray(n)
    duplicates = 0
    count = 0
    finished = asyncio.Event()
    first_ns = 0
    last_ns = 0

    async def empty(user_id: int, kind: str) -> None:
        # The empty callback; the only work is the bookkeeping that proves each task ran exactly once
        # (user_id carries the task's index, so the kwargs keep taskshed-bench's shape).
        nonlocal count, duplicates, first_ns, last_ns
        if ran[user_id]:
            duplicates += 1
            return
        ran[user_id] = 1
        count += 1
        if count == 1:
            first_ns = time.perf_counter_ns()
        if count == n:
            last_ns = time.perf_counter_ns()
            finished.set()

    datastore = make_datastore(args)
    # Added with no worker: the scheduler has none to notify (an EventDrivenWorker handed to it before its
    # start() would make add_tasks fail: update_schedule needs the worker's loop).
    scheduler = AsyncScheduler(datastore)
    await scheduler.start()
    await clear_store(datastore)
    now_us = time.time_ns() // 1000
    # Due between 60 s and 0 s ago, distinct and ascending in add order, as taskshed-bench drain's default.
    # (The in-memory store does not sort: it hands back due tasks in insertion order whatever their run_at.)
    tasks = [
        Task(callback="bench.drain", run_at=at_micros(now_us - 60_000_000 + i * 60_000_000 // max(n, 1)),
             kwargs={"user_id": i, "kind": KIND})
        for i in range(n)
    ]
    fill0 = time.perf_counter_ns()
    await scheduler.add_tasks(tasks)
    fill_ns = time.perf_counter_ns() - fill0
    del tasks

    worker = make_worker(args, {"bench.drain": empty}, datastore)
    # Collect garbage left by the fill so a full collection does not land in the timed part by chance; the
    # collector stays enabled (as in any user's process): its cost on the drain's own objects counts.
    gc.collect()
    store_cpu0 = await store_cpu_s(args)
    t0, cpu0 = time.perf_counter_ns(), time.process_time_ns()
    # start() is the catch-up after downtime: _process_due_tasks fetches every due task at once, creates one
    # asyncio Task per callback (none has run yet), removes the ids, then re-arms its timer; the callbacks run
    # when start() yields to the loop. All N are therefore in flight together: no concurrency limit.
    await worker.start()
    started_ns = time.perf_counter_ns()
    try:
        await asyncio.wait_for(finished.wait(), timeout=args.timeout)
    except asyncio.TimeoutError:
        pass
    t1, cpu1 = time.perf_counter_ns(), time.process_time_ns()
    store_cpu1 = await store_cpu_s(args)
    # Shutdown waits for the asyncio Tasks (their done-callbacks): timed apart, not in the rate.
    await asyncio.sleep(0)  # see stop()
    sd0 = time.perf_counter_ns()
    await worker.shutdown()
    shutdown_ns = time.perf_counter_ns() - sd0
    await scheduler.shutdown()

    # The drain ends when every callback has run AND the worker has removed the ids from the store (its
    # start() returns after the removal): with Redis the callbacks run while the removal's round trips are
    # still under way, in memory the removal comes first. taskshed-bench's drain likewise ends at the last ACK.
    end = max(last_ns, started_ns) if last_ns else t1
    wall_ns = end - t0
    return {
        "scenario": "drain",
        "worker": worker_label(args),
        "store": store_label(args),
        "count": n,
        "ran": count,
        "missing": n - count,
        "duplicates": duplicates,
        "fill_s": fill_ns / 1e9,
        "wall_s": wall_ns / 1e9,
        "tasks_per_s": count / (wall_ns / 1e9) if count else 0.0,
        # Process CPU (user + system of this one process: scheduler, store and worker all live in it).
        "cpu_s": (cpu1 - cpu0) / 1e9,
        "cpu_us_per_task": (cpu1 - cpu0) / 1e3 / n,
        "store_cpu_us_per_task": per_task_us(None if store_cpu0 is None else store_cpu1 - store_cpu0, n),
        "start_returned_s": (started_ns - t0) / 1e9,
        "first_callback_s": (first_ns - t0) / 1e9 if first_ns else None,
        "shutdown_s": shutdown_ns / 1e9,
        "max_rss_kib": max_rss_kib(),
    }


# ------------------------------------------------------------------------------------------------ output


def store_cpu_note(result: dict) -> str:
    v = result.get("store_cpu_us_per_task")
    return "" if v is None else f"; redis-server CPU {v:.1f} µs/task (not in the CPU column)"


def print_table(result: dict, info: dict) -> None:
    print(f"# Python {info['python']} ({info['implementation']}), taskshed {info['taskshed']}, {info['event_loop']}")
    s = result["scenario"]
    if s in ("lag", "floor"):
        d = result["lag_us"]
        print(f"{'scenario':<44} {'count':>6} {'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9} {'max µs':>9}")
        name = f"{s} {result['worker']}" + (f", {result['store']}" if s == "lag" else "")
        print(f"{name:<44} {d['count']:>6} {d['p50']:>9.0f} {d['p90']:>9.0f} {d['p99']:>9.0f} {d['max']:>9.0f}")
        print(f"received {result['received']}/{result['count']}, missing {result['missing']}, "
              f"duplicates {result['duplicates']}; min {d['min']:.0f} µs, mean {d['mean']:.0f} µs"
              + (f"; add {result['add_ms']:.1f} ms" if s == "lag" else ""))
    elif s == "add":
        print(f"{'scenario':<52} {'count':>7} {'seconds':>8} {'tasks/s':>10} {'CPU µs/task':>11}")
        name = f"add_tasks, {result['worker']}, {result['store']}"
        print(f"{name:<52} {result['count']:>7} {result['add_s']:>8.3f} {result['add_tasks_per_s']:>10,.0f} "
              f"{result['add_cpu_us_per_task']:>11.2f}")
        print(f"{'building the Task objects (caller side)':<52} {result['count']:>7} {result['build_s']:>8.3f} "
              f"{result['count'] / result['build_s']:>10,.0f} {result['build_cpu_us_per_task']:>11.2f}")
        print(f"build + add: {result['build_and_add_tasks_per_s']:,.0f} tasks/s; peak RSS "
              f"{result['max_rss_kib'] / 1024:.0f} MiB" + store_cpu_note(result))
    elif s == "drain":
        print(f"{'scenario':<44} {'count':>7} {'wall s':>7} {'tasks/s':>10} {'CPU s':>6} {'CPU µs/task':>11}")
        name = f"drain {result['worker']}, {result['store']}"
        print(f"{name:<44} {result['count']:>7} {result['wall_s']:>7.3f} {result['tasks_per_s']:>10,.0f} "
              f"{result['cpu_s']:>6.2f} {result['cpu_us_per_task']:>11.1f}")
        fc = result["first_callback_s"]
        print(f"ran {result['ran']}/{result['count']}, duplicates {result['duplicates']}; worker.start() returned "
              f"at {result['start_returned_s'] * 1e3:.0f} ms, first callback at "
              f"{(fc * 1e3 if fc is not None else float('nan')):.0f} ms; fill {result['fill_s']:.3f} s, "
              f"shutdown {result['shutdown_s'] * 1e3:.0f} ms, peak RSS {result['max_rss_kib'] / 1024:.0f} MiB"
              + store_cpu_note(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = {"lag": 1000, "floor": 1000, "add": 100_000, "drain": 50_000}
    for name, help_text in (("lag", "scheduled time -> callback start"),
                            ("floor", "a bare asyncio timer on the same instants"),
                            ("add", "one add_tasks call of N tasks"),
                            ("drain", "N due tasks processed by one worker")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("-n", type=int, default=defaults[name], help=f"tasks (default {defaults[name]})")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
        p.add_argument("--seed", type=int, default=11, help="seed of the random run times (default 11)")
        if name in ("lag", "floor"):
            p.add_argument("-s", type=float, default=10.0, help="window the run times are spread over, s")
            p.add_argument("--lead", type=float, default=1.0, help="now -> window start, s (default 1)")
        if name != "floor":
            p.add_argument("--worker", choices=("event", "polling"), default="event")
            p.add_argument("--polling-interval", type=float, default=3.0,
                           help="PollingWorker's polling_interval in s (default 3, the original's default)")
            p.add_argument("--store", choices=("memory", "redis"), default="memory",
                           help="datastore (default memory; redis needs a running redis-server)")
            p.add_argument("--redis-socket", help="Unix socket of the redis-server (--store redis)")
            p.add_argument("--redis-host", default="127.0.0.1")
            p.add_argument("--redis-port", type=int, default=6379)
        if name == "drain":
            p.add_argument("--timeout", type=float, default=600.0, help="give up after this many s")
    args = parser.parse_args(argv)
    if args.n <= 0:
        parser.error("-n must be positive")

    runner = {"lag": run_lag, "floor": run_floor, "add": run_add, "drain": run_drain}[args.command]
    async def measured():
        global LOOP_NAME
        loop = asyncio.get_running_loop()
        selector = getattr(loop, "_selector", None)  # only for the report: which system call waits
        LOOP_NAME = type(loop).__name__ + (f"/{type(selector).__name__}" if selector is not None else "")
        return await runner(args)

    result = asyncio.run(measured())
    info = versions()
    if args.json:
        print(json.dumps({**result, "versions": info}))
    else:
        print_table(result, info)
    failed = result.get("missing", 0) or result.get("duplicates", 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
