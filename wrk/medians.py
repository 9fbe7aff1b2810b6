#!/usr/bin/env python3
"""Medians of several runs of wrk/bench.sh, and the targets against them.

    python3 wrk/medians.py wrk/results/2026-11-22-0300.json wrk/results/...json ...

Reads the JSON files that bench.sh writes (one per run), prints per workload
and configuration the median of requests/s, p50, p99, handler and reference
tps and both ratios, the CPU time per request of each side (runs that measured
it), then the benchmark's targets (README) on those medians.
"""

import json
import statistics
import sys


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def show(x, spec="{:.2f}"):
    return "-" if x is None else spec.format(x)


def main(paths):
    if len(paths) < 2:
        sys.exit("usage: python3 wrk/medians.py RUN.json RUN.json [RUN.json ...]")
    docs = [json.load(open(p)) for p in paths]
    rows = {}
    for doc in docs:
        for workload, entries in doc.get("workloads", {}).items():
            for e in entries:
                rows.setdefault((workload, e["threads"], e["connections"]), []).append(e)
        for key in ("large_inventory", "scale_out"):
            if key in doc:
                e = doc[key]
                rows.setdefault((key, e["threads"], e["connections"]), []).append(e)

    print(f"Medians of {len(docs)} runs: " + ", ".join(paths))
    print()
    print("| workload | wrk | runs | rps | p50 ms | p99 ms | handler tps | reference tps | svc/ref | svc/handler |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for (workload, t, c), es in rows.items():
        m = {k: median(e.get(k) for e in es)
             for k in ("rps", "p50_ms", "p99_ms", "db_tps", "reference_tps", "ratio_reference", "ratio")}
        med[(workload, t, c)] = m
        print(f"| {workload} | -t{t} -c{c} | {len(es)} | {show(m['rps'], '{:.0f}')} | {show(m['p50_ms'])} | "
              f"{show(m['p99_ms'])} | {show(m['db_tps'], '{:.0f}')} | {show(m['reference_tps'], '{:.0f}')} | "
              f"{show(m['ratio_reference'])} | {show(m['ratio'])} |")
    print()

    def cpu(es, field, keys):
        values = {k: median((e.get(field) or {}).get(k) for e in es) for k in keys}
        total = sum(values.values()) if all(v is not None for v in values.values()) else None
        return [show(values[k], "{:.0f}") for k in keys] + [show(total, "{:.0f}")]

    with_cpu = {key: es for key, es in rows.items() if any((e.get("cpu_us") or {}).get("wrk") for e in es)}
    if with_cpu:
        print("CPU time per request (service run) and per transaction (pgbench runs), microseconds, medians "
              "(a total is the sum of its medians):")
        print()
        print("| workload | wrk | service run: wrk | service | PostgreSQL | total | handler: pgbench | PostgreSQL | total "
              "| reference: pgbench | PostgreSQL | total |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (workload, t, c), es in with_cpu.items():
            cells = (cpu(es, "cpu_us", ["wrk", "service", "postgres"]) + cpu(es, "db_cpu_us", ["pgbench", "postgres"])
                     + cpu(es, "ref_cpu_us", ["pgbench", "postgres"]))
            print(f"| {workload} | -t{t} -c{c} | " + " | ".join(cells) + " |")
        print()

    def get(workload, t, c, key):
        return med.get((workload, t, c), {}).get(key)

    seed_ref = get("seed", 4, 10, "ratio_reference")
    insert_ref = get("insert", 4, 10, "ratio_reference")
    seed_p99 = get("seed", 8, 80, "p99_ms")
    large_p50, seed_p50 = get("large_inventory", 4, 10, "p50_ms"), get("seed", 4, 10, "p50_ms")
    large_ratio = large_p50 / seed_p50 if large_p50 and seed_p50 else None
    every = [e for doc in docs for es in doc.get("workloads", {}).values() for e in es]
    every += [doc[k] for doc in docs for k in ("large_inventory", "scale_out") if k in doc]
    five = sum(v for e in every for k, v in e["status"].items() if k.startswith("5"))
    overlaps = sum(doc.get("overlaps", 0) for doc in docs)
    targets = [
        ("seed -t4 -c10 >= 0.5 x reference", seed_ref, seed_ref is not None and seed_ref >= 0.5),
        ("insert -t4 -c10 >= 0.8 x reference", insert_ref, insert_ref is not None and insert_ref >= 0.8),
        ("seed -t8 -c80 p99 <= 15 ms", seed_p99, seed_p99 is not None and seed_p99 <= 15),
        ("100,000 rooms: /book p50 <= 1.2 x the seed's", large_ratio, large_ratio is not None and large_ratio <= 1.2),
        ("no 5xx", five, five == 0),
        ("no overlapping live bookings", overlaps, overlaps == 0),
    ]
    print("Targets on the medians:")
    for name, value, ok in targets:
        print(f"- {name}: {show(value) if isinstance(value, float) else value} — {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main(sys.argv[1:])
