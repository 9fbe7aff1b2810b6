#!/usr/bin/env python3
"""The attackers of wrk/abuse.sh, and its helpers (Python 3 standard library only).

    abuse_attack.py setup     --target H:P --token T [--hotels N]   inventory for the search
    abuse_attack.py auth      --target H:P ...   flood POST /auth/token with wrong passwords
    abuse_attack.py slowloris --target H:P ...   connections that send a header a byte at a time
    abuse_attack.py search    --target H:P ...   maximal public searches (longest stay, 100 a page)
    abuse_attack.py probe     --target H:P ...   do slow or silent connections outlive the
                                                 header-read timeout?
    abuse_attack.py canary    --target H:P ...   a new connection every --every seconds
    abuse_attack.py cpu       NAME=PID[,PID..] ...  CPU seconds used so far (JSON), per group

(wrk/abuse_report.py turns the figures into the report.)

Every attack is bounded: a fixed number of connections, and a run time
(--duration) after which it stops by itself; SIGTERM stops it at once, SIGUSR1
starts its counters afresh (wrk/abuse.sh sends it when the measured window
starts). On stopping it writes its figures as JSON to --out. It only talks to
the loopback interface (127.0.0.0/8).
"""

import argparse
import asyncio
import datetime
import http.client
import ipaddress
import json
import os
import random
import re
import resource
import signal
import sys
import time

# ---------------------------------------------------------------------------
# Shared pieces


def loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"abuse_attack.py: {host} is not a loopback address; this tool only attacks 127.0.0.0/8")
    return host


def split_target(target):
    host, _, port = target.rpartition(":")
    return loopback(host or "127.0.0.1"), int(port)


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


class Counters:
    """Answers by status, socket errors and latencies; reset() starts afresh."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.since = time.monotonic()
        self.status = {}
        self.errors = {}
        self.latencies = []

    def answer(self, status, latency):
        self.status[str(status)] = self.status.get(str(status), 0) + 1
        self.latencies.append(latency)

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self):
        elapsed = time.monotonic() - self.since
        answers = sum(self.status.values())
        return {
            "seconds": round(elapsed, 2),
            "answers": answers,
            "per_second": round(answers / elapsed, 1) if elapsed > 0 else None,
            "status": dict(sorted(self.status.items())),
            "share_pct": {k: round(100 * v / answers, 2) for k, v in sorted(self.status.items())} if answers else {},
            "errors": self.errors,
            "p50_ms": ms(percentile(self.latencies, 0.5)),
            "p99_ms": ms(percentile(self.latencies, 0.99)),
            "max_ms": ms(max(self.latencies) if self.latencies else None),
        }


async def read_response(reader):
    """One HTTP/1.1 answer: (status, wants_close). Reads the body (length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    close = b"\r\nconnection: close" in lower
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if m:
        n = int(m.group(1))
        if n:
            await reader.readexactly(n)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status >= 200 and status not in (204, 304):
        await reader.read()
        close = True
    return status, close


class Runner:
    """Runs workers until the duration ends or SIGTERM; SIGUSR1 resets the counters."""

    def __init__(self, args):
        self.args = args
        self.stop = asyncio.Event()
        self.counters = Counters()
        self.window_started = None

    def on_reset(self):
        self.counters.reset()
        self.window_started = time.monotonic()
        self.reset_extra()

    def reset_extra(self):
        pass

    def ready(self):
        if self.args.ready_file:
            with open(self.args.ready_file, "w") as f:
                f.write("ready\n")

    async def main(self):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.on_reset)
        tasks = self.start()
        stopped_by = "signal"
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=self.args.duration)
        except asyncio.TimeoutError:
            stopped_by = "duration"
        result = self.result()
        result["stopped_by"] = stopped_by
        with open(self.args.out, "w") as f:
            json.dump(result, f, indent=1)
        # Workers leave their loops on `stop`, also when a cancellation gets lost
        # (asyncio.wait_for can swallow one before Python 3.12).
        self.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=3)
        self.cleanup()
        # The figures are written; a worker that still holds on is not waited for
        # (the kernel closes its sockets).
        sys.stderr.flush()
        os._exit(0)

    def cleanup(self):
        pass


# ---------------------------------------------------------------------------
# (a) Sign-in flood


class AuthFlood(Runner):
    """`conns` keep-alive connections post wrong passwords to /auth/token as fast
    as the answers come (or at most --rate a second, all together). With
    --sources N, the connections come from N loopback addresses (127.0.0.1,
    127.0.1.1, ...), and a connection that gets 429 moves to the next address:
    a distributed flood, beyond what a per-address limit can stop."""

    def start(self):
        a = self.args
        self.host, self.port = split_target(a.target)
        self.sources = source_addresses(a.sources)
        self.next_slot = time.monotonic()
        self.interval = 1.0 / a.rate if a.rate > 0 else 0.0
        self.sent = 0
        self.ready()
        return [asyncio.create_task(self.worker(i)) for i in range(a.conns)]

    async def pace(self):
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def worker(self, i):
        a, c = self.args, self.counters
        source = i
        while not self.stop.is_set():
            src = self.sources[source % len(self.sources)]
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, local_addr=(src, 0) if src != "127.0.0.1" else None),
                    timeout=10)
            except (OSError, asyncio.TimeoutError) as e:
                self.counters.error("connect")
                await asyncio.sleep(0.1)
                continue
            try:
                while not self.stop.is_set():
                    await self.pace()
                    self.sent += 1
                    body = json.dumps({"name": f"user{random.randrange(50)}",
                                       "password": f"wrong-password-{self.sent}"}).encode()
                    writer.write(b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                    t0 = time.monotonic()
                    status, close = await asyncio.wait_for(read_response(reader), timeout=30)
                    c.answer(status, time.monotonic() - t0)
                    if status == 429 and len(self.sources) > 1:
                        source += a.conns  # this address is spent: the next one
                        break
                    if close:
                        break
            except asyncio.TimeoutError:
                c.error("timeout")
            except (OSError, asyncio.IncompleteReadError, ValueError):
                c.error("read")
            finally:
                writer.close()

    def result(self):
        return {"attack": "auth", "connections": self.args.conns, "sources": len(self.sources),
                "rate_cap": self.args.rate or None, **self.counters.summary()}


def source_addresses(n):
    """127.0.0.1, then 127.0.1.1, 127.0.1.2, ...: distinct loopback addresses."""
    out = ["127.0.0.1"]
    k = 0
    while len(out) < n:
        out.append(f"127.0.{1 + k // 250}.{1 + k % 250}")
        k += 1
    return out


# ---------------------------------------------------------------------------
# (b) Slow-loris

# A request whose header never ends: after the prefix, one more byte of a
# header value at a time.
CLASSIC = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-loris\r\nX-Slow: "
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def next_byte(mode, k):
    """The k-th byte a connection of this mode sends, or None (send nothing now)."""
    if mode == "classic":
        return CLASSIC[k:k + 1] if k < len(CLASSIC) else b"a"
    if mode == "preface":
        # The HTTP/2 connection preface, a byte at a time, then stop.
        return PREFACE[k:k + 1] or None
    return None  # silent


class SlowLoris(Runner):
    """`conns` connections, each sending a byte every --interval seconds (mode
    classic: an endless request header; preface: the HTTP/2 preface; silent:
    nothing at all). A connection the server closes is counted with its
    lifetime and, with --reconnect, opened again."""

    def start(self):
        a = self.args
        self.host, self.port = split_target(a.target)
        self.modes = a.mode.split(",")
        self.open = {}  # id -> time connected
        self.max_open = 0
        self.reset_extra()
        self.pending_first = a.conns
        self.first_done = asyncio.Event()
        tasks = [asyncio.create_task(self.worker(i)) for i in range(a.conns)]
        tasks.append(asyncio.create_task(self.signal_ready()))
        return tasks

    def reset_extra(self):
        self.lifetimes = []
        self.outcomes = {}
        self.answered = {}
        self.opened = 0
        self.connect_failures = 0
        self.connect_errors = {}
        self.connect_seconds = []
        self.window_max_open = len(getattr(self, "open", {}))

    async def signal_ready(self):
        try:
            await asyncio.wait_for(self.first_done.wait(), timeout=self.args.ready_timeout)
        except asyncio.TimeoutError:
            pass
        self.ready()

    def first_attempt_over(self):
        self.pending_first -= 1
        if self.pending_first == 0:
            self.first_done.set()

    async def worker(self, i):
        a = self.args
        mode = self.modes[i % len(self.modes)]
        # Spread the first connections over --ramp seconds.
        await asyncio.sleep(a.ramp * i / max(1, a.conns))
        first = True
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout=30)
            except (OSError, asyncio.TimeoutError) as e:
                self.connect_failures += 1
                kind = type(e).__name__
                self.connect_errors[kind] = self.connect_errors.get(kind, 0) + 1
                if first:
                    first = False
                    self.first_attempt_over()
                await asyncio.sleep(1)
                continue
            connected = time.monotonic()
            self.connect_seconds.append(connected - t0)
            self.opened += 1
            self.open[i] = connected
            self.max_open = max(self.max_open, len(self.open))
            self.window_max_open = max(self.window_max_open, len(self.open))
            if first:
                first = False
                self.first_attempt_over()
            k = 0
            outcome = None
            try:
                while not self.stop.is_set():
                    byte = next_byte(mode, k)
                    if byte:
                        writer.write(byte)
                        k += 1
                    wait = a.interval * random.uniform(0.8, 1.2)
                    try:
                        data = await asyncio.wait_for(reader.read(4096), timeout=wait)
                    except asyncio.TimeoutError:
                        continue
                    if not data:
                        outcome = "closed"
                        break
                    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                    key = m.group(1).decode() if m else "other"
                    self.answered[key] = self.answered.get(key, 0) + 1
                    outcome = "answered"
                    break
            except (ConnectionResetError, BrokenPipeError, OSError):
                outcome = "reset"
            finally:
                self.open.pop(i, None)
                writer.close()
            if outcome:
                self.lifetimes.append(time.monotonic() - connected)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if not a.reconnect:
                await self.stop.wait()
                return
            await asyncio.sleep(random.uniform(0.05, 0.3))

    def result(self):
        a = self.args
        now = time.monotonic()
        ages = [now - t for t in self.open.values()]
        lt = self.lifetimes
        return {
            "attack": "slowloris", "connections": a.conns, "mode": a.mode, "interval_s": a.interval,
            "reconnect": a.reconnect,
            "seconds": round(now - (self.window_started or now), 2) if self.window_started else None,
            "opened": self.opened, "connect_failures": self.connect_failures,
            "connect_errors": self.connect_errors,
            "connect_p99_ms": ms(percentile(self.connect_seconds, 0.99)),
            "open_at_end": len(ages), "max_open": self.max_open, "window_max_open": self.window_max_open,
            "open_at_end_oldest_s": round(max(ages), 1) if ages else None,
            "closed_by_server": len(lt), "outcomes": self.outcomes, "answered": self.answered,
            "lifetime_p50_s": round(percentile(lt, 0.5), 2) if lt else None,
            "lifetime_p90_s": round(percentile(lt, 0.9), 2) if lt else None,
            "lifetime_max_s": round(max(lt), 2) if lt else None,
        }


# ---------------------------------------------------------------------------
# (c) Maximal public searches


class SearchFlood(Runner):
    """`conns` keep-alive connections, each asking GET /hotels for the longest
    stay allowed (--nights), 1 guest, 100 a page, no city: every hotel."""

    def start(self):
        self.host, self.port = split_target(self.args.target)
        self.ready()
        return [asyncio.create_task(self.worker(i)) for i in range(self.args.conns)]

    async def worker(self, i):
        a, c = self.args, self.counters
        today = datetime.datetime.now(datetime.timezone.utc).date()
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout=10)
            except (OSError, asyncio.TimeoutError):
                c.error("connect")
                await asyncio.sleep(0.1)
                continue
            try:
                while not self.stop.is_set():
                    check_in = today + datetime.timedelta(days=random.randint(1, 300))
                    check_out = check_in + datetime.timedelta(days=a.nights)
                    path = f"/hotels?check_in={check_in}&check_out={check_out}&guests=1&per_page=100"
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                    t0 = time.monotonic()
                    status, close = await asyncio.wait_for(read_response(reader), timeout=30)
                    c.answer(status, time.monotonic() - t0)
                    if close:
                        break
            except asyncio.TimeoutError:
                c.error("timeout")
            except (OSError, asyncio.IncompleteReadError, ValueError):
                c.error("read")
            finally:
                writer.close()

    def result(self):
        return {"attack": "search", "connections": self.args.conns, "nights": self.args.nights,
                **self.counters.summary()}


# ---------------------------------------------------------------------------
# The canary: how long a newcomer waits


class Canary(Runner):
    """Every --every seconds a new connection asks GET /health once: the time
    to connect and to the answer, as a client arriving during the attack sees
    it (wrk's connections are opened once, at its start)."""

    def start(self):
        self.host, self.port = split_target(self.args.target)
        self.pending = set()
        self.inflight = {}
        self.reset_extra()
        self.ready()
        return [asyncio.create_task(self.ticker())]

    def reset_extra(self):
        self.connects = []

    async def ticker(self):
        pending = self.pending
        try:
            while not self.stop.is_set():
                task = asyncio.create_task(self.one())
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(self.args.every)
        finally:
            for task in list(pending):
                task.cancel()

    async def one(self):
        c = self.counters
        t0 = time.monotonic()
        self.inflight[id(asyncio.current_task())] = t0
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout=30)
            self.connects.append(time.monotonic() - t0)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, _ = await asyncio.wait_for(read_response(reader), timeout=30)
            c.answer(status, time.monotonic() - t0)
        except asyncio.TimeoutError:
            c.error("timeout")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            c.error("read")
        finally:
            self.inflight.pop(id(asyncio.current_task()), None)
            if writer:
                writer.close()

    def result(self):
        now = time.monotonic()
        return {"attack": "canary", "every_s": self.args.every, **self.counters.summary(),
                "connect_p99_ms": ms(percentile(self.connects, 0.99)),
                "waiting_at_end": len(self.inflight),
                "waiting_at_end_oldest_s": round(now - min(self.inflight.values()), 1) if self.inflight else None}


# ---------------------------------------------------------------------------
# The header-read timeout probe


async def probe(args):
    """Opens --per-kind connections of each kind on a quiet service, waits the
    header-read timeout plus --grace, and counts those the server still keeps:
      classic  a request header, a byte every second, never finished
      partial  a request line and one header at once, then nothing
      silent   nothing at all
      preface  the HTTP/2 preface, a byte every second
      idle     one whole request (GET /health, answered), then nothing
    Every kind ought to be closed by the header-read timeout."""
    host, port = split_target(args.target)
    kinds = ["classic", "partial", "silent", "preface", "idle"]
    state = {k: {"opened": 0, "connect_failures": 0, "closed": [], "answers": {}} for k in kinds}
    deadline = time.monotonic() + args.header_timeout + args.grace
    writers = []

    async def one(kind):
        st = state[kind]
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=10)
        except (OSError, asyncio.TimeoutError):
            st["connect_failures"] += 1
            return
        writers.append(writer)
        st["opened"] += 1
        t0 = time.monotonic()
        if kind == "partial":
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elif kind == "idle":
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                status, _ = await asyncio.wait_for(read_response(reader), timeout=5)
                st["answers"][str(status)] = st["answers"].get(str(status), 0) + 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                pass
            t0 = time.monotonic()  # idle from now on
        mode = {"classic": "classic", "preface": "preface"}.get(kind, "silent")
        k = 0
        while time.monotonic() < deadline:
            byte = next_byte(mode, k)
            if byte:
                try:
                    writer.write(byte)
                except OSError:
                    pass
                k += 1
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                st["closed"].append(time.monotonic() - t0)
                return
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            key = m.group(1).decode() if m else "other"
            st["answers"][key] = st["answers"].get(key, 0) + 1

    await asyncio.gather(*(one(k) for k in kinds for _ in range(args.per_kind)))
    for writer in writers:
        writer.close()
    out = {"header_timeout_s": args.header_timeout, "waited_s": args.header_timeout + args.grace, "kinds": {}}
    for kind, st in state.items():
        closed = st["closed"]
        out["kinds"][kind] = {
            "opened": st["opened"], "connect_failures": st["connect_failures"],
            "closed_by_server": len(closed), "still_open": st["opened"] - len(closed),
            "closed_after_s_max": round(max(closed), 2) if closed else None,
            "closed_after_s_min": round(min(closed), 2) if closed else None,
            "answers": st["answers"],
        }
    out["survivors"] = sum(k["still_open"] for k in out["kinds"].values())
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for kind, k in out["kinds"].items():
        print(f"    probe {kind:8s}: {k['opened']} opened, {k['closed_by_server']} closed by the server"
              f"{' after %.1f-%.1f s' % (k['closed_after_s_min'], k['closed_after_s_max']) if k['closed_by_server'] else ''}, "
              f"{k['still_open']} still open after {out['waited_s']:.0f} s"
              f"{' (answers %s)' % k['answers'] if k['answers'] else ''}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Set-up: an inventory for the search, through the API


def setup(args):
    """Creates --hotels hotels (city "Abuse City"), each with room types Single (1)
    and Family (4), --rooms rooms of each, rate plans Flexible and Saver, and a
    rate for every type, plan and night from today for 400 days. Prints the
    room ids for the bookings that wrk/abuse.sh adds with SQL."""
    host, port = split_target(args.target)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}

    def call(method, path, body=None, ok=(200, 201)):
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status not in ok:
            sys.exit(f"abuse_attack.py setup: {method} {path} answered {resp.status}: {data[:300]!r}")
        return json.loads(data) if data else None

    calls = 0
    for i in range(50):
        call("POST", "/rooms", {"name": f"ROOM{i}"}, ok=(201, 409))
        call("POST", "/users", {"name": f"user{i}"}, ok=(201, 409))
        calls += 2
    today = datetime.datetime.now(datetime.timezone.utc).date()
    for h in range(args.hotels):
        hotel = call("POST", "/hotels", {"name": f"Abuse hotel {h}", "city": "Abuse City",
                                         "timezone": ["UTC", "Europe/Paris", "Asia/Tokyo"][h % 3]})
        hid = hotel["id"]
        types = [call("POST", f"/hotels/{hid}/room-types", {"name": n, "capacity": c})["id"]
                 for n, c in (("Single", 1), ("Family", 4))]
        plans = [call("POST", f"/hotels/{hid}/rate-plans", {"name": n, "free_cancellation_hours": f})["id"]
                 for n, f in (("Flexible", 48), ("Saver", None))]
        calls += 5
        for t, tid in enumerate(types):
            for r in range(args.rooms):
                call("POST", "/rooms", {"name": f"T{t}-{r}", "hotel_id": hid, "room_type_id": tid})
                calls += 1
            for p, pid in enumerate(plans):
                for start, end in ((0, 200), (200, 400)):
                    call("PUT", f"/hotels/{hid}/rates", {
                        "room_type_id": tid, "rate_plan_id": pid,
                        "from": str(today + datetime.timedelta(days=start)),
                        "to": str(today + datetime.timedelta(days=end)),
                        "price": f"{60 + 40 * t + 10 * p + h}.00", "currency": "EUR"})
                    calls += 1
    print(f"{calls} calls", file=sys.stderr)


# ---------------------------------------------------------------------------
# CPU accounting


def cpu_seconds(pid, with_children):
    """utime + stime of a process (all its threads), plus, with_children, its
    live descendants and what its reaped children used."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # fields[0] is the state (field 3); utime is field 14, cutime 16.
        return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
                "cutime": int(fields[13]), "cstime": int(fields[14])}

    me = stat(pid)
    if me is None:
        return None
    total = me["utime"] + me["stime"]
    if with_children:
        total += me["cutime"] + me["cstime"]
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                s = stat(int(entry))
                if s:
                    children.setdefault(s["ppid"], []).append((int(entry), s))
        stack = [pid]
        while stack:
            for child, s in children.get(stack.pop(), []):
                total += s["utime"] + s["stime"]
                stack.append(child)
    return total / tick


def reaped_children_seconds(pid):
    """What the reaped children of a process used (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def cpu_main(specs):
    out = {"time": time.monotonic()}
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    idle = fields[3] + fields[4]
    out["machine_busy"] = (sum(fields[:8]) - idle) / tick
    out["machine_all"] = sum(fields[:8]) / tick
    # Interrupts (the loopback's packets, mostly) run outside any process's times.
    out["irq"] = (fields[5] + fields[6]) / tick
    out["steal"] = fields[7] / tick
    for spec in specs:
        name, _, pids = spec.partition("=")
        kind = name[-1] if name[-1] in "+~" else ""
        name = name.rstrip("+~")
        total = 0.0
        for pid in filter(None, pids.split(",")):
            if kind == "~":
                total += reaped_children_seconds(int(pid)) or 0.0
            else:
                total += cpu_seconds(int(pid), kind == "+") or 0.0
        out[name] = total
    print(json.dumps(out))


# ---------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def attack(name, help):
        s = sub.add_parser(name, help=help)
        s.add_argument("--target", default="127.0.0.1:3000")
        s.add_argument("--duration", type=float, default=60, help="stop by itself after this many seconds")
        s.add_argument("--out", required=True)
        s.add_argument("--ready-file", help="written once the attack is under way")
        return s

    s = attack("auth", "sign-in flood")
    s.add_argument("--conns", type=int, default=50)
    s.add_argument("--rate", type=float, default=0, help="most calls a second, all connections together (0: no cap)")
    s.add_argument("--sources", type=int, default=1, help="loopback source addresses")
    s = attack("slowloris", "slow-loris connections")
    s.add_argument("--conns", type=int, default=2000)
    s.add_argument("--mode", default="classic", help="classic, preface, silent, or a comma-separated mix")
    s.add_argument("--interval", type=float, default=2.0, help="seconds between bytes")
    s.add_argument("--ramp", type=float, default=1.0, help="seconds over which the first connections open")
    s.add_argument("--ready-timeout", type=float, default=15.0)
    s.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=True)
    s = attack("search", "maximal public searches")
    s.add_argument("--conns", type=int, default=8)
    s.add_argument("--nights", type=int, default=30)
    s = attack("canary", "a new connection now and then")
    s.add_argument("--every", type=float, default=0.5)
    s = sub.add_parser("probe", help="connections against the header-read timeout")
    s.add_argument("--target", default="127.0.0.1:3000")
    s.add_argument("--out", required=True)
    s.add_argument("--per-kind", type=int, default=50)
    s.add_argument("--header-timeout", type=float, default=5.0)
    s.add_argument("--grace", type=float, default=3.0)
    s = sub.add_parser("setup", help="inventory for the search")
    s.add_argument("--target", default="127.0.0.1:3000")
    s.add_argument("--token", required=True)
    s.add_argument("--hotels", type=int, default=10)
    s.add_argument("--rooms", type=int, default=10, help="rooms per room type")
    s = sub.add_parser("cpu", help="CPU seconds per group of processes")
    s.add_argument("specs", nargs="*",
                   help="NAME=PID,PID (NAME+=PID: with its descendants; NAME~=PID: its reaped children only)")
    args = p.parse_args()

    if args.command == "setup":
        return setup(args)
    if args.command == "cpu":
        return cpu_main(args.specs)
    raise_fd_limit(65536)
    if args.command == "probe":
        return asyncio.run(probe(args))
    runner = {"auth": AuthFlood, "slowloris": SlowLoris, "search": SearchFlood, "canary": Canary}[args.command](args)
    asyncio.run(runner.main())


if __name__ == "__main__":
    main()
