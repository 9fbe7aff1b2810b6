#!/usr/bin/env python3
"""The load generator, fault trigger and checker of wrk/chaos.sh (SPEC section 7).

Standard library only. Three subcommands:

  setup   create the rooms and users a phase books (201 or 409 both fine)
  phase   one fault under steady load: book distinct room-nights at a fixed
          rate, each request with its own Idempotency-Key, retried with the
          SAME key on 503, 409 idempotency_key_in_use, connection errors and
          timeouts until a final answer; every Nth booking (--keyless-every)
          without a key instead, the benchmark's hot path, retried on the same
          faults as a client without a key would; run the fault command once; watch
          PostgreSQL with pg_isready and its postmaster.pid; then check the
          database with SQL (psql) and write one JSON document
  report  the Markdown and JSON report of the phases' documents
  selftest  shows that the SQL checks of a phase can fail: books one night
          over HTTP, then runs the checks on right and on deliberately wrong
          records of it (another user, a lost answer retried before the
          booking, a booking nobody acknowledged) and expects each to be caught

Times are time.monotonic() seconds, relative to the phase's start.
"""

import argparse
import datetime
import heapq
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter


def log(message):
    print(f"    {message}", file=sys.stderr, flush=True)


# --- HTTP ---------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection, reopened after an error or when it
    has been idle long enough for the service's header-read timeout to close it."""

    IDLE_REOPEN = 3.0

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None
        self.last_used = 0.0

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict with lower-case names, body bytes); raises
        OSError or http.client.HTTPException on a transport failure."""
        if self.conn is not None and time.monotonic() - self.last_used > self.IDLE_REOPEN:
            self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        self.last_used = time.monotonic()
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def split_url(url):
    assert url.startswith("http://"), url
    hostport = url[len("http://"):].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def cmd_setup(args):
    host, port = split_url(args.url)
    client = Client(host, port, 30)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    names = [("/rooms", f"{args.room_prefix}{i}") for i in range(args.rooms)]
    names += [("/users", f"{args.user_prefix}{i}") for i in range(args.users)]
    for path, name in names:
        status, _, body = client.request("POST", path, json.dumps({"name": name}), headers)
        if status not in (201, 409):
            sys.exit(f"chaos_client: POST {path} {{\"name\": \"{name}\"}} answered {status}: {body[:300]!r}")
    client.close()


# --- One phase ---------------------------------------------------------------------


class Task:
    """One booking: a room-night and its Idempotency-Key, kept for every retry;
    a keyless one has no key (None)."""

    __slots__ = ("seq", "key", "room", "user", "date", "attempts", "created", "outcome", "unanswered")

    def __init__(self, seq, room, user, date, created, keyless):
        self.seq, self.room, self.user, self.date = seq, room, user, date
        self.key = None if keyless else str(uuid.uuid4())
        self.attempts = 0
        self.created = created
        # final: "201", "409-conflict", "409-after-unanswered", "other", "gave-up"
        self.outcome = None
        # A keyless attempt ended without a final answer (503, connection error,
        # timeout): it may or may not have booked the night.
        self.unanswered = False

    def who(self):
        return f"key {self.key}" if self.key is not None else f"keyless booking {self.seq}"


class Phase:
    def __init__(self, args):
        self.args = args
        self.host, self.port = split_url(args.url)
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.heap = []          # (due, seq, task)
        self.fresh_waiting = 0  # new tasks not yet sent
        self.open_tasks = 0     # created and without a final answer
        self.producing = True
        self.stop_workers = False
        self.statuses = Counter()   # per attempt: "201", "201 replayed", "503", "409 key in use", ...
        self.problems = []          # (t, text): each a failed check
        self.acks = []              # (key or None, room, date, id, t_done, replayed, attempts, user)
        # (room, date, user, wall-clock time the retry was sent) of keyless bookings
        # whose retry found the night taken after an unanswered attempt: that
        # attempt booked it, before the retry was sent, and its answer was lost.
        self.lost_answers = []
        self.done_201 = []          # completion times of every 201
        self.events = []            # (t_done, label) of non-201 attempts, for the timeline
        self.max_latency = 0.0
        self.latencies = []
        self.hangs = 0
        self.missing_retry_after = 0
        self.produced = 0
        self.keyless_started = 0
        self.final = Counter()
        self.pg_timeline = []       # (t, pid, pg_isready rc) on every change
        self.pg_state = (None, None)
        self.t_fault = None
        self.old_pid = None
        self.t_down = None
        self.t_back = None
        self.new_pid = None
        self.poll_stop = False
        self.service_dead = False
        today = datetime.datetime.now(datetime.timezone.utc).date()
        pairs = [(r, n) for r in range(args.rooms) for n in range(1, args.nights + 1)]
        random.Random(args.seed).shuffle(pairs)
        self.pairs = pairs
        self.today = today

    def now(self):
        return time.monotonic() - self.t0

    def problem(self, text):
        with self.lock:
            if len(self.problems) < 1000:
                self.problems.append((round(self.now(), 3), text))

    # -- producer: new tasks at a fixed rate, at most `backlog` unsent ones
    def produce(self):
        rate, cap = self.args.rate, max(1, int(self.args.rate * 2))
        start = time.monotonic()
        while True:
            with self.lock:
                if not self.producing:
                    return
                due_total = int((time.monotonic() - start) * rate)
                while self.produced < due_total and self.fresh_waiting < cap:
                    if self.produced >= len(self.pairs):
                        self.problems.append((round(self.now(), 3),
                                              f"ran out of room-nights after {self.produced} bookings; "
                                              "lower CHAOS_RATE or raise the inventory"))
                        self.producing = False
                        self.wake.notify_all()
                        return
                    room, night = self.pairs[self.produced]
                    every = self.args.keyless_every
                    keyless = every > 0 and (self.produced + 1) % every == 0
                    task = Task(self.produced, f"{self.args.room_prefix}{room}",
                                f"{self.args.user_prefix}{self.produced % self.args.users}",
                                (self.today + datetime.timedelta(days=night)).isoformat(), self.now(),
                                keyless)
                    self.produced += 1
                    self.keyless_started += keyless
                    self.fresh_waiting += 1
                    self.open_tasks += 1
                    heapq.heappush(self.heap, (self.now(), task.seq, task))
                    self.wake.notify()
                # Keep up with the rate: catch up (bounded by the cap) rather than drift.
                skipped = due_total - self.produced
                if skipped > 0 and self.fresh_waiting >= cap:
                    start += skipped / rate
            time.sleep(min(0.01, 1.0 / rate))

    def next_task(self):
        with self.lock:
            while True:
                if self.stop_workers:
                    return None
                if self.heap:
                    due = self.heap[0][0]
                    wait = due - self.now()
                    if wait <= 0:
                        _, _, task = heapq.heappop(self.heap)
                        if task.attempts == 0:
                            self.fresh_waiting -= 1
                        return task
                    self.wake.wait(min(wait, 0.1))
                else:
                    self.wake.wait(0.1)

    def reschedule(self, task, delay):
        with self.lock:
            heapq.heappush(self.heap, (self.now() + delay, task.seq, task))
            self.wake.notify()

    def finish(self, task, outcome):
        with self.lock:
            task.outcome = outcome
            self.final[outcome] += 1
            self.open_tasks -= 1

    def work(self):
        args = self.args
        client = Client(self.host, self.port, args.client_timeout)
        headers_base = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
        hang_after = args.request_timeout + 2.0
        while True:
            task = self.next_task()
            if task is None:
                client.close()
                return
            body = json.dumps({"room_name": task.room, "user_name": task.user, "date": task.date})
            headers = dict(headers_base)
            if task.key is not None:
                headers["Idempotency-Key"] = task.key
            task.attempts += 1
            sent = self.now()
            sent_wall = time.time()
            try:
                status, headers_in, data = client.request("POST", "/book", body, headers)
            except (socket.timeout, TimeoutError):
                status, label = None, "client timeout"
            except (OSError, http.client.HTTPException) as error:
                status, label = None, f"connection error ({type(error).__name__})"
            done = self.now()
            latency = done - sent
            with self.lock:
                self.latencies.append(latency)
                self.max_latency = max(self.max_latency, latency)
            if latency > hang_after:
                with self.lock:
                    self.hangs += 1
                self.problem(f"an answer took {latency:.1f} s (request timeout {args.request_timeout:.0f} s): "
                             f"{task.who()}, status {status}")
            if status is None:
                task.unanswered = task.key is None
                with self.lock:
                    self.statuses[label] += 1
                    self.events.append((done, label))
                self.problem(f"{label}; retried " + ("without a key" if task.key is None else "with the same key"))
                self.retry_or_give_up(task, random.uniform(0.2, 0.5))
                continue
            code = None
            if status >= 400:
                try:
                    code = json.loads(data).get("code")
                except (ValueError, AttributeError):
                    code = None
            if status == 201:
                replayed = headers_in.get("idempotent-replayed") == "true"
                try:
                    booking_id = json.loads(data)["id"]
                except (ValueError, KeyError, TypeError):
                    booking_id = None
                with self.lock:
                    self.statuses["201 replayed" if replayed else "201"] += 1
                    self.done_201.append(done)
                    if booking_id is not None:
                        self.acks.append((task.key, task.room, task.date, booking_id, round(done, 4),
                                          replayed, task.attempts, task.user))
                if booking_id is None:
                    self.problem(f"a 201 without an id: {data[:200]!r}")
                self.finish(task, "201")
            elif status == 503:
                # Without a key, a 503 leaves the client not knowing whether the
                # night was booked (the statement may have committed just before
                # PostgreSQL went away); it asks again, as such a client would.
                task.unanswered = task.key is None
                retry_after = headers_in.get("retry-after")
                try:
                    pause = float(retry_after)
                except (TypeError, ValueError):
                    pause = 1.0
                    with self.lock:
                        self.missing_retry_after += 1
                    self.problem(f"a 503 without a valid Retry-After ({retry_after!r})")
                with self.lock:
                    self.statuses["503"] += 1
                    self.events.append((done, "503"))
                # Honour Retry-After, with jitter so that retries spread out.
                self.retry_or_give_up(task, pause * random.uniform(1.0, 1.3))
            elif status == 409 and code == "idempotency_key_in_use":
                with self.lock:
                    self.statuses["409 key in use"] += 1
                    self.events.append((done, "409 key in use"))
                self.retry_or_give_up(task, random.uniform(0.1, 0.3))
            elif status == 409 and code == "room_already_booked" and task.unanswered:
                # Keyless, after an unanswered attempt: that attempt booked the
                # night. The SQL checks confirm that it is booked exactly once.
                with self.lock:
                    self.statuses["409 room taken after unanswered"] += 1
                    self.events.append((done, "409 room taken after unanswered"))
                    self.lost_answers.append((task.room, task.date, task.user, sent_wall))
                self.finish(task, "409-after-unanswered")
            elif status == 409 and code == "room_already_booked":
                with self.lock:
                    self.statuses["409 room taken"] += 1
                    self.events.append((done, "409 room taken"))
                # Every room-night is booked by one task only: a conflict means an
                # earlier attempt of this very key booked it and the retry did not
                # replay that answer (or something else booked it).
                self.problem(f"409 room_already_booked for {task.room} {task.date} on attempt "
                             f"{task.attempts} ({task.who()}): "
                             + ("a night booked twice or by another" if task.key is None
                                else "a lost acknowledgement"))
                self.finish(task, "409-conflict")
            elif status >= 500:
                task.unanswered = task.key is None
                with self.lock:
                    self.statuses[str(status)] += 1
                    self.events.append((done, str(status)))
                self.problem(f"{status} for {task.who()}: {data[:300]!r}")
                # An idempotent retry is still safe; keep going to a final answer.
                self.retry_or_give_up(task, random.uniform(0.5, 1.0))
            else:
                with self.lock:
                    self.statuses[f"{status} {code or ''}".strip()] += 1
                    self.events.append((done, str(status)))
                self.problem(f"unexpected {status} for {task.who()}: {data[:300]!r}")
                self.finish(task, "other")

    def retry_or_give_up(self, task, delay):
        if self.now() - task.created > self.args.task_deadline:
            self.problem(f"gave up on {task.who()} ({task.room} {task.date}) after "
                         f"{task.attempts} attempts")
            self.finish(task, "gave-up")
        else:
            self.reschedule(task, delay)

    # -- PostgreSQL watcher: pg_isready and the postmaster's pid
    def read_pid(self):
        try:
            with open(self.args.pid_file) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def poll(self):
        while not self.poll_stop:
            # The probe's start: a server found accepting was accepting by its end,
            # so "back" taken at the start errs towards a longer back -> 201.
            t = self.now()
            if self.args.service_pid and not os.path.exists(f"/proc/{self.args.service_pid}"):
                if not self.service_dead:
                    self.problem(f"the service (pid {self.args.service_pid}) is gone")
                self.service_dead = True
            pid = self.read_pid()
            try:
                rc = subprocess.run(["pg_isready", "-q", "-h", self.args.pg_host, "-t", "2"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=5).returncode
            except subprocess.TimeoutExpired:
                rc = 99
            with self.lock:
                if (pid, rc) != self.pg_state:
                    self.pg_state = (pid, rc)
                    self.pg_timeline.append((round(t, 3), pid, rc))
                if self.t_fault is not None:
                    if self.t_down is None and (rc != 0 or pid != self.old_pid):
                        self.t_down = t
                    # Back: a new postmaster that accepts connections.
                    if self.t_back is None and rc == 0 and pid is not None and pid != self.old_pid:
                        self.t_back = t
                        self.new_pid = pid
            time.sleep(self.args.poll_interval)

    def first_201_after(self, t):
        with self.lock:
            later = [d for d in self.done_201 if d >= t]
        return min(later) if later else None

    def run(self):
        args = self.args
        threads = [threading.Thread(target=self.produce, daemon=True),
                   threading.Thread(target=self.poll, daemon=True)]
        workers = [threading.Thread(target=self.work, daemon=True) for _ in range(args.workers)]
        for thread in threads + workers:
            thread.start()

        log(f"{args.name}: steady load, {args.rate:g} bookings/s, {args.workers} clients; "
            f"fault in {args.warmup:g} s")
        time.sleep(args.warmup)
        with self.lock:
            before = len(self.done_201)
        if before == 0:
            self.problem("no 201 before the fault: the load does not book")

        # -- the fault
        self.old_pid = self.read_pid()
        with self.lock:
            self.t_fault = self.now()
        log(f"{args.name}: {args.fault_label}: {args.fault_cmd}")
        fault_log = open(args.fault_log, "ab")
        fault = subprocess.Popen(["bash", "-c", args.fault_cmd], stdin=subprocess.DEVNULL,
                                 stdout=fault_log, stderr=subprocess.STDOUT)

        # -- PostgreSQL back
        limit = self.t_fault + args.max_outage
        while self.now() < limit and self.t_back is None and not self.service_dead:
            time.sleep(0.02)
        if self.t_back is None and not self.service_dead:
            self.problem(f"PostgreSQL was not back (a new postmaster accepting connections) "
                         f"{args.max_outage:g} s after the fault")
        else:
            log(f"{args.name}: PostgreSQL back after {self.t_back - self.t_fault:.2f} s "
                f"(postmaster {self.old_pid} -> {self.new_pid})")

        # -- the first 201 after that
        first = None
        if self.t_back is not None:
            limit = self.t_back + args.max_recovery
            while self.now() < limit and not self.service_dead:
                first = self.first_201_after(self.t_back)
                if first is not None:
                    break
                time.sleep(0.02)
            if first is None and not self.service_dead:
                self.problem(f"no 201 within {args.max_recovery:g} s of PostgreSQL being back")
            else:
                log(f"{args.name}: first 201 {first - self.t_back:.2f} s after PostgreSQL was back")

        # -- steady load again for a while, then drain
        settle_from = first if first is not None else self.now()
        while self.now() < settle_from + args.after and not self.service_dead:
            time.sleep(0.05)
        with self.lock:
            self.producing = False
            t_stop = self.now()
        log(f"{args.name}: load stopped at {t_stop:.1f} s; waiting for every booking's final answer")
        limit = self.now() + args.drain
        while self.now() < limit and not self.service_dead:
            with self.lock:
                if self.open_tasks == 0:
                    break
            time.sleep(0.05)
        with self.lock:
            self.stop_workers = True
            self.wake.notify_all()
            unresolved = self.open_tasks
        if unresolved and not self.service_dead:
            self.problem(f"{unresolved} bookings had no final answer {args.drain:g} s after the load stopped")
        for worker in workers:
            worker.join(timeout=args.client_timeout + 5)

        try:
            fault_rc = fault.wait(timeout=max(1.0, limit - self.now()) + 30)
        except subprocess.TimeoutExpired:
            fault.kill()
            fault_rc = fault.wait()
            self.problem("the fault command did not finish")
        fault_log.close()
        if fault_rc != 0:
            self.problem(f"the fault command exited with {fault_rc} (see {args.fault_log})")
        self.poll_stop = True

        return self.summary(first, t_stop, unresolved, fault_rc)

    def summary(self, first, t_stop, unresolved, fault_rc):
        args = self.args
        t_fault, t_back = self.t_fault, self.t_back
        before = [d for d in self.done_201 if d < t_fault]
        last_before = max(before) if before else None
        window = max(min(args.warmup, 5.0), 0.1)
        warm_rate = len([d for d in before if d >= t_fault - window]) / window
        after_from = first if first is not None else t_stop
        after_window = [d for d in self.done_201 if after_from + 1.0 <= d < t_stop]
        after_rate = len(after_window) / max(t_stop - after_from - 1.0, 1e-9) if t_stop > after_from + 1.0 else None
        # 201s per 0.5 s from 2 s before the fault to 2 s after the first 201 after it.
        timeline = []
        if t_fault is not None:
            end = (first if first is not None else self.now()) + 2.0
            t = t_fault - 2.0
            while t < end:
                n = sum(1 for d in self.done_201 if t <= d < t + 0.5)
                n503 = sum(1 for d, label in self.events if t <= d < t + 0.5 and label == "503")
                timeline.append([round(t - t_fault, 1), n, n503])
                t += 0.5
        lat = sorted(self.latencies)

        def pct(q):
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 4) if lat else None

        r = lambda x: None if x is None else round(x, 3)  # noqa: E731
        doc = {
            "name": args.name,
            "server": args.server,
            "fault": args.fault_label,
            "fault_command": args.fault_cmd,
            "rate": args.rate,
            "workers": args.workers,
            "warmup_s": args.warmup,
            "after_s": args.after,
            "bookings_started": self.produced,
            "final": dict(self.final),
            "unresolved": unresolved,
            "attempts": dict(self.statuses),
            "requests": sum(self.statuses.values()),
            "latency_p50_s": pct(0.5),
            "latency_p99_s": pct(0.99),
            "latency_max_s": r(self.max_latency),
            "hangs": self.hangs,
            "missing_retry_after": self.missing_retry_after,
            "rate_201_before_per_s": round(warm_rate, 1),
            "rate_201_after_per_s": None if after_rate is None else round(after_rate, 1),
            "fault_at_s": r(t_fault),
            "fault_exit": fault_rc,
            "postmaster_before": self.old_pid,
            "postmaster_after": self.new_pid,
            "pg_down_seen_after_s": r(None if self.t_down is None else self.t_down - t_fault),
            "pg_back_after_s": r(None if t_back is None else t_back - t_fault),
            "first_201_after_back_s": r(None if first is None or t_back is None else first - t_back),
            "first_201_after_fault_s": r(None if first is None else first - t_fault),
            "gap_without_201_s": r(None if first is None or last_before is None else first - last_before),
            "timeline": timeline,
            "pg_timeline": self.pg_timeline,
            "keyless_every": args.keyless_every,
            "keyless_started": self.keyless_started,
            "keyless_acknowledged": sum(1 for a in self.acks if a[0] is None),
            "keyless_lost_answers": len(self.lost_answers),
            "acknowledged": len(self.acks),
            "acknowledged_after_retry": sum(1 for a in self.acks if a[6] > 1),
            "replayed": sum(1 for a in self.acks if a[5]),
        }
        return doc


SQL_CHECKS = r"""
\set ON_ERROR_STOP 1
create temporary table acked (key text, room text, night date, id uuid, user_name text);
copy acked from stdin;
{rows}
\.
-- keyless bookings whose answer was lost: an attempt went unanswered, the retry found the night taken
create temporary table lost (room text, night date, user_name text, retried_at double precision);
copy lost from stdin;
{lost}
\.
create temporary table checks as
with phase_bookings as (
    select b.id, r.name as room, lower(b.stay) as night, b.stay, b.status, u.name as user_name, b.created_at
    from bookings b join rooms r on r.id = b.room_id
    join users u on u.id = b.user_id
    join hotels h on h.id = r.hotel_id and h.is_default
    where starts_with(r.name, :'prefix')
)
select
    (select count(*) from acked) as acknowledged,
    (select count(distinct id) from acked) as acknowledged_ids,
    (select count(distinct key) from acked) as acknowledged_keys,
    -- an acknowledged booking that is not in the table
    (select count(*) from acked a where not exists (select 1 from bookings b where b.id = a.id)) as missing,
    -- ... or is there with another room, night or user
    (select count(*) from acked a join phase_bookings p on p.id = a.id
     where p.room <> a.room or p.stay <> daterange(a.night, a.night + 1) or p.user_name <> a.user_name) as wrong,
    -- a booking's room-night booked more than once (cancelled ones included)
    (select count(*) from (select room, night from acked union all select room, night from lost) a
     where (select count(*) from phase_bookings p
            where p.room = a.room and p.stay = daterange(a.night, a.night + 1)) > 1) as doubled,
    -- two different ids acknowledged for one key
    (select count(*) from (select key from acked where key is not null
                           group by key having count(distinct id) > 1) k) as key_two_ids,
    -- a booking of this phase's rooms that no 201 acknowledged, other than a
    -- keyless one whose answer was lost
    (select count(*) from phase_bookings p
     where not exists (select 1 from acked a where a.id = p.id)
       and not exists (select 1 from lost l
                       where l.room = p.room and l.night = p.night and l.user_name = p.user_name)) as unacknowledged,
    -- a keyless booking whose retry was told the night is taken, without a booking
    -- of that night for that user made before the retry was sent
    (select count(*) from lost l
     where not exists (select 1 from phase_bookings p
                       where p.room = l.room and p.night = l.night and p.user_name = l.user_name
                         and p.created_at < to_timestamp(l.retried_at))) as lost_not_booked,
    (select count(*) from acked where key is null) as keyless_acknowledged,
    (select count(*) from phase_bookings) as phase_bookings,
    -- the key's record: there, a 201, holding the acknowledged id
    (select count(*) from acked a
     where a.key is not null
       and not exists (select 1 from idempotency_keys k
                       where k.key = a.key and k.status = 201
                         and convert_from(k.body, 'UTF8')::json ->> 'id' = a.id::text)) as key_record_wrong,
    (select count(*) from bookings a
     join bookings b on b.room_id = a.room_id and a.id < b.id and a.stay && b.stay
     where a.status not in ('cancelled', 'no_show')
       and b.status not in ('cancelled', 'no_show')) as overlaps,
    (select count(*) from bookings) as all_bookings;
select row_to_json(c) from checks c;
"""


def sql_checks(args, acks, lost):
    null = "\\N"  # COPY's NULL: the key of a keyless booking
    tables = {
        "{rows}": [f"{null if a[0] is None else a[0]}\t{a[1]}\t{a[2]}\t{a[3]}\t{a[7]}" for a in acks],
        "{lost}": [f"{room}\t{date}\t{user}\t{retried_at:.6f}" for room, date, user, retried_at in lost],
    }
    script = SQL_CHECKS
    for placeholder, rows in tables.items():
        script = script.replace(placeholder + "\n", "".join(row + "\n" for row in rows))
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    if args.db_password_file:
        with open(args.db_password_file) as f:
            env["PGPASSWORD"] = f.read().strip()
    result = subprocess.run(["psql", args.db_url, "-X", "-q", "-At", "-v", f"prefix={args.room_prefix}",
                             "-f", "-"], input=script.encode(), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if result.returncode != 0:
        return None, result.stderr.decode(errors="replace")
    lines = [l for l in result.stdout.decode().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]), None


def cmd_phase(args):
    phase = Phase(args)
    doc = phase.run()
    log(f"{args.name}: checking with SQL")
    checks, error = sql_checks(args, phase.acks, phase.lost_answers)
    doc["sql"] = checks
    failures = [text for _, text in phase.problems]
    if error:
        failures.append(f"the SQL checks failed: {error.strip()}")
    else:
        for field, what in [
            ("missing", "acknowledged bookings missing from the table"),
            ("wrong", "acknowledged bookings with another room, night or user in the table"),
            ("doubled", "room-nights of acknowledged or lost answers booked more than once"),
            ("key_two_ids", "keys acknowledged with two different ids"),
            ("unacknowledged", "bookings in the table that no 201 acknowledged"),
            ("lost_not_booked", "keyless bookings told the night is taken after an unanswered attempt, "
                                "without a booking of that night for their user made before the retry"),
            ("key_record_wrong", "acknowledged keys without their idempotency record"),
            ("overlaps", "overlapping live bookings"),
        ]:
            if checks[field]:
                failures.append(f"{checks[field]} {what}")
        if checks["acknowledged_ids"] != checks["acknowledged"]:
            failures.append(f"{checks['acknowledged']} acknowledgements but {checks['acknowledged_ids']} distinct ids")
    five_hundreds = {k: v for k, v in doc["attempts"].items() if k[:1] == "5" and k != "503"}
    if five_hundreds:
        failures.append(f"5xx other than 503: {five_hundreds}")
    if doc["first_201_after_back_s"] is not None and doc["first_201_after_back_s"] > args.recovery_target:
        failures.append(f"the first 201 came {doc['first_201_after_back_s']:.2f} s after PostgreSQL was back "
                        f"(target under {args.recovery_target:g} s)")
    # Identical problems (say one per 500) are listed once, with a count.
    seen = Counter(failures)
    doc["failures"] = [f"{text} (x{n})" if n > 1 else text for text, n in seen.items()]
    doc["ok"] = not failures
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(args.out.replace(".json", ".acks.tsv"), "w") as f:
        for a in phase.acks:
            f.write("\t".join(str(x) for x in a) + "\n")
    status = "ok" if doc["ok"] else "FAILED"
    log(f"{args.name}: {status}: {doc['acknowledged']} acknowledged, attempts {doc['attempts']}, "
        f"back -> first 201 {doc['first_201_after_back_s']} s")
    for text in doc["failures"][:20]:
        log(f"{args.name}: FAIL: {text}")


def cmd_selftest(args):
    host, port = split_url(args.url)
    client = Client(host, port, 30)
    args.rooms, args.users = 1, 2
    cmd_setup(args)
    night = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=5)).isoformat()
    room, user, other = f"{args.room_prefix}0", f"{args.user_prefix}0", f"{args.user_prefix}1"
    before = time.time()
    status, _, data = client.request(
        "POST", "/book", json.dumps({"room_name": room, "user_name": user, "date": night}),
        {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"})
    after = time.time()
    client.close()
    if status != 201:
        sys.exit(f"chaos_client selftest: POST /book answered {status}: {data[:300]!r}")
    booking = json.loads(data)["id"]
    ack = lambda who: (None, room, night, booking, 0.0, False, 1, who)  # noqa: E731
    lost = lambda who, at: (room, night, who, at)  # noqa: E731
    cases = [
        ("the booking acknowledged", [ack(user)], [], {}),
        ("acknowledged for another user", [ack(other)], [], {"wrong": 1}),
        ("nobody acknowledged it", [], [], {"unacknowledged": 1}),
        ("its answer lost, retried after it", [], [lost(user, after + 1)], {}),
        ("its answer lost, retried before it was booked", [], [lost(user, before - 1)], {"lost_not_booked": 1}),
        ("another user's answer lost", [], [lost(other, after + 1)], {"lost_not_booked": 1, "unacknowledged": 1}),
    ]
    fields = ("missing", "wrong", "doubled", "unacknowledged", "lost_not_booked", "key_record_wrong", "overlaps")
    failed = 0
    for name, acks, losts, expected in cases:
        checks, error = sql_checks(args, acks, losts)
        if error:
            sys.exit(f"chaos_client selftest: the SQL checks failed: {error.strip()}")
        got = {k: checks[k] for k in fields if checks[k]}
        ok = got == expected
        failed += not ok
        verdict = "as expected" if ok else f"expected {expected or 'nothing found'}"
        log(f"selftest: {name}: {got or 'nothing found'} ({verdict})")
    sys.exit(1 if failed else 0)


# --- Report ----------------------------------------------------------------------


def every_nth(n):
    return {1: "every", 2: "every second", 3: "every third", 4: "every fourth"}.get(n, f"every {n}th")


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def cmd_report(args):
    phases = [json.load(open(p)) for p in args.phases]
    extra = json.load(open(args.extra)) if args.extra else {}
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    failures = [f"{p['name']}: {t}" for p in phases for t in p["failures"]]
    failures += extra.get("failures", [])
    ok = not failures and len(phases) == args.expected_phases
    if len(phases) != args.expected_phases:
        failures.append(f"{len(phases)} of {args.expected_phases} phases ran")
    doc = {"date": now, "machine": args.machine, "command": args.command, "ok": ok,
           "recovery_target_s": args.recovery_target, "phases": phases, "checks": extra,
           "failures": failures}
    md = [f"# Chaos run (SPEC section 7), {now}", "",
          f"- Machine: {args.machine}",
          f"- Command: `{args.command}`",
          f"- Load: `wrk/chaos_client.py`, {phases[0]['rate'] if phases else '?'} bookings/s of distinct "
          f"room-nights from {phases[0]['workers'] if phases else '?'} client threads, each with its own "
          "`Idempotency-Key` (but the keyless ones below), retried with the same key on 503 (after `Retry-After`), "
          "409 `idempotency_key_in_use`, connection errors and timeouts"
          + (f"; {every_nth(phases[0]['keyless_every'])} booking without a key (the hot path: "
             "`POST /book` through the booking connections and their queue), retried on the same "
             "faults; its retry may find the night booked by the attempt whose answer was lost"
             if phases and phases[0].get("keyless_every") else ""),
          "- back: PostgreSQL accepts connections again (`pg_isready`) with a new postmaster pid; "
          "**back → 201**: from then to the first 201 answered (the figure; target under "
          f"{args.recovery_target:g} s); gap: from the last 201 before the fault to the first after it",
          "",
          "| phase | server | fault | requests | 201 | 201 replayed | 503 | 500 | other | max latency s | PG back after s | **back → 201 s** | gap s | acknowledged | missing | doubled | unacknowledged | overlaps | result |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in phases:
        a = p["attempts"]
        s = p.get("sql") or {}
        n500 = sum(v for k, v in a.items() if k[:1] == "5" and k != "503")
        other = sum(v for k, v in a.items() if k not in ("201", "201 replayed", "503") and k[:1] != "5")
        md.append(
            f"| {p['name']} | {p['server']} | {p['fault']} | {p['requests']} | {a.get('201', 0)} | "
            f"{a.get('201 replayed', 0)} | {a.get('503', 0)} | {n500} | {other} | {fmt(p['latency_max_s'])} | "
            f"{fmt(p['pg_back_after_s'])} | **{fmt(p['first_201_after_back_s'])}** | {fmt(p['gap_without_201_s'])} | "
            f"{p['acknowledged']} | {s.get('missing', '-')} | {s.get('doubled', '-')} | "
            f"{s.get('unacknowledged', '-')} | {s.get('overlaps', '-')} | {'ok' if p['ok'] else 'FAILED'} |")
    md.append("")
    md += ["Per phase:", ""]
    for p in phases:
        a = p["attempts"]
        other = {k: v for k, v in a.items() if k not in ("201", "201 replayed", "503")}
        s = p.get("sql") or {}
        md.append(
            f"- {p['name']}: `{p['fault_command']}`; postmaster {p['postmaster_before']} → "
            f"{p['postmaster_after']}; 201/s before {p['rate_201_before_per_s']}, after "
            f"{p['rate_201_after_per_s']}; latency p50 {fmt(p['latency_p50_s'], 3)} s, p99 "
            f"{fmt(p['latency_p99_s'], 3)} s; {p['acknowledged_after_retry']} bookings acknowledged "
            f"after a retry ({p['replayed']} of them replayed); other answers: {other or 'none'}; "
            f"bookings in the phase's rooms {s.get('phase_bookings', '-')}, "
            f"idempotency records wrong {s.get('key_record_wrong', '-')}; keyless: "
            f"{p.get('keyless_started', 0)} started, {p.get('keyless_acknowledged', 0)} acknowledged, "
            f"{p.get('keyless_lost_answers', 0)} answers lost (the night booked, the retry told it is taken; "
            f"not booked though told so: {s.get('lost_not_booked', '-')})")
    md.append("")
    if extra.get("notes"):
        md += ["Service checks:", ""] + [f"- {n}" for n in extra["notes"]] + [""]
    md += ["Result: **" + ("all checks passed" if ok else "FAILED") + "**", ""]
    if failures:
        md += [f"- {f}" for f in failures[:50]] + [""]
    text = "\n".join(md)
    for name in args.name:
        with open(os.path.join(args.results, f"{name}.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.results, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    print(text)
    print("Written: " + ", ".join(f"wrk/results/{name}.{{md,json}}" for name in args.name))
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup")
    s.add_argument("--url", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--room-prefix", required=True)
    s.add_argument("--rooms", type=int, default=50)
    s.add_argument("--user-prefix", default="chaos-u")
    s.add_argument("--users", type=int, default=10)

    p = sub.add_parser("phase")
    p.add_argument("--name", required=True)
    p.add_argument("--server", required=True, help="managed or external (for the report)")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--room-prefix", required=True)
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--user-prefix", default="chaos-u")
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--nights", type=int, default=700, help="nights 1..N ahead (UTC)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keyless-every", type=int, default=2,
                   help="every Nth booking without an Idempotency-Key (0: none)")
    p.add_argument("--rate", type=float, default=200.0, help="new bookings per second")
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the fault")
    p.add_argument("--after", type=float, default=10.0, help="seconds of load after the first 201 after it")
    p.add_argument("--max-outage", type=float, default=90.0)
    p.add_argument("--max-recovery", type=float, default=30.0)
    p.add_argument("--drain", type=float, default=60.0)
    p.add_argument("--task-deadline", type=float, default=120.0)
    p.add_argument("--request-timeout", type=float, default=10.0, help="the service's REQUEST_TIMEOUT")
    p.add_argument("--client-timeout", type=float, default=20.0)
    p.add_argument("--recovery-target", type=float, default=5.0)
    p.add_argument("--fault-label", required=True)
    p.add_argument("--fault-cmd", required=True)
    p.add_argument("--fault-log", required=True)
    p.add_argument("--pg-host", required=True, help="the socket directory, for pg_isready -h")
    p.add_argument("--pid-file", required=True, help="the cluster's postmaster.pid")
    p.add_argument("--poll-interval", type=float, default=0.05)
    p.add_argument("--service-pid", type=int, help="stop early when this process is gone")
    p.add_argument("--db-url", required=True)
    p.add_argument("--db-password-file")
    p.add_argument("--out", required=True)

    t = sub.add_parser("selftest")
    t.add_argument("--url", required=True)
    t.add_argument("--token", required=True)
    t.add_argument("--room-prefix", required=True, help="a prefix no phase uses")
    t.add_argument("--user-prefix", default="chaos-u")
    t.add_argument("--db-url", required=True)
    t.add_argument("--db-password-file")

    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--name", action="append", required=True, help="file name without .md/.json")
    r.add_argument("--machine", required=True)
    r.add_argument("--command", dest="command_line", required=True)
    r.add_argument("--recovery-target", type=float, default=5.0)
    r.add_argument("--expected-phases", type=int, default=3)
    r.add_argument("--extra", help="a JSON file of the script's own checks: {notes: [...], failures: [...]}")
    r.add_argument("phases", nargs="*")

    args = parser.parse_args()
    if args.command == "setup":
        cmd_setup(args)
    elif args.command == "selftest":
        cmd_selftest(args)
    elif args.command == "phase":
        cmd_phase(args)
    else:
        args.command = args.command_line
        sys.exit(cmd_report(args))


if __name__ == "__main__":
    main()
