#!/usr/bin/env python3
"""Authoring aid: writes the annotated golden frames in proto-spec/vectors/.

The vector files are the source of truth (they are checked in and every test layer reads them); this script only
saves typing and keeps the per-field comments consistent. It implements the wire layout of PROTOCOL.md on its
own, independently of the Swift encoder, so the Swift tests cross-check both. Run it from anywhere:
    python3 proto-spec/tools/make_vectors.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors")
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds

TYPES = {
    "HELLO": 0x0001, "PING": 0x0002, "ADD_TASKS": 0x0010, "FETCH_TASKS": 0x0011, "LIST_TASKS": 0x0012,
    "PAUSE_TASKS": 0x0013, "RESUME_TASKS": 0x0014, "REMOVE_TASKS": 0x0015, "UPDATE_RUN_TIMES": 0x0016,
    "RETRY_DEAD": 0x0017, "PURGE_DEAD": 0x0018, "GET_STATS": 0x0019, "SUBSCRIBE": 0x0030, "UNSUBSCRIBE": 0x0031,
    "CLAIM": 0x0032, "ACK": 0x0033, "FAIL": 0x0034, "TOUCH": 0x0035, "RELEASE": 0x0036,
    "HELLO_OK": 0x8001, "PONG": 0x8002, "OK": 0x8003, "ADDED": 0x8010, "TASKS": 0x8011, "TASK_PAGE": 0x8012,
    "AFFECTED": 0x8013, "STATS": 0x8019, "SUBSCRIBED": 0x8030, "DELIVERY": 0x8031, "LEASE_EXTENDED": 0x8035,
    "ERROR": 0x80FF,
}
ERRORS = {"INVALID_ARGUMENT": 7, "UNSUPPORTED_VERSION": 3, "SHUTTING_DOWN": 14}


def t(us):
    """Comment text for an instant: T0 + offset."""
    d = us - T0
    return f"{us} (T0{'+' if d >= 0 else '-'}{abs(d)} us)" if abs(d) < 10**13 else str(us)


class W:
    """Collects (bytes, comment) rows."""

    def __init__(self):
        self.rows = []

    def raw(self, b, comment):
        self.rows.append((bytes(b), comment))

    def note(self, comment):
        self.rows.append((None, comment))

    def u8(self, n, v, c=None):
        self.raw(struct.pack(">B", v), f"{n} = {c if c is not None else v}")

    def u16(self, n, v, c=None):
        self.raw(struct.pack(">H", v), f"{n} = {c if c is not None else v}")

    def u32(self, n, v, c=None):
        self.raw(struct.pack(">I", v), f"{n} = {c if c is not None else v}")

    def u64(self, n, v, c=None):
        self.raw(struct.pack(">Q", v), f"{n} = {c if c is not None else v}")

    def i64(self, n, v, c=None):
        self.raw(struct.pack(">q", v), f"{n} = {c if c is not None else v}")

    def instant(self, n, v):
        self.i64(n, v, t(v))

    def boolean(self, n, v):
        self.u8(n, 1 if v else 0, "true" if v else "false")

    def string(self, n, s):
        b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        self.u16(n + " (string length)", len(b))
        if b:
            self.raw(b, f'{n} = "{s}"' if isinstance(s, str) else f"{n} = bytes {b.hex()}")

    def blob(self, n, b):
        self.u32(n + " (bytes length)", len(b))
        if b:
            try:
                text = b.decode("ascii")
                self.raw(b, f"{n} = '{text}'")
            except UnicodeDecodeError:
                self.raw(b, f"{n} = raw bytes")

    def opt(self, n, v, body):
        if v is None:
            self.u8(n + " (optional)", 0, "0 absent")
        else:
            self.u8(n + " (optional)", 1, "1 present")
            body(n, v)

    def opt_string(self, n, v):
        self.opt(n, v, self.string)

    def opt_instant(self, n, v):
        self.opt(n, v, self.instant)

    def opt_i64(self, n, v):
        self.opt(n, v, lambda n2, x: self.i64(n2, x))

    def lst(self, n, items, body):
        self.u32(n + " (list count)", len(items))
        for i, item in enumerate(items):
            body(f"{n}[{i}]", item)

    def size(self):
        return sum(len(b) for b, _ in self.rows if b is not None)


def schedule(w, n, s):
    if s is None:
        w.u8(n + ".kind", 0, "0 once")
        w.u32(n + ".body (bytes length)", 0)
    else:
        w.u8(n + ".kind", 1, "1 interval")
        w.u32(n + ".body (bytes length)", 8)
        w.i64(n + ".body interval_us", s)


def selector(w, n, kind, value=None):
    if kind == "ids":
        w.u8(n + ".kind", 0, "0 ids")
        w.lst(n + ".ids", value, w.string)
    elif kind == "group":
        w.u8(n + ".kind", 1, "1 group")
        w.string(n + ".group", value)
    else:
        w.u8(n + ".kind", 2, "2 all")


def task_spec(w, n, s):
    w.opt_string(n + ".id", s.get("id"))
    w.string(n + ".callback", s["callback"])
    w.opt_instant(n + ".run_at", s.get("run_at"))
    schedule(w, n + ".schedule", s.get("interval"))
    w.blob(n + ".kwargs", s.get("kwargs", b""))
    w.opt_string(n + ".group", s.get("group"))
    w.boolean(n + ".paused", s.get("paused", False))
    w.boolean(n + ".coalesce", s.get("coalesce", True))
    w.u32(n + ".max_attempts", s.get("max_attempts", 0))


STATES = {0: "0 scheduled", 1: "1 leased", 2: "2 dead"}


def record(w, n, r):
    w.string(n + ".id", r["id"])
    w.string(n + ".callback", r["callback"])
    w.instant(n + ".run_at", r["run_at"])
    schedule(w, n + ".schedule", r.get("interval"))
    w.blob(n + ".kwargs", r["kwargs"])
    w.opt_string(n + ".group", r.get("group"))
    w.boolean(n + ".paused", r.get("paused", False))
    w.opt_instant(n + ".paused_at", r.get("paused_at"))
    w.boolean(n + ".coalesce", r.get("coalesce", True))
    w.u8(n + ".state", r["state"], STATES.get(r["state"], r["state"]))
    w.u32(n + ".attempt", r["attempt"])
    w.u32(n + ".max_attempts", r["max_attempts"])
    w.opt_instant(n + ".lease_deadline", r.get("lease_deadline"))
    w.opt_string(n + ".last_error", r.get("last_error"))
    w.instant(n + ".created_at", r["created_at"])
    w.opt_instant(n + ".last_run_at", r.get("last_run_at"))
    w.opt_instant(n + ".last_failure_at", r.get("last_failure_at"))


REC_REPORT = dict(id="report-1", callback="report", run_at=T0, interval=3_600_000_000, kwargs=b"{}",
                  group="reports", paused=True, paused_at=T0 - 60_000_000, coalesce=False, state=0, attempt=0,
                  max_attempts=5, last_error="ValueError: bad input", created_at=T0 - 86_400_000_000,
                  last_run_at=T0 - 3_600_000_000, last_failure_at=T0 - 3_599_000_000)
REC_T2 = dict(id="t2", callback="cleanup", run_at=T0 + 1_000_000, kwargs=b"", state=0, attempt=0, max_attempts=3,
              created_at=T0)
REC_LEASED = dict(id="mail-42", callback="send_email", run_at=T0, kwargs=b'{"to":"a@b.c"}', state=1, attempt=1,
                  max_attempts=3, lease_deadline=T0 + 60_000_250, created_at=T0 - 5_000_000, last_run_at=T0 + 250)
REC_DEAD = dict(id="mail-7", callback="send_email", run_at=T0 - 10_000_000, kwargs=b'{"to":"x@y.z"}', group="mail",
                state=2, attempt=3, max_attempts=3, last_error="SMTPError: 550 mailbox unavailable",
                created_at=T0 - 20_000_000, last_run_at=T0 - 9_000_000, last_failure_at=T0 - 8_999_000)


def lease_ref(w, n, id_, attempt):
    p = n + "." if n else ""
    w.string(p + "id", id_)
    w.u32(p + "attempt", attempt)


def write_vector(name, direction, message, expect, description, rows, field=None, flags=0, length=None,
                 type_code=None, request_id=0, cut=None):
    """Writes header rows + payload rows. `length` overrides the length prefix; `cut` keeps only that many bytes."""
    payload_size = sum(len(b) for b, _ in rows if b is not None)
    code = TYPES[message] if type_code is None else type_code
    real_length = 8 + payload_size
    length_value = real_length if length is None else length
    header = [
        (struct.pack(">I", length_value),
         f"length = {length_value}" + (f" (8 header bytes + {payload_size} payload bytes)" if length is None
                                       else " (deliberately wrong)")),
        (struct.pack(">H", code), f"type = {message if type_code is None else 'unknown'} (0x{code:04x})"),
        (struct.pack(">H", flags), f"flags = 0x{flags:04x}" + (" (reserved bits set)" if flags else "")),
        (struct.pack(">I", request_id), f"request_id = {request_id}"),
    ]
    all_rows = [(None, "header")] + header + ([(None, "payload")] + rows if rows else [(None, "payload: empty")])
    out = [f"# direction: {direction}", f"# message: {message if type_code is None else '-'}",
           f"# expect: {expect}"]
    if field:
        out.append(f"# field: {field}")
    out.append(f"# description: {description}")
    remaining = cut
    for b, c in all_rows:
        if b is None:
            out.append(f"# {c}")
            continue
        if remaining is not None:
            if remaining <= 0:
                break
            if len(b) > remaining:
                b = b[:remaining]
                c += " (cut off here)"
            remaining -= len(b)
        chunks = [b[i:i + 16] for i in range(0, len(b), 16)] or [b""]
        for i, chunk in enumerate(chunks):
            hexes = " ".join(f"{x:02x}" for x in chunk)
            out.append(f"{hexes:<48}  # {c}" if i == 0 else hexes)
    with open(os.path.join(OUT, name + ".hex"), "w") as f:
        f.write("\n".join(out) + "\n")


C2S, S2C = "client-to-server", "server-to-client"


def v(name, direction, message, rid, description, build=None, **kw):
    w = W()
    if build:
        build(w)
    write_vector(name, direction, message, kw.pop("expect", "valid"), description, w.rows, request_id=rid, **kw)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".hex"):
            os.remove(os.path.join(OUT, f))

    # Connection.
    def hello(w):
        w.u16("min_version", 1)
        w.u16("max_version", 1)
        w.string("client_name", "taskshedctl 0.1.0")
    v("hello", C2S, "HELLO", 1, "Handshake: the client speaks versions 1...1.", hello)
    v("hello_ok", S2C, "HELLO_OK", 1, "Handshake reply: version 1 and the server's limits.", lambda w: (
        w.u16("version", 1), w.string("server_name", "taskshedd"), w.string("server_version", "0.1.0"),
        w.u32("max_frame_bytes", 67_108_864), w.u32("max_batch", 100_000), w.u32("max_kwargs_bytes", 65_536),
        w.i64("default_lease_us", 30_000_000), w.u64("connection_id", 7)))
    v("ping", C2S, "PING", 2, "Liveness check (empty payload).")
    v("pong", S2C, "PONG", 2, "Reply to PING with a next wake-up.", lambda w: (
        w.instant("server_time", T0 + 1_500_000), w.opt_instant("next_wakeup", T0 + 60_000_000)))
    v("pong.idle", S2C, "PONG", 3, "Reply to PING when no task is scheduled.", lambda w: (
        w.instant("server_time", T0), w.opt_instant("next_wakeup", None)))

    # Scheduler API.
    def add_once(w):
        w.u8("on_conflict", 0, "0 replace")
        w.lst("tasks", [dict(callback="send_email", kwargs=b'{"to":"a@b.c"}')],
              lambda n, s: task_spec(w, n, s))
    v("add_tasks.once", C2S, "ADD_TASKS", 3,
      "One one-off task, server-generated id, run now, every optional absent.", add_once)

    def add_batch(w):
        w.u8("on_conflict", 1, "1 keep")
        w.lst("tasks", [
            dict(id="report-1", callback="report", run_at=T0, interval=3_600_000_000, kwargs=b"{}", group="reports",
                 paused=True, coalesce=False, max_attempts=5),
            dict(id="t2", callback="cleanup", run_at=T0 + 1_000_000),
        ], lambda n, s: task_spec(w, n, s))
    v("add_tasks.batch", C2S, "ADD_TASKS", 4,
      "Two tasks, keep existing ids: a paused recurring task with every optional present, and a one-off task.",
      add_batch)
    v("added", S2C, "ADDED", 4, "Reply to ADD_TASKS: one result per task, showing each outcome.", lambda w: w.lst(
        "results", [("report-1", 0, "0 inserted"), ("t2", 2, "2 kept"), ("a3f1c2d4e5b60718293a4b5c6d7e8f90", 1,
                                                                          "1 replaced")],
        lambda n, r: (w.string(n + ".id", r[0]), w.u8(n + ".outcome", r[1], r[2]))))
    v("fetch_tasks.ids", C2S, "FETCH_TASKS", 5, "Fetch two tasks by id.",
      lambda w: selector(w, "selector", "ids", ["report-1", "t2"]))
    v("fetch_tasks.group", C2S, "FETCH_TASKS", 6, "Fetch every task of a group.",
      lambda w: selector(w, "selector", "group", "reports"))
    v("tasks.records", S2C, "TASKS", 5,
      "Reply to FETCH_TASKS: a paused recurring task with every optional present, and a minimal one-off task.",
      lambda w: w.lst("tasks", [REC_REPORT, REC_T2], lambda n, r: record(w, n, r)))
    v("tasks.empty", S2C, "TASKS", 6, "Reply to FETCH_TASKS or CLAIM with no tasks.",
      lambda w: w.lst("tasks", [], None))
    v("list_tasks.first_page", C2S, "LIST_TASKS", 7, "First page of all tasks: no filter, no cursor.", lambda w: (
        w.opt_string("filter.group", None), w.opt("filter.state", None, None), w.opt_string("filter.callback", None),
        w.opt_instant("filter.due_after", None), w.opt_instant("filter.due_before", None), w.u32("limit", 100),
        w.opt("cursor", None, None)))
    v("list_tasks.filtered", C2S, "LIST_TASKS", 8, "A later page with every filter present.", lambda w: (
        w.opt_string("filter.group", "reports"),
        w.opt("filter.state", 1, lambda n, x: w.u8(n, x, "1 due")),
        w.opt_string("filter.callback", "report"),
        w.opt_instant("filter.due_after", T0), w.opt_instant("filter.due_before", T0 + 86_400_000_000),
        w.u32("limit", 50),
        w.opt("cursor", bytes.fromhex("00064a7e4c8d1000"), w.blob)))
    v("task_page", S2C, "TASK_PAGE", 8, "Reply to LIST_TASKS: one dead-lettered task and a cursor.", lambda w: (
        w.lst("tasks", [REC_DEAD], lambda n, r: record(w, n, r)),
        w.opt("next_cursor", bytes.fromhex("00064a7e4c9bb718"), w.blob)))
    v("task_page.last", S2C, "TASK_PAGE", 7, "The last page: no tasks, no cursor.", lambda w: (
        w.lst("tasks", [], None), w.opt("next_cursor", None, None)))
    v("pause_tasks.ids", C2S, "PAUSE_TASKS", 9, "Pause one task by id.",
      lambda w: selector(w, "selector", "ids", ["report-1"]))
    v("resume_tasks.group", C2S, "RESUME_TASKS", 10, "Resume a group.",
      lambda w: selector(w, "selector", "group", "reports"))
    v("remove_tasks.all", C2S, "REMOVE_TASKS", 11, "Remove every task.", lambda w: selector(w, "selector", "all"))
    v("affected", S2C, "AFFECTED", 9, "Reply to a bulk change: one task changed.", lambda w: w.u64("count", 1))
    v("update_run_times", C2S, "UPDATE_RUN_TIMES", 14, "Reschedule two tasks.", lambda w: w.lst(
        "updates", [("report-1", T0 + 7_200_000_000), ("t2", T0 + 5_000_000)],
        lambda n, u: (w.string(n + ".id", u[0]), w.instant(n + ".run_at", u[1]))))
    v("retry_dead.ids", C2S, "RETRY_DEAD", 12, "Move one dead-lettered task back to scheduled.",
      lambda w: selector(w, "selector", "ids", ["mail-7"]))
    v("purge_dead.all", C2S, "PURGE_DEAD", 13, "Delete every dead-lettered task.",
      lambda w: selector(w, "selector", "all"))
    v("get_stats", C2S, "GET_STATS", 15, "Ask for statistics (empty payload).")

    def cb_stats(w, n, c):
        w.string(n + ".callback", c[0])
        for key, value in zip(("scheduled", "due", "leased", "dead"), c[1:5]):
            w.u64(f"{n}.{key}", value)
        w.u32(n + ".workers", c[5])

    def stats(w):
        w.string("server_version", "0.1.0")
        w.instant("server_time", T0)
        w.instant("started_at", T0 - 3_600_000_000)
        for key, value in (("pending", 120), ("due", 3), ("paused", 4), ("leased", 2), ("dead", 1),
                           ("waiting_for_worker", 1)):
            w.u64(key, value)
        w.opt_instant("next_wakeup", T0 + 250_000)
        w.u32("connections", 5)
        w.lst("callbacks", [("report", 10, 1, 1, 0, 2), ("send_email", 119, 2, 1, 1, 1)],
              lambda n, c: cb_stats(w, n, c))
        w.u64("store_file_bytes", 1_048_576)
        w.u64("store_map_bytes", 67_108_864)
        w.u64("store_used_bytes", 524_288)
        w.u64("lag.count", 1000)
        for key, value in (("p50", 85), ("p90", 140), ("p99", 310), ("max", 2200)):
            w.i64("lag." + key, value)
    v("stats", S2C, "STATS", 15, "Reply to GET_STATS.", stats)

    # Worker API.
    v("subscribe", C2S, "SUBSCRIBE", 16, "Event-driven worker for two callbacks, 8 at a time, 60 s leases.",
      lambda w: (w.lst("callbacks", ["send_email", "report"], w.string), w.u32("concurrency", 8),
                 w.opt_i64("lease_us", 60_000_000)))
    v("subscribe.default_lease", C2S, "SUBSCRIBE", 17, "One callback, one at a time, the server's lease length.",
      lambda w: (w.lst("callbacks", ["cleanup"], w.string), w.u32("concurrency", 1), w.opt_i64("lease_us", None)))
    v("subscribed", S2C, "SUBSCRIBED", 16, "Reply to SUBSCRIBE.", lambda w: w.i64("lease_us", 60_000_000))
    v("delivery", S2C, "DELIVERY", 16, "A due task pushed to the subscription of request 16.",
      lambda w: record(w, "task", REC_LEASED))
    v("unsubscribe", C2S, "UNSUBSCRIBE", 18, "Stop pushes (empty payload).")
    v("ok", S2C, "OK", 18, "Success without data (empty payload).")
    v("claim", C2S, "CLAIM", 19, "Polling worker: up to 10 due tasks, the server's lease length.", lambda w: (
        w.lst("callbacks", ["cleanup"], w.string), w.u32("max", 10), w.opt_i64("lease_us", None)))
    v("ack", C2S, "ACK", 20, "Task t2, attempt 1, succeeded.", lambda w: lease_ref(w, "", "t2", 1))
    v("fail", C2S, "FAIL", 21, "Attempt 2 of report-1 failed; retry.", lambda w: (
        lease_ref(w, "lease", "report-1", 2), w.string("error", "TimeoutError: upstream took 30 s"),
        w.boolean("retry", True)))
    v("touch", C2S, "TOUCH", 22, "Extend a lease by 120 s from now.", lambda w: (
        lease_ref(w, "lease", "report-1", 2), w.opt_i64("extend_us", 120_000_000)))
    v("touch.default", C2S, "TOUCH", 23, "Extend a lease by the subscription's lease length.", lambda w: (
        lease_ref(w, "lease", "report-1", 2), w.opt_i64("extend_us", None)))
    v("lease_extended", S2C, "LEASE_EXTENDED", 22, "Reply to TOUCH: the new deadline.",
      lambda w: w.instant("deadline", T0 + 120_000_000))
    v("release", C2S, "RELEASE", 24, "Give task t2 (attempt 1) back without counting the attempt.",
      lambda w: lease_ref(w, "", "t2", 1))

    def err(code, field, message):
        return lambda w: (w.u16("code", ERRORS[code], f"{ERRORS[code]} {code}"), w.opt_string("field", field),
                          w.string("message", message))
    v("error.invalid_argument", S2C, "ERROR", 3, "A request-level error naming the field at fault.",
      err("INVALID_ARGUMENT", "tasks[0].schedule", "interval must be > 0, got 0"))
    v("error.unsupported_version", S2C, "ERROR", 1, "No common version; the server closes after sending it.",
      err("UNSUPPORTED_VERSION", None, "no common version: client speaks 2...3, server speaks 1...1"))
    v("error.shutting_down", S2C, "ERROR", 0, "A connection-level error (request id 0) before the server closes.",
      err("SHUTTING_DOWN", None, "the server is shutting down"))

    # Decoder errors and incomplete input.
    v("bad.flags", C2S, "PING", 30, "Reserved flag bit 0 set: the stream cannot be trusted.",
      expect="error MALFORMED_FRAME fatal", flags=0x0001)
    write_vector("bad.short_length", C2S, "PING", "error MALFORMED_FRAME fatal",
                 "A length of 7 cannot even hold the rest of the header.", [], length=7, request_id=0, cut=11)
    write_vector("bad.too_large", C2S, "ADD_TASKS", "error FRAME_TOO_LARGE fatal",
                 "Length 64 MiB + 1 exceeds the default maximum; rejected after 4 bytes, before buffering.",
                 [], length=67_108_865, request_id=31)
    v("bad.unknown_type", C2S, "PING", 32, "Type 0x0077 is not defined; the frame is skipped, the stream goes on.",
      lambda w: w.raw(b"\x01\x02\x03", "three payload bytes of an unknown layout"),
      expect="error UNKNOWN_MESSAGE_TYPE", type_code=0x0077)
    v("bad.reply_type", C2S, "HELLO_OK", 46,
      "A client sent a server-to-client type: refused by its type before the payload (no HELLO_OK layout) is read.",
      lambda w: w.raw(b"\x01\x02\x03", "three bytes that are no HELLO_OK payload"),
      expect="error UNKNOWN_MESSAGE_TYPE")
    v("bad.bool", C2S, "FAIL", 33, "A bool must be 0 or 1.", lambda w: (
        lease_ref(w, "lease", "t2", 1), w.string("error", "boom"), w.u8("retry", 2, "2 (invalid bool)")),
      expect="error MALFORMED_MESSAGE", field="retry")
    v("bad.utf8", C2S, "HELLO", 34, "A string must be valid UTF-8 (C3 28 is not).", lambda w: (
        w.u16("min_version", 1), w.u16("max_version", 1), w.u16("client_name (string length)", 2),
        w.raw(b"\xc3\x28", "client_name = C3 28 (invalid UTF-8)")),
      expect="error MALFORMED_MESSAGE", field="client_name")
    v("bad.utf8_surrogate", C2S, "PAUSE_TASKS", 35,
      "UTF-8 may not encode a UTF-16 surrogate (ED A0 80 would be U+D800).", lambda w: (
          w.u8("selector.kind", 1, "1 group"), w.u16("selector.group (string length)", 3),
          w.raw(b"\xed\xa0\x80", "selector.group = ED A0 80 (invalid UTF-8)")),
      expect="error MALFORMED_MESSAGE", field="selector.group")
    v("bad.optional_tag", C2S, "TOUCH", 36, "An optional's presence tag must be 0 or 1.", lambda w: (
        lease_ref(w, "lease", "t2", 1), w.u8("extend_us (optional)", 2, "2 (invalid tag)")),
      expect="error MALFORMED_MESSAGE", field="extend_us")
    v("bad.conflict_policy", C2S, "ADD_TASKS", 37, "on_conflict 3 is not a ConflictPolicy.", lambda w: (
        w.u8("on_conflict", 3, "3 (undefined)"), w.u32("tasks (list count)", 0)),
      expect="error MALFORMED_MESSAGE", field="on_conflict")
    bad_state = dict(REC_LEASED, state=9)
    v("bad.task_state", S2C, "DELIVERY", 16, "A record's state 9 is not a TaskState.",
      lambda w: record(w, "task", bad_state), expect="error MALFORMED_MESSAGE", field="task.state")
    v("bad.state_filter", C2S, "LIST_TASKS", 38, "filter.state 7 is not a StateFilter.", lambda w: (
        w.opt_string("filter.group", None), w.opt("filter.state", 7, lambda n, x: w.u8(n, x, "7 (undefined)")),
        w.opt_string("filter.callback", None), w.opt_instant("filter.due_after", None),
        w.opt_instant("filter.due_before", None), w.u32("limit", 10), w.opt("cursor", None, None)),
      expect="error MALFORMED_MESSAGE", field="filter.state")
    v("bad.add_outcome", S2C, "ADDED", 39, "An outcome of 5 is not an AddOutcome.", lambda w: w.lst(
        "results", [("t2", 5)], lambda n, r: (w.string(n + ".id", r[0]), w.u8(n + ".outcome", r[1], "5 (undefined)"))),
      expect="error MALFORMED_MESSAGE", field="results[0].outcome")

    def cron_task(w):
        w.u8("on_conflict", 0, "0 replace")
        w.u32("tasks (list count)", 1)
        w.opt_string("tasks[0].id", None)
        w.string("tasks[0].callback", "report")
        w.opt_instant("tasks[0].run_at", None)
        w.u8("tasks[0].schedule.kind", 2, "2 (not defined in version 1; e.g. a future cron kind)")
        w.u32("tasks[0].schedule.body (bytes length)", 9)
        w.raw(b"0 * * * *", "tasks[0].schedule.body = '0 * * * *'")
        w.blob("tasks[0].kwargs", b"")
        w.opt_string("tasks[0].group", None)
        w.boolean("tasks[0].paused", False)
        w.boolean("tasks[0].coalesce", True)
        w.u32("tasks[0].max_attempts", 0)
    v("bad.schedule_kind", C2S, "ADD_TASKS", 40,
      "An unknown schedule kind is a message error; the length-prefixed body keeps the frame intact.",
      cron_task, expect="error MALFORMED_MESSAGE", field="tasks[0].schedule.kind")

    def short_interval(w):
        w.u8("on_conflict", 0, "0 replace")
        w.u32("tasks (list count)", 1)
        w.opt_string("tasks[0].id", None)
        w.string("tasks[0].callback", "report")
        w.opt_instant("tasks[0].run_at", None)
        w.u8("tasks[0].schedule.kind", 1, "1 interval")
        w.u32("tasks[0].schedule.body (bytes length)", 4)
        w.raw(b"\x00\x00\x00\x3c", "tasks[0].schedule.body (4 bytes; an interval needs 8)")
        w.blob("tasks[0].kwargs", b"")
        w.opt_string("tasks[0].group", None)
        w.boolean("tasks[0].paused", False)
        w.boolean("tasks[0].coalesce", True)
        w.u32("tasks[0].max_attempts", 0)
    v("bad.schedule_body", C2S, "ADD_TASKS", 41, "An interval schedule's body must be exactly 8 bytes.",
      short_interval, expect="error MALFORMED_MESSAGE", field="tasks[0].schedule.body")
    v("bad.selector_kind", C2S, "REMOVE_TASKS", 42, "Selector kind 3 is not defined.",
      lambda w: w.u8("selector.kind", 3, "3 (undefined)"), expect="error MALFORMED_MESSAGE", field="selector.kind")
    v("bad.trailing_bytes", C2S, "PING", 43, "PING has an empty payload; a stray byte is an error.",
      lambda w: w.raw(b"\x00", "a trailing byte"), expect="error MALFORMED_MESSAGE")
    v("bad.truncated_payload", C2S, "ACK", 44,
      "The id's length (10) runs past the end of the frame; the frame itself is complete.", lambda w: (
          w.u16("id (string length)", 10), w.raw(b"t2\x00", "only 3 bytes before the frame ends")),
      expect="error MALFORMED_MESSAGE", field="id")
    v("bad.list_count", C2S, "FETCH_TASKS", 45,
      "A list count (268435456) larger than the remaining bytes can hold is rejected before any allocation.",
      lambda w: (w.u8("selector.kind", 0, "0 ids"), w.u32("selector.ids (list count)", 0x10000000),
                 w.string("selector.ids[0]", "t2")),
      expect="error MALFORMED_MESSAGE", field="selector.ids")
    write_vector("incomplete.header", C2S, "PING", "incomplete",
                 "Only 7 of the 12 header bytes have arrived: need more bytes.", [], request_id=2, cut=7)
    w = W()
    hello(w)
    write_vector("incomplete.payload", C2S, "HELLO", "incomplete",
                 "The header is complete but 4 payload bytes are missing: need more bytes.", w.rows, request_id=1,
                 cut=12 + w.size() - 4)


if __name__ == "__main__":
    main()
