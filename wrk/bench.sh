#!/usr/bin/env bash
# Benchmark of POST /book and of the search GET /hotels (SPEC section 5), in one
# command from the repository root:
#
#   bash wrk/bench.sh            # 20 s per step, about 5 minutes plus the build
#   bash wrk/bench.sh --quick    # 3 s per step, a smoke run
#
# Builds the release binary, starts it on a fresh self-managed PostgreSQL in a
# temporary directory (or on DATABASE_URL when set), creates ROOM0..49,
# user0..49 and the large inventory BIG0..BIG_ROOMS-1, then for the workloads
#   seed    wrk/post_book.lua    50 rooms x nights 0..30: mostly 409 after the start
#   insert  wrk/insert_book.lua  BIG_ROOMS rooms x nights 1..365: mostly 201
# and each of -t4 -c10, -t8 -c20, -t8 -c80 it empties `bookings`, runs wrk for
# BENCH_DURATION seconds, empties `bookings` again and runs pgbench for as long
# at the same concurrency on the very SQL statement the handler sends
# (src/db/book.sql, parameters replaced by pgbench variables of the same
# ranges). After every run it counts overlapping live bookings with SQL.
# Then, for the third workload
#   search  wrk/search.lua       GET /hotels?city&check_in&check_out&guests: 200
# it empties `bookings` once, loads wrk/search_data.sql (100 hotels, 10,000
# rooms, 1,000,000 bookings; timed), saves EXPLAIN (ANALYZE, BUFFERS) of one
# search, and for each configuration runs wrk and pgbench on the statement of
# src/db/search_hotels.sql (read-only: nothing is emptied between its runs).
# Results: wrk/results/latest.{md,json}, wrk/results/<UTC date-time>.{md,json}
# and (with search) wrk/results/search-explain.txt.
#
# Environment:
#   PORT            HTTP port on 127.0.0.1 (default 3000; must be free)
#   BENCH_DURATION  seconds per wrk and per pgbench run (default 20; --quick: 3)
#   BIG_ROOMS       size of the large inventory (default 2000)
#   BENCH_WORKLOADS the workloads to run (default "seed insert search"); search
#                   always runs last, after its data set is loaded
#   TOKEN           access token sent by the wrk scripts and the set-up calls
#                   (Authorization: Bearer). Unset: when the binary has a `token`
#                   command, the script mints one for an admin user `bench-admin`.
#   DATABASE_URL    use this PostgreSQL instead of a managed one. WARNING: the
#                   benchmark deletes every booking in that database.
#   POOL_SIZE, RUST_LOG, REQUEST_TIMEOUT, ...   read by the service itself
#   BENCH_KEEP=1    keep the temporary directory (database, service log)
#   BENCH_SKIP_BUILD=1  use the existing target/release/room-booking
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DURATION="${BENCH_DURATION:-20}"
for arg in "$@"; do
    case "$arg" in
        --quick) DURATION="${BENCH_DURATION:-3}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
COMMAND_LINE="bash wrk/bench.sh${*:+ $*}"
[[ -n "${BENCH_DURATION:-}" ]] && COMMAND_LINE="BENCH_DURATION=$BENCH_DURATION $COMMAND_LINE"
PORT="${PORT:-3000}"
BIG_ROOMS="${BIG_ROOMS:-2000}"
BIG_NIGHTS=365
export BIG_ROOMS BIG_NIGHTS
CONFIGS=("4 10" "8 20" "8 80")   # wrk threads, connections
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-seed insert search}"

die() { echo "bench.sh: $*" >&2; exit 1; }
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a whole number of seconds, not '$DURATION'"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
[[ "$BIG_ROOMS" =~ ^[1-9][0-9]*$ ]] || die "BIG_ROOMS must be a positive number, not '$BIG_ROOMS'"
[[ ${#WORKLOADS[@]} -gt 0 ]] || die "BENCH_WORKLOADS names no workload"
BOOK_WORKLOADS=()
SEARCH=0
for w in "${WORKLOADS[@]}"; do
    case "$w" in
        seed|insert) BOOK_WORKLOADS+=("$w") ;;
        search) SEARCH=1 ;;
        *) die "unknown workload '$w' in BENCH_WORKLOADS (seed, insert, search)" ;;
    esac
done
# The search runs last: the booking workloads empty `bookings`, its data set lives there.
WORKLOADS=("${BOOK_WORKLOADS[@]}")
[[ $SEARCH == 1 ]] && WORKLOADS+=(search)
[[ -n "${BENCH_WORKLOADS:-}" ]] && COMMAND_LINE="BENCH_WORKLOADS=\"$BENCH_WORKLOADS\" $COMMAND_LINE"

# --- Tools -----------------------------------------------------------------
need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found. $2"
}
need wrk "Install it with: apt-get install -y wrk"
need pgbench "It comes with the PostgreSQL client: apt-get install -y postgresql-client (or postgresql-contrib)"
need psql "Install it with: apt-get install -y postgresql-client"
need curl "Install it with: apt-get install -y curl"
need python3 "Install it with: apt-get install -y python3"
need cargo "Install Rust from https://rustup.rs"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_DIR="$ROOT/wrk"
RESULTS_DIR="$BENCH_DIR/results"
BOOK_SQL="$ROOT/src/db/book.sql"
SEARCH_SQL="$ROOT/src/db/search_hotels.sql"
SEARCH_DATA="$BENCH_DIR/search_data.sql"
BIN="$ROOT/target/release/room-booking"
BASE_URL="http://127.0.0.1:$PORT"
[[ -f "$BOOK_SQL" ]] || die "$BOOK_SQL not found"
if [[ $SEARCH == 1 ]]; then
    [[ -f "$SEARCH_SQL" ]] || die "$SEARCH_SQL not found"
    [[ -f "$SEARCH_DATA" ]] || die "$SEARCH_DATA not found"
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set PORT"
fi

# --- Temporary directory, clean-up ---------------------------------------------
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/room-booking-bench.XXXXXX")"
# As root the service runs PostgreSQL as an unprivileged user, who must reach the data directory.
chmod 755 "$RUN_DIR"
SERVICE_LOG="$RUN_DIR/service.log"
SERVICE_PID=""
CHILD_PID=""

# Runs a command in the background and waits for it, so that a Ctrl-C interrupts
# the wait and reaches the traps (wrk itself treats SIGINT as "stop early and report").
run_child() { # output-file command...
    local out="$1" rc=0
    shift
    "$@" >"$out" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

stop_service() {
    if [[ -n "$SERVICE_PID" ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        log "Stopping the service (pid $SERVICE_PID)"
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$SERVICE_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVICE_PID" 2>/dev/null; then
            echo "bench.sh: the service did not stop within 30 s; killing it" >&2
            kill -KILL "$SERVICE_PID" 2>/dev/null || true
        fi
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    SERVICE_PID=""
}

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$CHILD_PID" ]]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    stop_service
    if [[ $status -ne 0 || "${BENCH_KEEP:-}" == 1 ]]; then
        echo "bench.sh: kept $RUN_DIR (service log: $SERVICE_LOG)" >&2
        if [[ $status -ne 0 && -f "$SERVICE_LOG" ]]; then
            echo "--- last lines of the service log (without per-request lines) ---" >&2
            { grep -av 'finished processing request' "$SERVICE_LOG" || true; } | tail -n 20 >&2
        fi
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT
trap 'echo "bench.sh: terminated" >&2; exit 143' TERM

# --- Build and start ---------------------------------------------------------
if [[ "${BENCH_SKIP_BUILD:-}" == 1 ]]; then
    [[ -x "$BIN" ]] || die "BENCH_SKIP_BUILD=1 but $BIN does not exist"
    log "Using the existing $BIN (BENCH_SKIP_BUILD=1)"
else
    log "Building the release binary"
    cargo build --release
fi

if [[ -n "${DATABASE_URL:-}" ]]; then
    echo "bench.sh: using DATABASE_URL; every booking in that database will be deleted" >&2
    DB_URL="$DATABASE_URL"
    setsid "$BIN" --bind "127.0.0.1:$PORT" >>"$SERVICE_LOG" 2>&1 &
else
    DATA_DIR="$RUN_DIR/pgdata"
    DB_URL="postgresql://postgres@/room_booking?host=$DATA_DIR"
    setsid "$BIN" --bind "127.0.0.1:$PORT" --data-dir "$DATA_DIR" >>"$SERVICE_LOG" 2>&1 &
fi
SERVICE_PID=$!
# (setsid: its own session, so that a Ctrl-C reaches this script, which then stops
# the service and its PostgreSQL cleanly, instead of hitting them mid-request.)
log "Starting the service (pid $SERVICE_PID, log $SERVICE_LOG)"
for i in $(seq 1 600); do
    if curl -sf -o /dev/null "$BASE_URL/health"; then break; fi
    kill -0 "$SERVICE_PID" 2>/dev/null || die "the service exited during start-up"
    [[ $i -eq 600 ]] && die "the service did not answer $BASE_URL/health within 120 s"
    sleep 0.2
done
curl -sf -o /dev/null "$BASE_URL/ready" || die "$BASE_URL/ready does not answer 200 (database unreachable?)"

sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# The service logs every request: keep its warnings and errors, then empty the log
# (opened for appending) so that it does not grow by hundreds of megabytes.
SERVICE_PROBLEMS="$RUN_DIR/service-problems.log"
harvest_log() { # sets LOG_PROBLEMS to the number of such lines
    LOG_PROBLEMS=$({ grep -acE 'WARN|ERROR' "$SERVICE_LOG" || true; })
    { grep -aE 'WARN|ERROR' "$SERVICE_LOG" || true; } | head -n 200 >>"$SERVICE_PROBLEMS"
    : >"$SERVICE_LOG"
}
sql -c 'select 1' >/dev/null || die "psql cannot connect to the service's database ($DB_URL)"

# --- Credentials ---------------------------------------------------------------
# Without TOKEN, and when the binary can mint one (`room-booking token`), the
# benchmark books as an admin user `bench-admin` (admins book for anyone).
if [[ -z "${TOKEN:-}" ]] && "$BIN" token --help >/dev/null 2>&1; then
    log "Minting an access token for the admin user bench-admin"
    token_args=(--log error)
    [[ -z "${DATABASE_URL:-}" ]] && token_args+=(--data-dir "$DATA_DIR")
    TOKEN=$("$BIN" "${token_args[@]}" token bench-admin --create-admin 2>>"$SERVICE_LOG" | tail -n 1) \
        || die "room-booking token bench-admin --create-admin failed"
    [[ -n "$TOKEN" ]] || die "room-booking token printed no token"
fi
export TOKEN="${TOKEN:-}"
# The caller's user id (the token's `sub`), for the handler's SQL when it takes one.
CALLER_ID=""
if [[ -n "$TOKEN" ]]; then
    CALLER_ID=$(python3 -c '
import base64, json, sys
payload = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])' "$TOKEN") \
        || die "TOKEN is not a JWT with a sub claim"
fi

# --- Inventory -----------------------------------------------------------------
AUTH=()
[[ -n "${TOKEN:-}" ]] && AUTH=(-H "Authorization: Bearer $TOKEN")
create() { # path name: 201 created or 409 already there
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -H 'content-type: application/json' \
        -d "{\"name\":\"$2\"}" "$BASE_URL$1")
    [[ "$code" == 201 || "$code" == 409 ]] || die "POST $1 {\"name\":\"$2\"} answered $code"
}
log "Creating ROOM0..49 and user0..49 over HTTP"
for i in $(seq 0 49); do
    create /rooms "ROOM$i"
    create /users "user$i"
done
log "Creating BIG0..$((BIG_ROOMS - 1)) with SQL"
sql -c "insert into rooms (hotel_id, room_type_id, name)
        select h.id, rt.id, 'BIG' || g
        from hotels h
        join room_types rt on rt.hotel_id = h.id and rt.is_default
        cross join generate_series(0, $BIG_ROOMS - 1) g
        where h.is_default
        on conflict (hotel_id, name) do nothing"
have=$(sql -c "select count(*) from rooms r join hotels h on h.id = r.hotel_id
               where h.is_default and (r.name ~ '^ROOM([0-9]|[1-4][0-9])$'
                                       or (r.name ~ '^BIG[0-9]+$' and substr(r.name, 4)::int < $BIG_ROOMS))")
[[ "$have" -eq $((50 + BIG_ROOMS)) ]] || die "expected $((50 + BIG_ROOMS)) benchmark rooms in the default hotel, found $have"

# --- pgbench scripts, generated from the handler's SQL --------------------------------
# $1 room name, $2 user name, $3 the night (counted from today in UTC, as the wrk
# scripts do), $4 (when the statement has it) the caller's user id.
gen_pgbench() { # out room_prefix room_max night_min night_max
    python3 - "$BOOK_SQL" "$@" <<'PY'
import re, sys
src, out, prefix, room_max, night_min, night_max = sys.argv[1:]
lines = [l.rstrip() for l in open(src) if not l.lstrip().startswith("--")]
statement = "\n".join(l for l in lines if l.strip()).strip().rstrip(";").strip()
params = {
    "1": f"('{prefix}' || :r::text)",
    "2": "('user' || :u::text)",
    "3": "((now() at time zone 'UTC')::date + :d::int)",
    "4": "(:caller::uuid)",
}
found = set(re.findall(r"\$(\d+)", statement))
if not {"1", "2", "3"} <= found <= set(params):
    sys.exit(f"{src}: expected parameters $1, $2, $3 (and $4), found {sorted(found)}; update wrk/bench.sh")
statement = re.sub(r"\$(\d+)", lambda m: params[m.group(1)], statement)
with open(out, "w") as f:
    f.write(f"\\set r random(0, {room_max})\n\\set u random(0, 49)\n"
            f"\\set d random({night_min}, {night_max})\n{statement};\n")
PY
}
gen_pgbench "$RUN_DIR/seed.pgbench" ROOM 49 0 30
gen_pgbench "$RUN_DIR/insert.pgbench" BIG $((BIG_ROOMS - 1)) 1 "$BIG_NIGHTS"
PGBENCH_VARS=()
if grep -q ':caller' "$RUN_DIR/seed.pgbench"; then
    [[ -n "$CALLER_ID" ]] || die "src/db/book.sql takes the caller (\$4) but there is no TOKEN to take it from"
    PGBENCH_VARS=(-D "caller=$CALLER_ID")
fi

reset_bookings() { sql -c 'truncate bookings cascade' -c 'checkpoint'; }
count_bookings() { sql -c 'select count(*) from bookings'; }
count_overlaps() {
    sql -c "select count(*)
            from bookings a
            join bookings b on b.room_id = a.room_id and a.id < b.id and a.stay && b.stay
            where a.status not in ('cancelled', 'no_show')
              and b.status not in ('cancelled', 'no_show')"
}

# Check both pgbench scripts: they run, and the insert one books.
if [[ ${#BOOK_WORKLOADS[@]} -gt 0 ]]; then
    log "Checking the generated pgbench scripts"
    reset_bookings
    for w in seed insert; do
        run_child "$RUN_DIR/check-$w.out" pgbench -n -M prepared "${PGBENCH_VARS[@]}" -c 1 -j 1 -t 20 -f "$RUN_DIR/$w.pgbench" "$DB_URL" \
            || { cat "$RUN_DIR/check-$w.out" >&2; die "pgbench failed on $RUN_DIR/$w.pgbench"; }
    done
    [[ "$(count_bookings)" -ge 30 ]] || die "the pgbench scripts booked fewer nights than expected ($(count_bookings) of 40)"
fi

# The search statement of src/db/search_hotels.sql with its parameters replaced:
# $1 the city, $2 the stay, $3 the guests, $4 the limit (20, the default page),
# $5 the offset (0). As a pgbench script (out pgbench) with the ranges of
# wrk/search.lua, or with fixed values for EXPLAIN (out explain city days nights guests).
gen_search() {
    python3 - "$SEARCH_SQL" "$@" <<'PY'
import re, sys
src, out, mode, *fixed = sys.argv[1:]
lines = [l.rstrip() for l in open(src) if not l.lstrip().startswith("--")]
statement = "\n".join(l for l in lines if l.strip()).strip().rstrip(";").strip()
today = "(now() at time zone 'UTC')::date"
if mode == "pgbench":
    c, d, n, g = ":c::int", ":d::int", ":n::int", ":g::int"
else:
    c, d, n, g = fixed
params = {
    "1": f"('City ' || {c}::text)",
    "2": f"daterange({today} + {d}, {today} + {d} + {n})",
    "3": f"({g})",
    "4": "20",
    "5": "0",
}
found = set(re.findall(r"\$(\d+)", statement))
if found != set(params):
    sys.exit(f"{src}: expected parameters $1..$5, found {sorted(found)}; update wrk/bench.sh")
statement = re.sub(r"\$(\d+)", lambda m: params[m.group(1)], statement)
with open(out, "w") as f:
    if mode == "pgbench":
        f.write("\\set c random(0, 9)\n\\set d random(0, 299)\n\\set n random(1, 5)\n"
                "\\set g random(1, 4)\n")
        f.write(f"{statement};\n")
    else:
        f.write(f"explain (analyze, buffers)\n{statement};\n")
PY
}
SEARCH_LOAD_SECONDS=""
EXPLAIN_FILE="$RUN_DIR/search-explain.txt"
load_search_data() {
    log "search: emptying bookings, loading $SEARCH_DATA"
    reset_bookings
    local t0 t1
    t0=$(date +%s.%N)
    run_child "$RUN_DIR/search-data.out" \
        env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -f "$SEARCH_DATA" "$DB_URL" \
        || { cat "$RUN_DIR/search-data.out" >&2; die "loading $SEARCH_DATA failed"; }
    t1=$(date +%s.%N)
    SEARCH_LOAD_SECONDS=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    sql -c 'checkpoint'
    log "search: loaded in $SEARCH_LOAD_SECONDS s: $(sql -c "
        select (select count(*) from hotels where name like 'Search hotel %') || ' hotels, '
            || (select count(*) from rooms r join hotels h on h.id = r.hotel_id
                where h.name like 'Search hotel %') || ' rooms, '
            || (select count(*) from bookings) || ' bookings'")"
    gen_search "$RUN_DIR/search.pgbench" pgbench
    log "search: checking the generated pgbench script"
    run_child "$RUN_DIR/check-search.out" pgbench -n -M prepared -c 1 -j 1 -t 20 -f "$RUN_DIR/search.pgbench" "$DB_URL" \
        || { cat "$RUN_DIR/check-search.out" >&2; die "pgbench failed on $RUN_DIR/search.pgbench"; }
    # One instance: City 3, 3 nights from 40 days ahead, 2 guests; run once to warm up, then explained.
    gen_search "$RUN_DIR/search-explain.sql" explain 3 40 3 2
    sql -f "$RUN_DIR/search-explain.sql" >/dev/null
    { echo "-- EXPLAIN (ANALYZE, BUFFERS) of src/db/search_hotels.sql: City 3, 3 nights from 40 days"
      echo "-- ahead, 2 guests, limit 20, on wrk/search_data.sql; written by wrk/bench.sh"
      echo
      sed 's/^/-- /' "$RUN_DIR/search-explain.sql"
      echo
      PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -v ON_ERROR_STOP=1 -f "$RUN_DIR/search-explain.sql"
    } >"$EXPLAIN_FILE" || die "EXPLAIN of the search failed"
    grep -q 'bookings_no_overlap' "$EXPLAIN_FILE" \
        || echo "bench.sh: warning: the search plan does not use bookings_no_overlap (see $EXPLAIN_FILE)" >&2
}

# --- Runs ------------------------------------------------------------------------------
RESULTS_TSV="$RUN_DIR/results.tsv"
: >"$RESULTS_TSV"
harvest_log   # start-up and set-up lines
for workload in "${WORKLOADS[@]}"; do
    case "$workload" in
        seed) lua="$BENCH_DIR/post_book.lua" ;;
        insert) lua="$BENCH_DIR/insert_book.lua" ;;
        search) lua="$BENCH_DIR/search.lua"; load_search_data; harvest_log ;;
    esac
    for config in "${CONFIGS[@]}"; do
        read -r threads conns <<<"$config"
        jobs=$(( threads < conns ? threads : conns ))
        tag="$workload-t$threads-c$conns"

        log "$workload: wrk -t$threads -c$conns -d${DURATION}s"
        [[ $workload == search ]] || reset_bookings
        run_child "$RUN_DIR/$tag.wrk" wrk -t"$threads" -c"$conns" -d"${DURATION}s" -s "$lua" "$BASE_URL" \
            || { cat "$RUN_DIR/$tag.wrk" >&2; die "wrk failed"; }
        grep -q '^STATUS ' "$RUN_DIR/$tag.wrk" || { cat "$RUN_DIR/$tag.wrk" >&2; die "no STATUS line in wrk's output"; }
        kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died during the run"
        if [[ $workload == search ]]; then svc_rows=0; svc_overlaps=0; else
            svc_rows=$(count_bookings)
            svc_overlaps=$(count_overlaps)
        fi

        log "$workload: pgbench -c$conns -j$jobs -T$DURATION"
        [[ $workload == search ]] || reset_bookings
        run_child "$RUN_DIR/$tag.pgbench" \
            pgbench -n -M prepared "${PGBENCH_VARS[@]}" -c "$conns" -j "$jobs" -T "$DURATION" \
                -l --log-prefix="$RUN_DIR/$tag.pglog" -f "$RUN_DIR/$workload.pgbench" "$DB_URL" || { cat "$RUN_DIR/$tag.pgbench" >&2; die "pgbench failed"; }
        tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$RUN_DIR/$tag.pgbench" | tail -n 1)
        [[ -n "$tps" ]] || { cat "$RUN_DIR/$tag.pgbench" >&2; die "no tps in pgbench's output"; }
        db_xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$RUN_DIR/$tag.pgbench")
        if [[ $workload == search ]]; then db_rows=0; db_overlaps=0; else
            db_rows=$(count_bookings)
            db_overlaps=$(count_overlaps)
        fi
        harvest_log

        python3 - "$RUN_DIR/$tag.wrk" "$workload" "$threads" "$conns" "$tps" "${db_xacts:-0}" \
            "$db_rows" "$svc_rows" "$((svc_overlaps + db_overlaps))" "$LOG_PROBLEMS" "$RUN_DIR/$tag.pglog" >>"$RESULTS_TSV" <<'PY'
import json, sys
import glob
path, workload, threads, conns, tps, db_xacts, db_rows, svc_rows, overlaps, log_problems, pglog = sys.argv[1:]
# pgbench -l: one line per transaction, the third field its latency in microseconds.
db_lat = sorted(int(l.split()[2]) for f in glob.glob(pglog + ".*") for l in open(f) if l.strip())
def pct(q):
    return db_lat[min(len(db_lat) - 1, int(q * len(db_lat)))] / 1000 if db_lat else None
out = {}
for line in open(path):
    key, _, rest = line.strip().partition(" ")
    out[key] = rest
status = json.loads(out["STATUS"])
p50, p99 = (int(x) for x in out["LATENCY"].split())
requests, duration_us = (int(x) for x in out["REQUESTS"].split())
rps = requests / (duration_us / 1e6)
print(f"    service {rps:.0f} req/s, p50 {p50 / 1000:.2f} ms, p99 {p99 / 1000:.2f} ms, {status}; "
      f"database {float(tps):.0f} tps, p50 {pct(0.5)} ms, p99 {pct(0.99)} ms; overlaps {overlaps}", file=sys.stderr)
print(json.dumps({
    "workload": workload, "threads": int(threads), "connections": int(conns),
    "rps": rps, "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
    "status": status, "db_tps": float(tps), "db_p50_ms": pct(0.5), "db_p99_ms": pct(0.99),
    "errors": json.loads(out["ERRORS"]), "requests": requests,
    "service_rows": int(svc_rows), "db_xacts": int(db_xacts), "db_rows": int(db_rows),
    "overlaps": int(overlaps), "log_problems": int(log_problems),
}))
PY
    done
done
stop_service
if [[ -s "$SERVICE_PROBLEMS" ]]; then
    echo "bench.sh: the service logged warnings or errors; the first ones:" >&2
    head -n 10 "$SERVICE_PROBLEMS" >&2
fi

# --- Report ----------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y-%m-%d-%H%M)"
MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
[[ $SEARCH == 1 ]] && cp "$EXPLAIN_FILE" "$RESULTS_DIR/search-explain.txt"
python3 - "$RESULTS_TSV" "$RESULTS_DIR" "$STAMP" "$MACHINE" "$COMMAND_LINE" "$DURATION" \
    "${POOL_SIZE:-10 (default)}" "${DATABASE_URL:+DATABASE_URL}" "$BIG_ROOMS" \
    "$SEARCH_LOAD_SECONDS" "$EXPLAIN_FILE" <<'PY'
import datetime, json, os, shutil, sys
(tsv, results_dir, stamp, machine, command, duration, pool, external, big_rooms,
 load_seconds, explain_file) = sys.argv[1:]
runs = [json.loads(l) for l in open(tsv) if l.strip()]
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()

def share(run, code):
    total = sum(run["status"].values())
    return 100 * run["status"].get(code, 0) / total if total else 0.0

doc = {"date": now, "machine": machine, "command": command, "workloads": {}, "overlaps": 0}
if load_seconds:
    doc["search_data_load_s"] = float(load_seconds)
book_runs = [r for r in runs if r["workload"] != "search"]
search_runs = [r for r in runs if r["workload"] == "search"]
for r in runs:
    doc["workloads"].setdefault(r["workload"], []).append({
        "threads": r["threads"], "connections": r["connections"], "rps": round(r["rps"], 1),
        "p50_ms": round(r["p50_ms"], 3), "p99_ms": round(r["p99_ms"], 3),
        "status": r["status"], "db_tps": round(r["db_tps"], 1),
        "db_p50_ms": r["db_p50_ms"], "db_p99_ms": r["db_p99_ms"],
        "ratio": round(r["rps"] / r["db_tps"], 3) if r["db_tps"] else None,
    })
    doc["overlaps"] += r["overlaps"]

md = [f"# POST /book and GET /hotels (search) benchmark, {now}", "",
      f"- Machine: {machine}",
      f"- Command: `{command}` ({duration} s per wrk and per pgbench run)",
      f"- Database: {'external (DATABASE_URL)' if external else 'managed by the service (fresh data directory)'}; "
      f"service pool size {pool}",
      f"- seed: `wrk/post_book.lua`, ROOM0..49 x user0..49 x nights 0..30; "
      f"insert: `wrk/insert_book.lua`, BIG0..{int(big_rooms) - 1} x user0..49 x nights 1..365",
      "- search: `wrk/search.lua`, GET /hotels?city=City 0..9, check-in 0..299 days ahead, 1..5 nights, "
      "1..4 guests, on `wrk/search_data.sql` (100 hotels, 10,000 rooms, 1,000,000 bookings"
      + (f"; loaded in {load_seconds} s)" if load_seconds else ")"),
      "- db tps: pgbench on the statement of `src/db/book.sql` (seed, insert) or "
      "`src/db/search_hotels.sql` (search) with the same ranges, "
      "same number of connections (db p50/p99: pgbench's per-transaction latencies); "
      "ratio = service rps / db tps", "",
      "| workload | threads | connections | rps | p50 ms | p99 ms | % 200 | % 201 | % 409 | % other | db tps | db p50 ms | db p99 ms | ratio |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in runs:
    s200, s201, s409 = share(r, "200"), share(r, "201"), share(r, "409")
    s_other = 100 - s200 - s201 - s409 if r["status"] else 0.0
    s_other = 0.0 if abs(s_other) < 1e-9 else s_other
    ratio = f"{r['rps'] / r['db_tps']:.2f}" if r["db_tps"] else "-"
    md.append(f"| {r['workload']} | {r['threads']} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {s200:.1f} | {s201:.1f} | {s409:.1f} | {s_other:.1f} | {r['db_tps']:.0f} | "
              f"{r['db_p50_ms'] or 0:.2f} | {r['db_p99_ms'] or 0:.2f} | {ratio} |")
md.append("")
notes = []
for r in runs:
    expected = ("200",) if r["workload"] == "search" else ("201", "409")
    other = {k: v for k, v in r["status"].items() if k not in expected}
    errors = {k: v for k, v in r["errors"].items() if v}
    if other or errors or r["log_problems"]:
        notes.append(f"- {r['workload']} -t{r['threads']} -c{r['connections']}: "
                     + ", ".join([f"{v} x {k}" for k, v in sorted(other.items())]
                                 + [f"{v} socket {k} errors" for k, v in sorted(errors.items())]
                                 + ([f"{r['log_problems']} WARN/ERROR lines in the service log"]
                                    if r["log_problems"] else [])))
md += ["Other answers, socket errors, service log warnings:", ""] + (notes or ["- none"]) + [""]
if book_runs:
    md += ["Rows booked per run (service 201s vs. pgbench transactions that inserted):", ""]
for r in book_runs:
    ins = 100 * r["db_rows"] / r["db_xacts"] if r["db_xacts"] else 0
    md.append(f"- {r['workload']} -c{r['connections']}: service {r['service_rows']} rows "
              f"({r['status'].get('201', 0)} x 201); pgbench {r['db_rows']} rows of {r['db_xacts']} "
              f"transactions ({ins:.1f} %)")
if book_runs:
    md += ["", f"Overlapping live bookings (SQL self-join, checked after each of the {2 * len(book_runs)} runs): "
           f"**{doc['overlaps']}**", ""]
if search_runs:
    md += ["Search targets at -t4 -c10: ratio >= 0.60 and p99 < 50 ms; measured: "
           + ", ".join(f"ratio {r['rps'] / r['db_tps']:.2f}, p99 {r['p99_ms']:.1f} ms"
                       for r in search_runs if (r["threads"], r["connections"]) == (4, 10)), ""]
    if os.path.exists(explain_file):
        md += ["Plan of one search (also in `wrk/results/search-explain.txt`):", "", "```",
               open(explain_file).read().rstrip("\n"), "```", ""]

text = "\n".join(md)
for name in ("latest", stamp):
    with open(f"{results_dir}/{name}.md", "w") as f:
        f.write(text)
    with open(f"{results_dir}/{name}.json", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
print(text)
print(f"Written: wrk/results/latest.{{md,json}} and wrk/results/{stamp}.{{md,json}}")
PY
