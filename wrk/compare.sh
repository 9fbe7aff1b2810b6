#!/usr/bin/env bash
# A/B comparison of service settings or binaries on the seed (or insert)
# workload, interleaved so that a noisy machine hits every variant alike:
#
#   bash wrk/compare.sh "default:" "pool 4:POOL_SIZE=4" "warn:RUST_LOG=warn"
#   bash wrk/compare.sh -r 5 -d 10 -c 8x80 "old:BIN=/tmp/room-booking-old" "new:"
#
# Each VARIANT is "name:" followed by environment assignments for the service
# (POOL_SIZE, BOOK_POOL_SIZE, RUST_LOG, TOKIO_WORKER_THREADS, ...; BIN=path runs another
# binary). Every round starts each variant in turn (the order rotates per
# round) on one PostgreSQL of this script's own (initdb in a temporary
# directory, Unix socket only, as `postgres` when root), empties `bookings`
# and the idempotency records, runs wrk for the duration, stops the service,
# and at the end prints per variant the median, min and max of requests/s,
# p50, p99 and the CPU time per request of the service and of PostgreSQL (from
# /proc: less sensitive to a busy machine than requests/s).
#
# Options: -r ROUNDS (default 3), -d SECONDS per run (default 8),
#          -c THREADSxCONNECTIONS (default 4x10), -w seed|insert|keyed (default seed;
#          keyed: the insert workload with an Idempotency-Key per request).
# Environment: PORT (default 3000), BENCH_SKIP_BUILD=1 (use target/release as it is).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=3 DURATION=8 CONFIG=4x10 WORKLOAD=seed
while getopts "r:d:c:w:h" opt; do
    case "$opt" in
        r) ROUNDS="$OPTARG" ;;
        d) DURATION="$OPTARG" ;;
        c) CONFIG="$OPTARG" ;;
        w) WORKLOAD="$OPTARG" ;;
        *) usage; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || die "name at least one variant, e.g. \"default:\" \"pool 4:POOL_SIZE=4\""
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ && "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "-r and -d take whole numbers"
[[ "$CONFIG" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || die "-c takes THREADSxCONNECTIONS, e.g. 4x10"
THREADS="${BASH_REMATCH[1]}" CONNS="${BASH_REMATCH[2]}"
case "$WORKLOAD" in seed) LUA=post_book.lua ;; insert) LUA=insert_book.lua ;; keyed) LUA=keyed_book.lua ;; *) die "-w seed, insert or keyed" ;; esac
for v in "$@"; do [[ "$v" == *:* ]] || die "variant '$v' is not name:[VAR=value ...]"; done
for tool in wrk psql curl python3 cargo runuser; do command -v "$tool" >/dev/null || die "'$tool' not found"; done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-3000}"
BIN="$ROOT/target/release/room-booking"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$PG_BIN/pg_ctl" ]] || PG_BIN="$(pg_config --bindir 2>/dev/null)" || die "no PostgreSQL server binaries"
PG_USER=""
[[ $(id -u) -eq 0 ]] && PG_USER=postgres
as_pg() { if [[ -n "$PG_USER" ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/room-booking-compare.XXXXXX")"
chmod 755 "$RUN_DIR"
PGDATA_DIR="$RUN_DIR/pgdata"
SERVICE_PID="" CHILD_PID="" PG_STARTED=0
stop_service() {
    [[ -n "$SERVICE_PID" ]] && { stop_pid "$SERVICE_PID" || true; }
    SERVICE_PID=""
}
on_exit() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n "$CHILD_PID" ]] && { kill -TERM "$CHILD_PID" 2>/dev/null || true; wait "$CHILD_PID" 2>/dev/null || true; }
    stop_service
    [[ $PG_STARTED == 1 ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
    if [[ $status -ne 0 ]]; then echo "compare.sh: kept $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then log "Building the release binary"; cargo build --release; fi

log "Starting an own PostgreSQL in $PGDATA_DIR"
mkdir -p "$PGDATA_DIR"
[[ -n "$PG_USER" ]] && chown "$PG_USER:" "$PGDATA_DIR"
chmod 700 "$PGDATA_DIR"
as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-instructions \
    >"$RUN_DIR/initdb.log" 2>&1 || { cat "$RUN_DIR/initdb.log" >&2; die "initdb failed"; }
PG_STARTED=1
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/postgres.log" -w -s \
    -o "-k $PGDATA_DIR -c listen_addresses= -c max_connections=200" start || die "PostgreSQL did not start"
DB_URL="postgresql://postgres@localhost/room_booking?host=$PGDATA_DIR"
psql "postgresql://postgres@localhost/postgres?host=$PGDATA_DIR" -X -q -c 'create database room_booking'
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
JWT="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export DATABASE_URL="$DB_URL" JWT_SECRET="$JWT"
"$BIN" --log warn migrate
TOKEN="$("$BIN" --log error token bench-admin --create-admin | tail -n 1)"
export TOKEN BIG_ROOMS=2000 BIG_NIGHTS=365
sql -c "insert into rooms (hotel_id, room_type_id, name)
        select h.id, rt.id, 'ROOM' || g from hotels h join room_types rt on rt.hotel_id = h.id and rt.is_default
        cross join generate_series(0, 49) g where h.is_default"
sql -c "insert into users (name) select 'user' || g from generate_series(0, 49) g"
[[ $WORKLOAD != seed ]] && sql -c "insert into rooms (hotel_id, room_type_id, name)
        select h.id, rt.id, 'BIG' || g from hotels h join room_types rt on rt.hotel_id = h.id and rt.is_default
        cross join generate_series(0, 1999) g where h.is_default"
sql -c 'vacuum (analyze)'

RESULTS="$RUN_DIR/results.jsonl"
: >"$RESULTS"
n=$#
variants=("$@")
for ((round = 0; round < ROUNDS; round++)); do
    for ((k = 0; k < n; k++)); do
        variant="${variants[$(((k + round) % n))]}"
        name="${variant%%:*}"
        read -r -a assignments <<<"${variant#*:}"
        log "round $((round + 1))/$ROUNDS: $name (${variant#*:}) wrk -t$THREADS -c$CONNS -d${DURATION}s -s wrk/$LUA"
        env "BIN=$BIN" "${assignments[@]}" bash -c 'exec setsid "$BIN" serve --bind "127.0.0.1:$0" --no-migrate' "$PORT" \
            >"$RUN_DIR/service.log" 2>&1 &
        SERVICE_PID=$!
        await_service "$SERVICE_PID" "http://127.0.0.1:$PORT" "$RUN_DIR/service.log"
        sql -c 'truncate bookings, idempotency_keys cascade' -c 'checkpoint'
        cpu_before="$(cpu_seconds "$PGDATA_DIR/postmaster.pid" "$SERVICE_PID")"
        wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$ROOT/wrk/$LUA" "http://127.0.0.1:$PORT" >"$RUN_DIR/wrk.out" 2>&1 &
        CHILD_PID=$!
        wait "$CHILD_PID" || { cat "$RUN_DIR/wrk.out" >&2; die "wrk failed"; }
        CHILD_PID=""
        cpu_after="$(cpu_seconds "$PGDATA_DIR/postmaster.pid" "$SERVICE_PID")"
        overlaps=$(sql -c "select count(*) from bookings a join bookings b on b.room_id = a.room_id
                           and a.id < b.id and a.stay && b.stay")
        stop_service
        python3 - "$RUN_DIR/wrk.out" "$name" "$overlaps" "$cpu_before" "$cpu_after" >>"$RESULTS" <<'PY'
import json, sys
path, name, overlaps, before, after = sys.argv[1:]
(s0, p0), (s1, p1) = (map(float, before.split())), (map(float, after.split()))
out = dict(line.strip().partition(" ")[::2] for line in open(path) if line[:1].isupper())
n, us = (int(x) for x in out["REQUESTS"].split())
p50, p99 = (int(x) / 1000 for x in out["LATENCY"].split())
r = {"variant": name, "rps": n / (us / 1e6), "p50_ms": p50, "p99_ms": p99,
     "status": json.loads(out["STATUS"]), "overlaps": int(overlaps),
     # CPU time per request, in microseconds: the service process, PostgreSQL's processes.
     "svc_us": (s1 - s0) / n * 1e6, "pg_us": (p1 - p0) / n * 1e6}
print(f"    {r['rps']:.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, {r['status']}, overlaps {overlaps}; "
      f"CPU per request: service {r['svc_us']:.0f} us, PostgreSQL {r['pg_us']:.0f} us", file=sys.stderr)
print(json.dumps(r))
PY
    done
done

python3 - "$RESULTS" "$THREADS" "$CONNS" "$DURATION" "$ROUNDS" "$WORKLOAD" "$@" <<'PY'
import json, statistics, sys
results, threads, conns, duration, rounds, workload, *variants = sys.argv[1:]
runs = [json.loads(l) for l in open(results)]
print(f"\n{workload} workload, wrk -t{threads} -c{conns}, {duration} s per run, {rounds} rounds, interleaved; "
      "median (min-max)\n")
print("| variant | settings | req/s | p50 ms | p99 ms | service CPU us/req | PostgreSQL CPU us/req | non-2xx/409 | overlaps |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
base = None
for v in variants:
    name, _, settings = v.partition(":")
    rs = [r for r in runs if r["variant"] == name]
    col = lambda k, fmt: f"{fmt.format(statistics.median(r[k] for r in rs))} ({fmt.format(min(r[k] for r in rs))}-{fmt.format(max(r[k] for r in rs))})"
    rps = statistics.median(r["rps"] for r in rs)
    base = base or rps
    other = sum(c for r in rs for k, c in r["status"].items() if k not in ("201", "409"))
    print(f"| {name} | `{settings.strip() or 'defaults'}` | {col('rps', '{:.0f}')} ({rps / base:.2f} x) | "
          f"{col('p50_ms', '{:.2f}')} | {col('p99_ms', '{:.2f}')} | {col('svc_us', '{:.0f}')} | {col('pg_us', '{:.0f}')} | "
          f"{other} | {sum(r['overlaps'] for r in rs)} |")
PY
