#!/usr/bin/env python3
"""The report of wrk/abuse.sh, from the raw figures in its run directory.

    abuse_report.py phase-line PHASE_DIR      one line on standard error
    abuse_report.py report RUN_DIR RESULTS_DIR STAMP MACHINE COMMAND DURATION SEARCH_SET PHASES

`report` writes RESULTS_DIR/abuse-STAMP.{md,json} and abuse-latest.{md,json},
prints the Markdown, and exits 1 when the bookers got any 5xx (in any phase)
or got no answer at all in a phase without the `silent` attack, else 0.
Missed speed targets are printed as FAIL but do not change the exit status.
"""

import datetime
import json
import os
import re
import sys

RPS_TARGET = 0.7   # combined rps >= 0.7 x quiet rps
WRK_CONNECTIONS = (10 // 4) * 4   # wrk -t4 -c10 opens 2 connections a thread
P99_TARGET = 3.0   # combined p99 < 3 x quiet p99

DESCRIPTIONS = {
    "quiet": "the seed workload alone",
    "quiet-after": "the seed workload alone, after the attacks",
    "auth": "(a) 50 connections posting wrong passwords to /auth/token, from 127.0.0.1",
    "auth-spread": "(a') the same from 500 loopback addresses, moving on at each 429",
    "slowloris": "(b) 2,000 connections sending a header a byte every 2 s, reopened when closed",
    "search": "(c) 8 connections asking for the longest stay, 100 a page, every hotel",
    "combined": "(a) + (b) + (c) at once",
    "silent": "2,000 connections that send nothing at all",
}


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def wrk_ms(text):
    """wrk's duration notation (850.00us, 1.20ms, 1.05s, 1.00m) in milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, _, rest = line.strip().partition(" ")
            if key in ("STATUS", "LATENCY", "REQUESTS", "ERRORS"):
                out[key] = rest
    stopped = load(os.path.join(os.path.dirname(path), "wrk.stopped"))
    if "STATUS" not in out:
        # wrk was stopped and killed before it could report: nothing was answered that it could tell.
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "requests": 0, "seconds": stopped,
                "status": {}, "5xx": 0, "socket_errors": {}, "stopped_after_s": stopped}
    status = json.loads(out["STATUS"])
    p50, p99 = (int(x) for x in out["LATENCY"].split())
    requests, duration_us = (int(x) for x in out["REQUESTS"].split())
    # wrk times its run with the wall clock; abuse.sh timed it with the time since boot.
    wall = None
    try:
        d = os.path.dirname(path)
        wall = float(open(os.path.join(d, "wrk.t1")).read()) - float(open(os.path.join(d, "wrk.t0")).read())
    except (OSError, ValueError):
        pass
    wrk_seconds = duration_us / 1e6
    # When wrk overran its time (its connections could not get in) or its clock
    # disagrees with the machine's steady one, count its requests over the real time.
    use_wall = wall is not None and (stopped or abs(wall - wrk_seconds) > 2)
    seconds = wall if use_wall else wrk_seconds
    # wrk's own mean latency ("Latency  <avg>" in its summary). Its connections (-t4
    # -c10 opens 10 // 4 = 2 a thread: 8) each carry one request at a time, so the
    # mean cannot much exceed 8 x the run time / requests (Little's law). wrk 4.1
    # overshoots that bound by 10-100 % even on a quiet loopback; beyond 3 x, its
    # latency figures for the run are suspect.
    mean_ms = None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "Latency":
                mean_ms = wrk_ms(parts[1])
                if mean_ms is not None:
                    break
    bound_ms = WRK_CONNECTIONS * duration_us / 1000 / requests if requests else None
    consistent = None if mean_ms is None or bound_ms is None else mean_ms <= 3 * bound_ms
    return {
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "wrk_seconds": round(wrk_seconds, 2), "wall_seconds": round(wall, 2) if wall is not None else None,
        "rps_over_wall_time": use_wall,
        "p50_ms": round(p50 / 1000, 2) if requests else None,
        "p99_ms": round(p99 / 1000, 2) if requests else None,
        "requests": requests, "seconds": round(seconds, 2),
        "status": status,
        "5xx": sum(n for code, n in status.items() if int(code) >= 500),
        "socket_errors": json.loads(out["ERRORS"]),
        "stopped_after_s": stopped,
        "wrk_mean_ms": mean_ms, "littles_law_bound_ms": round(bound_ms, 3) if bound_ms else None,
        "latency_consistent": consistent,
    }


def parse_metrics(path):
    """POST /book's latency histogram in the service's /metrics: {le: count}, all statuses."""
    buckets = {}
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("http_request_duration_seconds_bucket{") and 'route="/book"' in line \
                        and 'method="POST"' in line:
                    le = line.split('le="', 1)[1].split('"', 1)[0]
                    le = float("inf") if le == "+Inf" else float(le)
                    buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
    except (OSError, IndexError, ValueError):
        return None
    return buckets


def service_side(d):
    """The service's latency for the phase's POST /book: the bucket bounds of p50 and p99."""
    after = parse_metrics(os.path.join(d, "metrics1.txt"))
    if not after:
        return None
    before = parse_metrics(os.path.join(d, "metrics0.txt")) or {}
    delta = sorted((le, n - before.get(le, 0)) for le, n in after.items())
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return {"requests": 0}

    def bound(q):
        for le, n in delta:
            if n >= q * total:
                return None if le == float("inf") else round(le * 1000, 1)
        return None

    return {"requests": int(total), "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}


def parse_cpu(d):
    a, b = load(os.path.join(d, "cpu0.json")), load(os.path.join(d, "cpu1.json"))
    if not a or not b:
        return None
    wall = b["time"] - a["time"]
    if wall <= 0:
        return None
    groups = ["service", "pg", "wrk", "irq", "steal"] + sorted(k for k in a if k.startswith("attack_"))
    cores = {k: round((b[k] - a[k]) / wall, 2) for k in groups if k in b}
    cores["attackers"] = round(sum(v for k, v in cores.items() if k.startswith("attack_")), 2)
    busy = (b["machine_busy"] - a["machine_busy"]) / wall
    capacity = (b["machine_all"] - a["machine_all"]) / wall
    cores["machine_busy"] = round(busy, 2)
    ours = sum(cores[k] for k in ("service", "pg", "wrk", "attackers", "irq", "steal"))
    cores["rest"] = round(max(0.0, busy - ours), 2)
    cores["idle"] = round(max(0.0, capacity - busy), 2)
    cores["seconds"] = round(wall, 1)
    return cores


def parse_ss(d):
    rows = []
    try:
        with open(os.path.join(d, "ss.tsv")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    rows.append((int(parts[1]), int(parts[2])))
    except OSError:
        pass
    if not rows:
        return None
    return {"established_max": max(r[0] for r in rows), "listen_queue_max": max(r[1] for r in rows),
            "samples": len(rows)}


def phase(d):
    name = open(os.path.join(d, "name")).read().strip()
    attacks = open(os.path.join(d, "attacks")).read().split()
    out = {"name": name, "description": DESCRIPTIONS.get(name, ""), "attacks": attacks,
           "book": parse_wrk(os.path.join(d, "wrk.out")), "attackers": {}}
    for kind in attacks + ["canary"]:
        fig = load(os.path.join(d, kind + ".json"))
        if fig is not None:
            out["attackers"][kind] = fig
    out["service_side"] = service_side(d)
    out["cpu_cores"] = parse_cpu(d)
    out["connections"] = parse_ss(d)
    out["service_log"] = load(os.path.join(d, "log.json"), {})
    return out


def num(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def div(a, b):
    return None if a is None or not b else a / b


def share(fig, *codes):
    total = fig.get("answers") or 0
    if not total:
        return 0.0
    return 100.0 * sum(fig["status"].get(c, 0) for c in codes) / total


def attacker_text(kind, fig):
    if kind in ("slowloris", "silent"):
        return (f"{fig['opened']} opened, at most {fig['window_max_open']} open at once, "
                f"{fig['closed_by_server']} closed by the server (lifetime p50 {fig['lifetime_p50_s']} s, "
                f"max {fig['lifetime_max_s']} s), {fig['open_at_end']} open at the end "
                f"(oldest {fig['open_at_end_oldest_s']} s)")
    if kind == "canary":
        return (f"{fig['answers']} answers, wait p50 {fig['p50_ms']} ms, p99 {fig['p99_ms']} ms, "
                f"max {fig['max_ms']} ms, {fig['waiting_at_end']} still waiting at the end"
                + (f" (oldest {fig['waiting_at_end_oldest_s']} s)" if fig['waiting_at_end'] else ""))
    return (f"{fig['per_second']}/s; " + ", ".join(f"{c}: {p:.1f} %" for c, p in fig["share_pct"].items())
            + f"; p99 {fig['p99_ms']} ms" + (f"; errors {fig['errors']}" if fig["errors"] else ""))


def phase_line(d):
    p = phase(d)
    b = p["book"]
    line = (f"    {p['name']}: POST /book {b['rps']:.0f} req/s, p50 {num(b['p50_ms'])} ms, p99 {num(b['p99_ms'])} ms, "
            f"{b['status']}, 5xx {b['5xx']}")
    if b.get("stopped_after_s"):
        line += f", wrk stopped after {b['stopped_after_s']} s"
    if any(b["socket_errors"].values()):
        line += f", socket errors {b['socket_errors']}"
    side = p.get("service_side") or {}
    if side.get("p99_le_ms") is not None:
        line += f"; in the service p99 <= {side['p99_le_ms']} ms"
    if b.get("latency_consistent") is False:
        line += " (wrk's latencies inconsistent with its request count: suspect)"
    print(line, file=sys.stderr)
    for kind, fig in p["attackers"].items():
        print(f"      {kind}: {attacker_text(kind, fig)}", file=sys.stderr)
    c = p["cpu_cores"]
    if c:
        each = ", ".join(f"{k[7:]} {v}" for k, v in c.items() if k.startswith("attack_"))
        print(f"      cores: service {c['service']}, PostgreSQL {c['pg']}, wrk {c['wrk']}, attackers "
              f"{c['attackers']}{' (' + each + ')' if each else ''}, interrupts {c['irq']}, "
              f"other processes {c['rest']}, idle {c['idle']}", file=sys.stderr)


def report(run_dir, results_dir, stamp, machine, command, duration, search_set, phase_names):
    phases = []
    for name in phase_names.split():
        d = os.path.join(run_dir, "phases", name)
        if os.path.exists(os.path.join(d, "name")):
            phases.append(phase(d))
    probe = load(os.path.join(run_dir, "phases", "probe", "probe.json"))
    by_name = {p["name"]: p for p in phases}
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    # The service's defaults (README, "Limits"); half the cores, at least one,
    # for the hash slots and the public queries.
    half = str(max(1, (os.cpu_count() or 2) // 2))
    limits = {v: os.environ.get(v) or default for v, default in (
        ("MAX_CONNECTIONS", "4096 (default)"), ("HEADER_READ_TIMEOUT", "5 (default)"),
        ("HASH_SLOTS", half + " (default: half the cores)"), ("AUTH_BURST", "10 (default)"),
        ("AUTH_PERIOD", "6 (default)"), ("PUBLIC_QUERIES", half + " (default: half the cores)"),
        ("SEARCH_BURST", "20 (default)"), ("SEARCH_PERIOD", "0.1 (default)"),
        ("REFUSAL_DELAY", "1 (default)"), ("SEARCH_MAX_NIGHTS", "30 (default)"),
        ("POOL_SIZE", "twice the cores (default)"),
        ("BOOK_POOL_SIZE", "the cores, at least two (default)"), ("REQUEST_TIMEOUT", "10 (default)"), ("RUST_LOG", "info (default)"))}

    # The quiet baseline: the quiet phase, or the mean of the quiet phases before and
    # after the attacks when both ran (the machine is shared: its load drifts).
    quiet, after, combined = by_name.get("quiet"), by_name.get("quiet-after"), by_name.get("combined")
    baseline = None
    if quiet:
        ran = [p["book"] for p in (quiet, after) if p and p["book"]["requests"]]
        if ran:
            baseline = {"rps": sum(b["rps"] for b in ran) / len(ran),
                        "p99_ms": sum(b["p99_ms"] for b in ran) / len(ran),
                        "from": "quiet and quiet-after (mean)" if len(ran) == 2 else "quiet"}
    # Targets: combined against quiet.
    targets = []
    if baseline and combined:
        q, c = baseline, combined["book"]
        ratio = div(c["rps"], q["rps"]) or 0.0
        targets.append({"target": f"POST /book requests/s under attack >= {RPS_TARGET} x quiet",
                        "measured": f"{c['rps']:.0f} / {q['rps']:.0f} = {ratio:.2f} x",
                        "value": round(ratio, 3), "pass": ratio >= RPS_TARGET})
        p99_ratio = div(c["p99_ms"], q["p99_ms"])
        targets.append({"target": f"POST /book p99 under attack < {P99_TARGET} x quiet p99",
                        "measured": f"{num(c['p99_ms'])} / {num(q['p99_ms'])} ms = {num(p99_ratio)} x"
                        + (" (wrk's latency suspect in this phase, see (!))"
                           if c.get("latency_consistent") is False else ""),
                        "value": None if p99_ratio is None else round(p99_ratio, 3),
                        "pass": p99_ratio is not None and p99_ratio < P99_TARGET})
        targets.append({"target": "bookers get zero 5xx under attack",
                        "measured": f"{c['5xx']} 5xx of {c['requests']}", "value": c["5xx"],
                        "pass": c["5xx"] == 0})
    # Exit status: 5xx for bookers anywhere, or bookers answered not at all.
    problems = []
    for p in phases:
        if p["book"]["5xx"]:
            problems.append(f"{p['name']}: the bookers got {p['book']['5xx']} 5xx")
        if p["book"]["requests"] == 0 and "silent" not in p["attacks"]:
            problems.append(f"{p['name']}: the bookers got no answer at all")
    findings = []
    if probe and probe.get("survivors"):
        kinds = ", ".join(f"{k} ({v['still_open']} of {v['opened']})" for k, v in probe["kinds"].items()
                          if v["still_open"])
        findings.append(f"connections outlive the header-read timeout of {probe['header_timeout_s']} s: {kinds}")
    silent = by_name.get("silent")
    if silent and baseline and silent["book"]["rps"] < RPS_TARGET * baseline["rps"]:
        can = silent["attackers"].get("canary", {})
        findings.append(f"2,000 connections that send nothing: POST /book {silent['book']['rps']:.0f} req/s "
                        f"({silent['book']['requests']} answers), new connections answered: "
                        f"{can.get('answers', 0)}, still waiting at the end: {can.get('waiting_at_end', 0)}")

    # The same quiet workload before and after the attacks: how much the machine moved.
    noise = None
    after = by_name.get("quiet-after")
    if quiet and after and quiet["book"]["rps"]:
        noise = {"rps_after_over_before": round(after["book"]["rps"] / quiet["book"]["rps"], 3),
                 "p99_after_over_before": round(div(after["book"]["p99_ms"], quiet["book"]["p99_ms"]) or 0, 3)}

    doc = {"date": now, "machine": machine, "command": command, "duration_s": int(duration),
           "limits": limits, "search_set": search_set, "probe": probe, "phases": phases,
           "baseline": baseline, "targets": targets, "noise": noise, "problems": problems, "findings": findings}

    q_rps = baseline["rps"] if baseline else None
    q_p99 = baseline["p99_ms"] if baseline else None
    md = [f"# Abuse scenario (SPEC 4.8), {now}", "",
          f"- Machine: {machine}; the service, PostgreSQL, wrk and the attackers share these cores "
          "(see \"Cores\" below: what the attackers' own clients use is taken from the service)",
          f"- Command: `{command}` ({duration} s of wrk per phase)",
          "- Bookers: `wrk -t4 -c10 --timeout 30s -s wrk/post_book.lua` (the seed workload of `bench.sh`; "
          "wrk 4.1 opens 10 // 4 = 2 connections a thread, so 8; "
          "POST /book; its 1,550 slots emptied before each phase); attackers: `wrk/abuse_attack.py`, "
          "started first, measured over the same window",
          f"- Search inventory: {search_set}",
          "- Limits in force: " + ", ".join(f"`{k}` {v}" for k, v in limits.items()), ""]
    md += ["## Targets (combined attack against quiet)", "",
           f"Quiet baseline: {baseline['from'] if baseline else '-'}"
           + (f", {baseline['rps']:.0f} requests/s, p99 {baseline['p99_ms']:.2f} ms" if baseline else "")
           + "; the \"x quiet\" columns below are against it.", "",
           "| target | measured | result |", "|---|---|---|"]
    for t in targets:
        md.append(f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |")
    if not targets:
        md.append("| (no `quiet` and `combined` phases in this run) | | |")
    if any(not t["pass"] for t in targets[:2]):
        md += ["", "A missed speed target is reported, not fatal: this machine is shared and noisy "
               "(see the cores used by the rest of the machine below)."]
    md += ["", "## POST /book per phase", "",
           "| phase | attack | rps | x quiet | p50 ms | p99 ms | x quiet p99 | in the service: p99 at most, ms | 5xx "
           "| statuses | socket errors | new connection: GET /health p50 / p99 / max ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    suspect = False
    for p in phases:
        b = p["book"]
        can = p["attackers"].get("canary", {})
        errors = {k: v for k, v in b["socket_errors"].items() if v}
        if b.get("stopped_after_s"):
            errors["stopped by abuse.sh after (s)"] = b["stopped_after_s"]
        if b.get("rps_over_wall_time"):
            errors["rps over the real time (s)"] = b["wall_seconds"]
            errors["wrk's own time (s)"] = b["wrk_seconds"]
        canary = (f"{num(can.get('p50_ms'), 1)} / {num(can.get('p99_ms'), 1)} / {num(can.get('max_ms'), 1)}"
                  + (f" ({can['waiting_at_end']} unanswered, oldest {can['waiting_at_end_oldest_s']} s)"
                     if can.get("waiting_at_end") else ""))
        mark = ""
        if b.get("latency_consistent") is False:
            mark, suspect = " (!)", True
        side = (p.get("service_side") or {}).get("p99_le_ms")
        md.append(f"| {p['name']} | {p['description']} | {b['rps']:.0f} | {num(div(b['rps'], q_rps))} | "
                  f"{num(b['p50_ms'])} | {num(b['p99_ms'])}{mark} | {num(div(b['p99_ms'], q_p99))} | "
                  f"{num(side, 1)} | {b['5xx']} | {json.dumps(b['status'])} | "
                  f"{json.dumps(errors) if errors else '-'} | {canary} |")
    md += ["", "p50/p99: wrk's, from sending a request to its answer. \"In the service\": the upper bound of "
           "the bucket of the service's own latency histogram (`/metrics`, inside the router) that holds the "
           "99th percentile: the difference is time spent outside the handlers (accepting, reading, waiting "
           "for a core). New connection: the canary, a fresh connection every 0.5 s (GET /health), which "
           "shows what a client arriving during the attack waits; wrk's connections are opened once."]
    if suspect:
        md += ["", "(!) wrk's mean latency in this phase is more than 3 x what its 8 connections can hold "
               "over the run (Little's law: 8 x run time / requests; wrk 4.1 overshoots it by 10-100 % even "
               "when quiet); its latency figures for the phase are suspect: compare the service's own."]
    md += ["", "## Attackers", "",
           "| phase | attacker | answers/s | 401 % | 429 % | 503 % | other | p99 ms |",
           "|---|---|---:|---:|---:|---:|---|---:|"]
    loris = []
    for p in phases:
        for kind, fig in p["attackers"].items():
            if kind in ("slowloris", "silent"):
                loris.append((p["name"], fig))
                continue
            if kind == "canary":
                continue
            other = {c: n for c, n in fig["status"].items() if c not in ("401", "429", "503")}
            if fig["errors"]:
                other["socket errors"] = fig["errors"]
            md.append(f"| {p['name']} | {kind} | {fig['per_second']} | {share(fig, '401'):.1f} | "
                      f"{share(fig, '429'):.1f} | {share(fig, '503'):.1f} | "
                      f"{json.dumps(other) if other else '-'} | {fig['p99_ms']} |")
    if loris:
        md += ["", "Slow connections (counted over the measured window; lifetimes from the client's "
               "connect, which includes any wait in the listen queue):", "",
               "| phase | mode | opened | most open at once | closed by the server | lifetime p50 / p90 / max s "
               "| open at the end (oldest s) | server side: established max / listen queue max |",
               "|---|---|---:|---:|---:|---|---|---|"]
        for name, fig in loris:
            conn = next((p["connections"] for p in phases if p["name"] == name), None) or {}
            md.append(f"| {name} | {fig['mode']} | {fig['opened']} | {fig['window_max_open']} | "
                      f"{fig['closed_by_server']} | {fig['lifetime_p50_s']} / {fig['lifetime_p90_s']} / "
                      f"{fig['lifetime_max_s']} | {fig['open_at_end']} ({fig['open_at_end_oldest_s']}) | "
                      f"{conn.get('established_max')} / {conn.get('listen_queue_max')} |")
    if probe:
        md += ["", f"## Header-read timeout probe ({probe['header_timeout_s']} s; 50 connections of each kind "
               f"on the quiet service, checked after {probe['waited_s']:.0f} s)", "",
               "| kind | what it sends | opened | closed by the server | after s | still open |",
               "|---|---|---:|---:|---|---:|"]
        what = {"classic": "a request header, a byte a second, never finished",
                "partial": "a request line and a header at once, then nothing",
                "silent": "nothing at all", "preface": "the HTTP/2 preface, a byte a second",
                "idle": "one whole request (answered), then nothing"}
        for kind, k in probe["kinds"].items():
            after = (f"{k['closed_after_s_min']}-{k['closed_after_s_max']}" if k["closed_by_server"] else "-")
            md.append(f"| {kind} | {what.get(kind, '')} | {k['opened']} | {k['closed_by_server']} | {after} | "
                      f"{k['still_open']} |")
    md += ["", "## Cores used during each phase (of the machine's "
           f"{machine.split(' ')[0]})", "",
           "| phase | service | PostgreSQL | wrk | attackers (Python) | interrupts (softirq: loopback) | "
           "other processes (not this run's) | idle |",
           "|---|---:|---:|---:|---|---:|---:|---:|"]
    for p in phases:
        c = p["cpu_cores"]
        if c:
            each = ", ".join(f"{k[7:]} {v}" for k, v in c.items() if k.startswith("attack_"))
            md.append(f"| {p['name']} | {c['service']} | {c['pg']} | {c['wrk']} | {c['attackers']}"
                      f"{' (' + each + ')' if each else ''} | {c['irq']} | {c['rest']} | {c['idle']} |")
    logs = [(p["name"], k, n) for p in phases for k, n in p["service_log"].items()]
    if logs:
        md += ["", "## Service warnings and errors", "", "| phase | message | lines |", "|---|---|---:|"]
        for name, k, n in logs:
            md.append(f"| {name} | {k.replace('|', '/')} | {n} |")
    md += ["", "## Verdict", ""]
    for t in targets:
        md.append(f"- {'PASS' if t['pass'] else 'FAIL'}: {t['target']} ({t['measured']})")
    if noise:
        md.append(f"- Noise: the quiet workload after the attacks ran at {noise['rps_after_over_before']:.2f} x "
                  f"the requests/s and {noise['p99_after_over_before']:.2f} x the p99 of the quiet one before"
                  + (" (more than 20 % apart: the machine's load moved during the run; judge the ratios with care)"
                     if abs(noise["rps_after_over_before"] - 1) > 0.2 else ""))
    for f in findings:
        md.append(f"- FINDING: {f}")
    for pr in problems:
        md.append(f"- PROBLEM: {pr}")
    if not problems:
        md.append("- No 5xx for the bookers in any phase; the service stayed up and answered after every phase.")
    text = "\n".join(md) + "\n"

    os.makedirs(results_dir, exist_ok=True)
    for base in (f"abuse-{stamp}", "abuse-latest"):
        with open(os.path.join(results_dir, base + ".md"), "w") as f:
            f.write(text)
        with open(os.path.join(results_dir, base + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    print(text)
    return 1 if problems else 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "phase-line":
        return phase_line(sys.argv[2])
    if len(sys.argv) == 10 and sys.argv[1] == "report":
        return report(*sys.argv[2:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main() or 0)
