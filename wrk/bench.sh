#!/usr/bin/env bash
# Benchmark of POST /book and of the search GET /hotels (SPEC section 5), in one
# command from the repository root:
#
#   bash wrk/bench.sh                 # 20 s per step, about 15 minutes plus the build
#   bash wrk/bench.sh --quick         # 3 s per step, a smoke run
#   bash wrk/bench.sh --instances 3   # the scale-out step with 3 service processes (default 2)
#   bash wrk/bench.sh --profile       # instead: profile the service under the seed workload
#
# How it runs. It builds the release binary, then runs its own PostgreSQL:
# initdb into a temporary directory, `pg_ctl start` with pg_stat_statements
# preloaded, listening only on a Unix socket in that directory (run as the
# `postgres` user, or `nobody`, when the script runs as root; trust
# authentication, nobody else can reach the socket). It starts the service
# with DATABASE_URL pointing there and a random JWT_SECRET, mints an admin
# token with `room-booking token bench-admin --create-admin`, and stops both
# on exit (Ctrl-C included). With DATABASE_URL set it uses that database
# instead and starts no PostgreSQL (JWT_SECRET is then used when set, else a
# random one; pg_stat_statements figures only when that server preloads it).
#
# Steps (BENCH_WORKLOADS, default "seed insert search large scaleout", in this order):
#   seed      wrk/post_book.lua    ROOM0..49 x user0..49 x nights 0..30, with 50 rooms
#                                  in the database: mostly 409 after the first second
#   insert    wrk/insert_book.lua  BIG0..BIG_ROOMS-1 (created with SQL just before)
#                                  x nights 1..365: mostly 201
#   search    wrk/search.lua       GET /hotels?city&check_in&check_out&guests on
#                                  wrk/search_data.sql (100 hotels, 10,000 rooms,
#                                  1,000,000 bookings; loaded, timed)
#   large     the seed workload at -t4 -c10 again, after wrk/large_inventory.sql
#             (100 hotels x 1,000 rooms named like the seed's, 100,000 users,
#             100,000 bookings; loaded, timed); before it, EXPLAIN (ANALYZE, BUFFERS)
#             of every statement of the booking path (POST /book, the auth check,
#             POST /bookings' allocation), generic and custom plans, with the
#             statistics the bulk load left and again after ANALYZE, saved to
#             wrk/results/booking-explain.txt (POST /book's statements with
#             enable_seqscan off, as on the service's connections for them); the
#             check fails on any sequential scan of rooms, users or bookings, and
#             on any at all in POST /book's statements. /book's p50 must stay within
#             1.2 x of the seed's at -t4 -c10.
#   scaleout  the seed workload at -t4 -c10 split over N service processes (ports
#             PORT, PORT+1, ...) on the one PostgreSQL: combined requests/s, overlaps.
# For seed and insert and each of -t4 -c10, -t8 -c20, -t8 -c80 it empties
# `bookings`, runs wrk for BENCH_DURATION seconds (with pg_stat_statements reset
# before and read after: statements per request, their mean time), then empties
# `bookings` before each of two pgbench runs of as long at the same concurrency:
#   handler    the very SQL the handler sends (src/db/book.sql, its parameters
#              replaced by pgbench variables of the same ranges)
#   reference  wrk/reference.sql, the smallest correct statement for a seed booking
# and reports service / reference (the ratio the targets use) and service /
# handler SQL (what the HTTP layer costs). After every run it counts overlapping
# live bookings with SQL. The search compares with pgbench of
# src/db/search_hotels.sql (read-only: nothing is emptied between its runs).
# Results: wrk/results/latest.{md,json}, wrk/results/<UTC date-time>.{md,json},
# wrk/results/booking-explain.txt and (with search) wrk/results/search-explain.txt.
# Exit status 1 when a run had a 5xx answer or an overlap, or the plan check failed.
#
# --profile: builds target/profiling/room-booking (release with frame pointers),
# runs the seed workload at -t4 -c10 under `perf record -a -g` and writes
# wrk/results/flamegraph-seed.svg (the service's stacks; needs inferno:
# `cargo install inferno`), wrk/results/profile-seed.md (CPU by process,
# the service's hottest functions, pg_stat_statements of the run); then runs
# wrk/reference.sql under pgbench (-c8, as long) under `perf record -a -g` too,
# and puts PostgreSQL's CPU by function side by side: per request of the
# service's run, per transaction of the reference's.
#
# Environment:
#   PORT            first HTTP port on 127.0.0.1 (default 3000; it and the next
#                   ones for --instances must be free)
#   BENCH_DURATION  seconds per wrk and per pgbench run (default 20; --quick: 3)
#   BENCH_CONFIGS   wrk threads x connections of the seed, insert and search steps
#                   (default "4x10 8x20 8x80")
#   BENCH_WORKLOADS the steps to run (default "seed insert search large scaleout")
#   BIG_ROOMS       size of the insert workload's inventory (default 2000)
#   TOKEN           access token for the wrk scripts and the set-up calls; only with
#                   DATABASE_URL and the JWT_SECRET that signed it. Unset: minted.
#   DATABASE_URL    use this PostgreSQL instead of an own one. WARNING: the benchmark
#                   deletes every booking in that database and adds its data sets.
#   JWT_SECRET      with DATABASE_URL: the service's secret (default: random)
#   POOL_SIZE, BOOK_POOL_SIZE, RUST_LOG, REQUEST_TIMEOUT, TOKIO_WORKER_THREADS, ...   read by the service
#   BENCH_KEEP=1    keep the temporary directory (database, service logs)
#   BENCH_SKIP_BUILD=1  use the existing binary (target/release, or target/profiling)
#   BENCH_RESULTS_DIR   where the results go (default wrk/results; CI's smoke run
#                   writes to a temporary directory)
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${BENCH_DURATION:-20}"
INSTANCES=2
PROFILE=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --quick) DURATION="${BENCH_DURATION:-3}" ;;
        --instances) INSTANCES="${args[$((i + 1))]:-}"; i=$((i + 1)) ;;
        --instances=*) INSTANCES="${args[$i]#--instances=}" ;;
        --profile) PROFILE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '${args[$i]}' (try --help)" >&2; exit 2 ;;
    esac
done
COMMAND_LINE="bash wrk/bench.sh${*:+ $*}"
for var in BENCH_DURATION BENCH_CONFIGS BENCH_WORKLOADS POOL_SIZE BOOK_POOL_SIZE RUST_LOG TOKIO_WORKER_THREADS; do
    [[ -n "${!var:-}" ]] && COMMAND_LINE="$var=\"${!var}\" $COMMAND_LINE"
done
PORT="${PORT:-3000}"
BIG_ROOMS="${BIG_ROOMS:-2000}"
BIG_NIGHTS=365
export BIG_ROOMS BIG_NIGHTS
read -r -a CONFIGS <<<"${BENCH_CONFIGS:-4x10 8x20 8x80}"
read -r -a STEPS <<<"${BENCH_WORKLOADS:-seed insert search large scaleout}"


[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "BENCH_DURATION must be a whole number of seconds, not '$DURATION'"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
[[ "$BIG_ROOMS" =~ ^[1-9][0-9]*$ ]] || die "BIG_ROOMS must be a positive number, not '$BIG_ROOMS'"
[[ "$INSTANCES" =~ ^[1-9][0-9]*$ ]] || die "--instances needs a number of service processes, not '$INSTANCES'"
[[ ${#CONFIGS[@]} -gt 0 ]] || die "BENCH_CONFIGS names no configuration"
for c in "${CONFIGS[@]}"; do
    [[ "$c" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "BENCH_CONFIGS: '$c' is not THREADSxCONNECTIONS (e.g. 4x10)"
done
declare -A WANT=()
for s in "${STEPS[@]}"; do
    case "$s" in
        seed|insert|search|large|scaleout) WANT[$s]=1 ;;
        *) die "unknown step '$s' in BENCH_WORKLOADS (seed, insert, search, large, scaleout)" ;;
    esac
done
[[ ${#WANT[@]} -gt 0 ]] || die "BENCH_WORKLOADS names no step"
wants() { [[ -n "${WANT[$1]:-}" ]]; }
if [[ $PROFILE == 1 ]]; then WANT=([profile]=1); fi

# --- Tools -----------------------------------------------------------------
need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found. $2"
}
need wrk "Install it with: apt-get install -y wrk"
need pgbench "It comes with PostgreSQL: apt-get install -y postgresql (or postgresql-contrib)"
need psql "Install it with: apt-get install -y postgresql-client"
need curl "Install it with: apt-get install -y curl"
need python3 "Install it with: apt-get install -y python3"
need cargo "Install Rust from https://rustup.rs"
if [[ $PROFILE == 1 ]]; then
    need perf "Install it with: apt-get install -y linux-perf"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_DIR="$ROOT/wrk"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results}"
BOOK_SQL="$ROOT/src/db/book.sql"
BOOK_MANY_SQL="$ROOT/src/db/book_many.sql"
REFERENCE_SQL="$BENCH_DIR/reference.sql"
SEARCH_SQL="$ROOT/src/db/search_hotels.sql"
SEARCH_DATA="$BENCH_DIR/search_data.sql"
LARGE_DATA="$BENCH_DIR/large_inventory.sql"
SQLX_DIR="$ROOT/.sqlx"
if [[ $PROFILE == 1 ]]; then BIN="$ROOT/target/profiling/room-booking"; else BIN="$ROOT/target/release/room-booking"; fi
for f in "$BOOK_SQL" "$BOOK_MANY_SQL" "$REFERENCE_SQL"; do [[ -f "$f" ]] || die "$f not found"; done
if wants search; then
    for f in "$SEARCH_SQL" "$SEARCH_DATA"; do [[ -f "$f" ]] || die "$f not found"; done
fi
if wants large; then [[ -f "$LARGE_DATA" ]] || die "$LARGE_DATA not found"; fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=1
wants scaleout && PORTS=$INSTANCES
for ((i = 0; i < PORTS; i++)); do
    port_in_use $((PORT + i)) && die "port $((PORT + i)) on 127.0.0.1 is already in use; stop what listens there or set PORT"
done

# --- PostgreSQL server binaries (as the service finds them) --------------------
pg_bin_dir() {
    local d
    if command -v initdb >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v initdb)")")"
        [[ -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    fi
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir)"
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    fi
    return 1
}
PG_USER=""
if [[ -z "${DATABASE_URL:-}" ]]; then
    PG_BIN="$(pg_bin_dir)" || die "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in /usr/lib/postgresql/*/bin or through pg_config. Install them (apt-get install -y postgresql) or set DATABASE_URL."
    if [[ $(id -u) -eq 0 ]]; then
        for u in postgres nobody; do
            if id -u "$u" >/dev/null 2>&1; then PG_USER="$u"; break; fi
        done
        [[ -n "$PG_USER" ]] || die "running as root, but neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL"
        need runuser "It comes with util-linux"
    fi
fi
as_pg() { if [[ -n "$PG_USER" ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

# --- Temporary directory, clean-up ---------------------------------------------
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/room-booking-bench.XXXXXX")"
# As root PostgreSQL runs as an unprivileged user, who must reach its data directory.
chmod 755 "$RUN_DIR"
PGDATA_DIR="$RUN_DIR/pgdata"
PG_STARTED=0
SERVICE_PIDS=()
SERVICE_LOGS=()
CHILD_PIDS=()

# Runs a command in the background and waits for it, so that a Ctrl-C interrupts
# the wait and reaches the traps (wrk itself treats SIGINT as "stop early and report").
run_child() { # output-file command...
    local out="$1" rc=0
    shift
    "$@" >"$out" 2>&1 &
    CHILD_PIDS=($!)
    wait "${CHILD_PIDS[0]}" || rc=$?
    CHILD_PIDS=()
    return "$rc"
}

# CPU time (user + system), for the CPU each side of a run takes per request.
# children_cpu FILE: the seconds of this shell's children waited for so far
# (bash's `times`, which must run in the shell that waited for them, hence a file).
children_cpu() {
    times >"$1.times"
    # "0m1.234s 0m0.567s" (a decimal comma in some locales)
    awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { gsub(",", ".", $i); split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' \
        "$1.times" >"$1"
}
# "service postgres": the CPU seconds of the service processes and of this
# script's own PostgreSQL ("-" when it uses another), as lib.sh's cpu_seconds.
service_and_pg_cpu() {
    local pid_file=""
    [[ $PG_STARTED == 1 ]] && pid_file="$PGDATA_DIR/postmaster.pid"
    cpu_seconds "$pid_file" "${SERVICE_PIDS[@]}"
}

stop_services() {
    local pid
    for pid in "${SERVICE_PIDS[@]}"; do
        log "Stopping the service (pid $pid)"
        stop_pid "$pid" 30 "the service" || true
    done
    SERVICE_PIDS=()
}

stop_postgres() {
    if [[ $PG_STARTED == 1 ]]; then
        log "Stopping PostgreSQL"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 || {
            local pid
            pid="$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
            [[ -n "$pid" ]] && kill -QUIT "$pid" 2>/dev/null || true
        }
        PG_STARTED=0
    fi
}

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${CHILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    stop_services
    stop_postgres
    if [[ $status -ne 0 || "${BENCH_KEEP:-}" == 1 ]]; then
        echo "bench.sh: kept $RUN_DIR (service logs: $RUN_DIR/service-*.log)" >&2
        if [[ $status -ne 0 && $status -ne 130 ]]; then
            local f
            for f in "${SERVICE_LOGS[@]}"; do
                [[ -s "$f" ]] || continue
                echo "--- last lines of $f (without per-request lines) ---" >&2
                { grep -av 'finished processing request' "$f" || true; } | tail -n 20 >&2
            done
        fi
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT
trap 'echo "bench.sh: terminated" >&2; exit 143' TERM

# --- Build -------------------------------------------------------------------
if [[ "${BENCH_SKIP_BUILD:-}" == 1 ]]; then
    [[ -x "$BIN" ]] || die "BENCH_SKIP_BUILD=1 but $BIN does not exist"
    log "Using the existing $BIN (BENCH_SKIP_BUILD=1)"
elif [[ $PROFILE == 1 ]]; then
    # The release profile plus frame pointers (for perf's call graphs) and line
    # tables, in its own directory so that the release build stays as it is.
    log "Building the profiling binary (release with frame pointers) into target/profiling"
    RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" cargo build \
        --config 'profile.profiling.inherits="release"' \
        --config 'profile.profiling.debug="line-tables-only"' --profile profiling
else
    log "Building the release binary"
    cargo build --release
fi

# --- Database ----------------------------------------------------------------------
if [[ -n "${DATABASE_URL:-}" ]]; then
    echo "bench.sh: using DATABASE_URL; every booking in that database will be deleted" >&2
    DB_URL="$DATABASE_URL"
else
    log "Starting an own PostgreSQL in $PGDATA_DIR (Unix socket only)"
    mkdir -p "$PGDATA_DIR"
    [[ -n "$PG_USER" ]] && chown "$PG_USER:" "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C \
        --no-instructions >"$RUN_DIR/initdb.log" 2>&1 \
        || { cat "$RUN_DIR/initdb.log" >&2; die "initdb failed"; }
    # The same settings as the service's managed PostgreSQL, plus pg_stat_statements.
    PG_STARTED=1
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/postgres.log" -w -t 60 -s \
        -o "-k $PGDATA_DIR -c listen_addresses= -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
        start || { tail -n 20 "$PGDATA_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
    DB_URL="postgresql://postgres@localhost/room_booking?host=$PGDATA_DIR"
    psql "postgresql://postgres@localhost/postgres?host=$PGDATA_DIR" -X -q -v ON_ERROR_STOP=1 \
        -c 'create database room_booking' || die "cannot create the database room_booking"
fi
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
sql -c 'select 1' >/dev/null || die "psql cannot connect to $DB_URL"
PGSS=0
if sql -c 'create extension if not exists pg_stat_statements' -c 'select pg_stat_statements_reset()' >/dev/null 2>&1; then
    PGSS=1
else
    echo "bench.sh: pg_stat_statements is not available on this server; no per-request database figures" >&2
fi

if [[ -n "${TOKEN:-}" && ( -z "${DATABASE_URL:-}" || -z "${JWT_SECRET:-}" ) ]]; then
    die "TOKEN is only usable with DATABASE_URL and the JWT_SECRET that signed it; unset TOKEN to have one minted"
fi
JWT="${JWT_SECRET:-$(python3 -c 'import secrets; print(secrets.token_hex(32))')}"

# --- Services ------------------------------------------------------------------------
BASE_URL="http://127.0.0.1:$PORT"
start_service() { # port [serve arguments...]
    local port="$1" log_file="$RUN_DIR/service-$1.log" pid i
    shift
    # setsid: its own session, so that a Ctrl-C reaches this script, which then
    # stops the service cleanly instead of hitting it mid-request.
    # SEARCH_BURST/SEARCH_PERIOD: the search workload measures the query, from
    # one address; the per-address limit on it is what wrk/abuse.sh measures.
    setsid env DATABASE_URL="$DB_URL" JWT_SECRET="$JWT" \
        SEARCH_BURST="${SEARCH_BURST:-1000000}" SEARCH_PERIOD="${SEARCH_PERIOD:-0.001}" "$BIN" serve --bind "127.0.0.1:$port" "$@" \
        >>"$log_file" 2>&1 &
    pid=$!
    SERVICE_PIDS+=("$pid")
    SERVICE_LOGS+=("$log_file")
    log "Starting the service on port $port (pid $pid, log $log_file)"
    await_service "$pid" "http://127.0.0.1:$port" "$log_file"
}
start_service "$PORT"

# The service logs every request: keep its warnings and errors, then empty the logs
# (opened for appending) so that they do not grow by hundreds of megabytes.
SERVICE_PROBLEMS="$RUN_DIR/service-problems.log"
harvest_log() { # sets LOG_PROBLEMS to the number of such lines
    local f n
    LOG_PROBLEMS=0
    for f in "${SERVICE_LOGS[@]}"; do
        [[ -f "$f" ]] || continue
        n=$({ grep -acE 'WARN|ERROR' "$f" || true; })
        LOG_PROBLEMS=$((LOG_PROBLEMS + n))
        { grep -aE 'WARN|ERROR' "$f" || true; } | head -n 200 >>"$SERVICE_PROBLEMS"
        : >"$f"
    done
}

# --- Credentials ---------------------------------------------------------------
if [[ -z "${TOKEN:-}" ]]; then
    log "Minting an access token for the admin user bench-admin"
    TOKEN=$(env DATABASE_URL="$DB_URL" JWT_SECRET="$JWT" "$BIN" --log error token bench-admin --create-admin \
        2>>"$RUN_DIR/token.log" | tail -n 1) || { cat "$RUN_DIR/token.log" >&2; die "room-booking token bench-admin --create-admin failed"; }
    [[ -n "$TOKEN" ]] || die "room-booking token printed no token"
fi
export TOKEN
# The caller's user id (the token's `sub`) and token version (`ver`, 0 when the
# token has none), for the handler's SQL.
read -r CALLER_ID CALLER_VER < <(python3 -c '
import base64, json, sys
payload = sys.argv[1].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(claims["sub"], int(claims.get("ver", 0)))' "$TOKEN") || true
[[ -n "${CALLER_ID:-}" && "${CALLER_VER:-}" =~ ^[0-9]+$ ]] || die "TOKEN is not a JWT with a sub claim"

# --- Inventory -----------------------------------------------------------------
AUTH=(-H "Authorization: Bearer $TOKEN")
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
have=$(sql -c "select count(*) from rooms r join hotels h on h.id = r.hotel_id
               where h.is_default and r.name ~ '^ROOM([0-9]|[1-4][0-9])$'")
[[ "$have" -eq 50 ]] || die "expected ROOM0..49 in the default hotel, found $have of them"
create_big_rooms() {
    log "Creating BIG0..$((BIG_ROOMS - 1)) in the default hotel with SQL"
    sql -c "insert into rooms (hotel_id, room_type_id, name)
            select h.id, rt.id, 'BIG' || g
            from hotels h
            join room_types rt on rt.hotel_id = h.id and rt.is_default
            cross join generate_series(0, $BIG_ROOMS - 1) g
            where h.is_default
            on conflict (hotel_id, name) do nothing"
    have=$(sql -c "select count(*) from rooms r join hotels h on h.id = r.hotel_id
                   where h.is_default and r.name ~ '^BIG[0-9]+$' and substr(r.name, 4)::int < $BIG_ROOMS")
    [[ "$have" -eq "$BIG_ROOMS" ]] || die "expected $BIG_ROOMS BIG rooms in the default hotel, found $have"
}
# Rooms in the database and in the default hotel, for the report.
count_rooms() { sql -c "select count(*) || ' ' || count(*) filter (where h.is_default) || ' ' || count(distinct h.id)
                        from rooms r join hotels h on h.id = r.hotel_id"; }

# --- pgbench scripts ---------------------------------------------------------------
# From a statement with $1 room name, $2 user name, $3 the night and optionally
# $4 the caller's id (and, as book.sql takes them since the booking limits,
# $5 the horizon in days, $6 a guest's live bookings, $7 the caller's token
# version, with the service's defaults or BOOKING_HORIZON_DAYS / GUEST_MAX_BOOKINGS):
# the parameters become pgbench variables of the wrk script's ranges (nights
# counted from today in UTC, as the wrk scripts do).
gen_pgbench() { # src out room_prefix room_max night_min night_max
    python3 - "$@" <<'PY'
import re, sys
src, out, prefix, room_max, night_min, night_max = sys.argv[1:]
lines = [l.rstrip() for l in open(src) if not l.lstrip().startswith("--")]
statement = "\n".join(l for l in lines if l.strip()).strip().rstrip(";").strip()
params = {
    "1": f"('{prefix}' || :r::text)",
    "2": "('user' || :u::text)",
    "3": "((now() at time zone 'UTC')::date + :d::int)",
    "4": "(:caller::uuid)",
    "5": "(:horizon::integer)",
    "6": "(:guest_limit::bigint)",
    "7": "(:caller_ver::integer)",
}
found = set(re.findall(r"\$(\d+)", statement))
if not {"1", "2", "3"} <= found <= set(params):
    sys.exit(f"{src}: expected parameters $1, $2, $3 (and $4..$7), found {sorted(found)}; update wrk/bench.sh")
statement = re.sub(r"\$(\d+)", lambda m: params[m.group(1)], statement)
with open(out, "w") as f:
    f.write(f"\\set r random(0, {room_max})\n\\set u random(0, 49)\n"
            f"\\set d random({night_min}, {night_max})\n{statement};\n")
PY
}
gen_pgbench "$BOOK_SQL" "$RUN_DIR/seed-handler.pgbench" ROOM 49 0 30
gen_pgbench "$REFERENCE_SQL" "$RUN_DIR/seed-reference.pgbench" ROOM 49 0 30
gen_pgbench "$BOOK_SQL" "$RUN_DIR/insert-handler.pgbench" BIG $((BIG_ROOMS - 1)) 1 "$BIG_NIGHTS"
gen_pgbench "$REFERENCE_SQL" "$RUN_DIR/insert-reference.pgbench" BIG $((BIG_ROOMS - 1)) 1 "$BIG_NIGHTS"
PGBENCH_VARS=(-D "caller=$CALLER_ID" -D "caller_ver=$CALLER_VER" -D "horizon=${BOOKING_HORIZON_DAYS:-730}"
              -D "guest_limit=${GUEST_MAX_BOOKINGS:-20}")

# Bookings are emptied before each run: all of them, or (after the large data set
# is loaded) only the default hotel's, so that the large set keeps its bookings.
RESET_SCOPE=all
reset_bookings() {
    if [[ $RESET_SCOPE == all ]]; then
        sql -c 'truncate bookings cascade' -c 'checkpoint'
    else
        sql -c "delete from bookings where room_id in
                    (select r.id from rooms r join hotels h on h.id = r.hotel_id where h.is_default)" \
            -c 'checkpoint'
    fi
}
count_bookings() {
    sql -c "select count(*) from bookings b join rooms r on r.id = b.room_id join hotels h on h.id = r.hotel_id
            where h.is_default"
}
count_overlaps() {
    sql -c "select count(*)
            from bookings a
            join bookings b on b.room_id = a.room_id and a.id < b.id and a.stay && b.stay
            where a.status not in ('cancelled', 'no_show')
              and b.status not in ('cancelled', 'no_show')"
}

# Checks a workload's generated pgbench scripts: they run, and book.
check_pgbench_scripts() { # workload
    local side
    log "$1: checking the generated pgbench scripts"
    for side in handler reference; do
        reset_bookings
        run_child "$RUN_DIR/check-$1-$side.out" pgbench -n -M prepared "${PGBENCH_VARS[@]}" -c 1 -j 1 -t 20 \
            -f "$RUN_DIR/$1-$side.pgbench" "$DB_URL" \
            || { cat "$RUN_DIR/check-$1-$side.out" >&2; die "pgbench failed on $RUN_DIR/$1-$side.pgbench"; }
        [[ "$(count_bookings)" -ge 10 ]] || die "$RUN_DIR/$1-$side.pgbench booked $(count_bookings) of 20 nights"
    done
}

# --- One measured step -------------------------------------------------------------
RESULTS_JSONL="$RUN_DIR/results.jsonl"
: >"$RESULTS_JSONL"
harvest_log   # start-up and set-up lines

pgss_reset() { [[ $PGSS == 1 ]] && sql -c 'select pg_stat_statements_reset()' >/dev/null || true; }
pgss_snapshot() { # out: the statements run since the reset (JSON lines)
    if [[ $PGSS == 1 ]]; then
        sql -c "select json_build_object('query', regexp_replace(left(query, 2000), '\s+', ' ', 'g'),
                                         'calls', calls, 'mean_ms', mean_exec_time, 'total_ms', total_exec_time,
                                         'rows', rows)
                from pg_stat_statements
                where dbid = (select oid from pg_database where datname = current_database())
                  and query !~* 'pg_stat_statements|^checkpoint|^truncate'
                order by calls desc" >"$1"
    else
        : >"$1"
    fi
}

# pgbench on one script; prints "tps xacts rows overlaps" and leaves per-transaction logs.
# The settings of the service's connections for POST /book (db::book::book_pool),
# for pgbench of the handler's statement.
BOOK_PGOPTIONS="-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
run_pgbench() { # tag script conns jobs booking(0|1) [PGOPTIONS]
    local tag="$1" script="$2" conns="$3" jobs="$4" booking="$5" options="${6:-}" tps xacts rows=0 overlaps=0
    [[ $booking == 1 ]] && reset_bookings
    service_and_pg_cpu >"$RUN_DIR/$tag.cpu0"
    children_cpu "$RUN_DIR/$tag.client0"
    run_child "$RUN_DIR/$tag.pgbench" \
        env PGOPTIONS="$options" pgbench -n -M prepared "${PGBENCH_VARS[@]}" -c "$conns" -j "$jobs" -T "$DURATION" \
            -l --log-prefix="$RUN_DIR/$tag.pglog" -f "$script" "$DB_URL" \
        || { cat "$RUN_DIR/$tag.pgbench" >&2; die "pgbench failed on $script"; }
    children_cpu "$RUN_DIR/$tag.client1"
    # pgbench's backends end as it disconnects: give the postmaster time to
    # collect them, so that their time is in its children's time, not lost in between.
    sleep 0.5
    service_and_pg_cpu >"$RUN_DIR/$tag.cpu1"
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$RUN_DIR/$tag.pgbench" | tail -n 1)
    [[ -n "$tps" ]] || { cat "$RUN_DIR/$tag.pgbench" >&2; die "no tps in pgbench's output"; }
    xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$RUN_DIR/$tag.pgbench")
    if [[ $booking == 1 ]]; then rows=$(count_bookings); overlaps=$(count_overlaps); fi
    echo "$tps ${xacts:-0} $rows $overlaps"
}

# measure STEP WORKLOAD THREADS CONNS [INSTANCES]: wrk (split over INSTANCES
# service processes), then pgbench of the handler's SQL and of the reference.
measure() {
    local step="$1" workload="$2" threads="$3" conns="$4" instances="${5:-1}"
    local tag="$step-t$threads-c$conns" lua booking=1 jobs i pids=() rc rooms
    case "$workload" in
        seed) lua="$BENCH_DIR/post_book.lua" ;;
        insert) lua="$BENCH_DIR/insert_book.lua" ;;
        search) lua="$BENCH_DIR/search.lua"; booking=0 ;;
    esac
    jobs=$(( threads < conns ? threads : conns ))
    # wrk 4.1 opens CONNS / THREADS connections per thread (-t4 -c10: 8), so
    # pgbench gets as many clients: the same concurrency on both sides.
    local clients=$(( conns / threads * threads ))
    ((clients < 1)) && clients=1
    ((jobs > clients)) && jobs=$clients
    rooms=$(count_rooms)

    if ((instances > 1)); then
        log "$step: wrk -t$threads -c$conns -d${DURATION}s split over $instances service processes"
    else
        log "$step: wrk -t$threads -c$conns -d${DURATION}s"
    fi
    [[ $booking == 1 ]] && reset_bookings
    pgss_reset
    # The machine's 1-minute load average before the run (this benchmark alone keeps it
    # near 2 to 3 on two cores; more means other work competed for the cores).
    local load
    load="$(cut -d ' ' -f 1 /proc/loadavg)"
    service_and_pg_cpu >"$RUN_DIR/$tag.cpu0"
    children_cpu "$RUN_DIR/$tag.client0"
    if ((instances == 1)); then
        run_child "$RUN_DIR/$tag.wrk.0" wrk -t"$threads" -c"$conns" -d"${DURATION}s" -s "$lua" "$BASE_URL" \
            || { cat "$RUN_DIR/$tag.wrk.0" >&2; die "wrk failed"; }
    else
        # Threads and connections shared out as evenly as they go.
        for ((i = 0; i < instances; i++)); do
            local t=$(( threads / instances + (i < threads % instances ? 1 : 0) ))
            local c=$(( conns / instances + (i < conns % instances ? 1 : 0) ))
            ((t < 1)) && t=1
            wrk -t"$t" -c"$c" -d"${DURATION}s" -s "$lua" "http://127.0.0.1:$((PORT + i))" \
                >"$RUN_DIR/$tag.wrk.$i" 2>&1 &
            pids+=($!)
        done
        CHILD_PIDS=("${pids[@]}")
        for ((i = 0; i < instances; i++)); do
            rc=0; wait "${pids[$i]}" || rc=$?
            [[ $rc == 0 ]] || { cat "$RUN_DIR/$tag.wrk.$i" >&2; die "wrk failed"; }
        done
        CHILD_PIDS=()
    fi
    children_cpu "$RUN_DIR/$tag.client1"
    service_and_pg_cpu >"$RUN_DIR/$tag.cpu1"
    pgss_snapshot "$RUN_DIR/$tag.pgss"
    for ((i = 0; i < instances; i++)); do
        grep -q '^STATUS ' "$RUN_DIR/$tag.wrk.$i" || { cat "$RUN_DIR/$tag.wrk.$i" >&2; die "no STATUS line in wrk's output"; }
    done
    for pid in "${SERVICE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a service process died during the run"; done
    local svc_rows=0 svc_overlaps=0
    if [[ $booking == 1 ]]; then svc_rows=$(count_bookings); svc_overlaps=$(count_overlaps); fi

    local handler="- - - -" reference="- - - -"
    if ((instances == 1)); then
        log "$step: pgbench -c$clients -j$jobs -T$DURATION, the handler's SQL"
        handler=$(run_pgbench "$tag-handler" "$RUN_DIR/$workload-handler.pgbench" "$clients" "$jobs" "$booking" \
            "$([[ $booking == 1 ]] && echo "$BOOK_PGOPTIONS")")
        if [[ $booking == 1 ]]; then
            log "$step: pgbench -c$clients -j$jobs -T$DURATION, wrk/reference.sql"
            reference=$(run_pgbench "$tag-reference" "$RUN_DIR/$workload-reference.pgbench" "$clients" "$jobs" 1)
        fi
    fi
    harvest_log

    python3 - "$RUN_DIR" "$tag" "$step" "$workload" "$threads" "$conns" "$instances" "$rooms" \
        "$svc_rows" "$svc_overlaps" "$handler" "$reference" "$LOG_PROBLEMS" "$load" >>"$RESULTS_JSONL" <<'PY'
import glob, json, sys
(run_dir, tag, step, workload, threads, conns, instances, rooms, svc_rows, svc_overlaps,
 handler, reference, log_problems, load) = sys.argv[1:]
instances = int(instances)

def cpu_us(prefix, count):
    """CPU per request or transaction, in microseconds, during one run:
    the client (wrk or pgbench), the service, PostgreSQL (None: not measured)."""
    try:
        c0, c1 = (float(open(f"{prefix}.client{i}").read()) for i in (0, 1))
        (s0, p0), (s1, p1) = (open(f"{prefix}.cpu{i}").read().split() for i in (0, 1))
    except (OSError, ValueError):
        return {"client": None, "service": None, "postgres": None}
    per = lambda a, b: round((float(b) - float(a)) / count * 1e6, 1) if count and a != "-" else None
    return {"client": per(c0, c1), "service": per(s0, s1), "postgres": per(p0, p1)}

def pgbench_figures(side, fields):
    tps, xacts, rows, overlaps = fields.split()
    if tps == "-":
        return {"tps": None}
    # pgbench -l: one line per transaction, the third field its latency in microseconds.
    lat = sorted(int(l.split()[2]) for f in glob.glob(f"{run_dir}/{tag}-{side}.pglog.*") for l in open(f) if l.strip())
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000 if lat else None
    cpu = cpu_us(f"{run_dir}/{tag}-{side}", int(xacts))
    return {"tps": float(tps), "xacts": int(xacts), "rows": int(rows), "overlaps": int(overlaps),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "cpu_us": {"pgbench": cpu["client"], "postgres": cpu["postgres"]}}

status, errors, per_instance = {}, {}, []
requests = rps = 0
for i in range(instances):
    out = {}
    for line in open(f"{run_dir}/{tag}.wrk.{i}"):
        key, _, rest = line.strip().partition(" ")
        out[key] = rest
    st = json.loads(out["STATUS"])
    p50, p99 = (int(x) / 1000 for x in out["LATENCY"].split())
    n, duration_us = (int(x) for x in out["REQUESTS"].split())
    for k, v in st.items():
        status[k] = status.get(k, 0) + v
    for k, v in json.loads(out["ERRORS"]).items():
        errors[k] = errors.get(k, 0) + v
    requests += n
    rps += n / (duration_us / 1e6)
    per_instance.append({"rps": n / (duration_us / 1e6), "p50_ms": p50, "p99_ms": p99, "status": st})

pgss = [json.loads(l) for l in open(f"{run_dir}/{tag}.pgss") if l.strip()]
calls = sum(s["calls"] for s in pgss)
db = pgbench_figures("handler", handler)
ref = pgbench_figures("reference", reference)
total_rooms, hotel_rooms, hotels = (int(x) for x in rooms.split())
run = {
    "step": step, "workload": workload, "threads": int(threads), "connections": int(conns),
    "instances": instances, "rooms": total_rooms, "hotel_rooms": hotel_rooms, "hotels": hotels,
    "rps": rps, "p50_ms": max(p["p50_ms"] for p in per_instance), "p99_ms": max(p["p99_ms"] for p in per_instance),
    "per_instance": per_instance if instances > 1 else None,
    "status": status, "errors": errors, "requests": requests,
    "db_tps": db["tps"], "db_p50_ms": db.get("p50_ms"), "db_p99_ms": db.get("p99_ms"),
    "db_xacts": db.get("xacts"), "db_rows": db.get("rows"),
    "reference_tps": ref["tps"], "ref_p50_ms": ref.get("p50_ms"), "ref_p99_ms": ref.get("p99_ms"),
    "ref_xacts": ref.get("xacts"), "ref_rows": ref.get("rows"),
    "service_rows": int(svc_rows),
    "overlaps": int(svc_overlaps) + db.get("overlaps", 0) + ref.get("overlaps", 0),
    "log_problems": int(log_problems), "load_1m": float(load),
    "cpu_us": {k if k != "client" else "wrk": v for k, v in cpu_us(f"{run_dir}/{tag}", requests).items()},
    "db_cpu_us": db.get("cpu_us"), "ref_cpu_us": ref.get("cpu_us"),
    "pgss": {"calls": calls, "calls_per_request": calls / requests if requests else None,
             "statements": pgss[:8]} if pgss else None,
}
fmt = lambda x, f: "-" if x is None else f.format(x)
print(f"    service {rps:.0f} req/s, p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms, {status}; "
      f"handler SQL {fmt(db['tps'], '{:.0f}')} tps; reference {fmt(ref['tps'], '{:.0f}')} tps; "
      f"service/reference {fmt(rps / ref['tps'] if ref['tps'] else None, '{:.2f}')}; "
      f"statements/request {fmt(run['pgss'] and run['pgss']['calls_per_request'], '{:.2f}')}; "
      f"overlaps {run['overlaps']}", file=sys.stderr)
print(json.dumps(run))
PY
}

# --- The search's data set and plan ---------------------------------------------------
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
SEARCH_EXPLAIN="$RUN_DIR/search-explain.txt"
timed_load() { # file what: loads a psql file, prints its seconds
    local t0 t1
    t0=$(date +%s.%N)
    run_child "$RUN_DIR/load-$2.out" \
        env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -f "$1" "$DB_URL" \
        || { cat "$RUN_DIR/load-$2.out" >&2; die "loading $1 failed"; }
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.1f}')"
}
load_search_data() {
    log "search: emptying bookings, loading $SEARCH_DATA"
    RESET_SCOPE=all reset_bookings
    SEARCH_LOAD_SECONDS=$(timed_load "$SEARCH_DATA" search)
    sql -c 'checkpoint'
    log "search: loaded in $SEARCH_LOAD_SECONDS s: $(sql -c "
        select (select count(*) from hotels where name like 'Search hotel %') || ' hotels, '
            || (select count(*) from rooms r join hotels h on h.id = r.hotel_id
                where h.name like 'Search hotel %') || ' rooms, '
            || (select count(*) from bookings) || ' bookings'")"
    gen_search "$RUN_DIR/search-handler.pgbench" pgbench
    log "search: checking the generated pgbench script"
    run_child "$RUN_DIR/check-search.out" pgbench -n -M prepared -c 1 -j 1 -t 20 -f "$RUN_DIR/search-handler.pgbench" "$DB_URL" \
        || { cat "$RUN_DIR/check-search.out" >&2; die "pgbench failed on $RUN_DIR/search-handler.pgbench"; }
    # One instance: City 3, 3 nights from 40 days ahead, 2 guests; run once to warm up, then explained.
    gen_search "$RUN_DIR/search-explain.sql" explain 3 40 3 2
    sql -f "$RUN_DIR/search-explain.sql" >/dev/null
    { echo "-- EXPLAIN (ANALYZE, BUFFERS) of src/db/search_hotels.sql: City 3, 3 nights from 40 days"
      echo "-- ahead, 2 guests, limit 20, on wrk/search_data.sql; written by wrk/bench.sh"
      echo
      sed 's/^/-- /' "$RUN_DIR/search-explain.sql"
      echo
      PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -v ON_ERROR_STOP=1 -f "$RUN_DIR/search-explain.sql"
    } >"$SEARCH_EXPLAIN" || die "EXPLAIN of the search failed"
    grep -q 'bookings_no_overlap' "$SEARCH_EXPLAIN" \
        || echo "bench.sh: warning: the search plan does not use bookings_no_overlap (see $SEARCH_EXPLAIN)" >&2
}

# --- The booking path's plans ----------------------------------------------------------
# Every statement a booking runs: POST /book (src/db/book.sql, and book_many.sql
# for the requests queued while every connection was busy), the reference, the
# auth check of every other route, and POST /bookings (context, allocation,
# pricing, insert, invoice, answer), taken from the .sqlx cache, i.e. the text
# the service sends. Each is prepared, and EXPLAIN (ANALYZE, BUFFERS) runs it with
# plan_cache_mode forced to generic and to custom, in a transaction rolled back.
BOOKING_EXPLAIN="$RUN_DIR/booking-explain.txt"
EXPLAIN_CHECK="$RUN_DIR/explain-check.json"
explain_booking_path() { # label (statistics state)
    local label="$1" vars="$RUN_DIR/explain-vars.json"
    # Values of the large data set for the parameters: hotel "Large hotel 42".
    sql -c "select json_build_object(
                'hotel', h.id, 'room_type', rt.id, 'rate_plan', rp.id,
                'room', (select id from rooms where hotel_id = h.id and name = 'ROOM7'),
                'user', (select id from users where name = 'large-user-42'),
                'booking', (select b.id from bookings b join rooms r on r.id = b.room_id
                            where r.hotel_id = h.id order by b.id limit 1),
                'caller', '$CALLER_ID', 'caller_ver', $CALLER_VER,
                'user_ver', coalesce((select (to_jsonb(u) ->> 'token_version')::int from users u
                                      where name = 'large-user-42'), 0),
                'horizon', ${BOOKING_HORIZON_DAYS:-730}, 'guest_limit', ${GUEST_MAX_BOOKINGS:-20},
                'check_in', current_date + 10, 'check_out', current_date + 13, 'night', current_date + 5)
            from hotels h
            join room_types rt on rt.hotel_id = h.id and rt.is_default
            join rate_plans rp on rp.hotel_id = h.id
            where h.name = 'Large hotel 42'" >"$vars"
    python3 - "$SQLX_DIR" "$BOOK_SQL" "$BOOK_MANY_SQL" "$REFERENCE_SQL" "$vars" "$RUN_DIR/explain-$label.sql" <<'PY' \
        || die "cannot build the EXPLAIN script of the booking path"
import glob, json, re, sys
sqlx_dir, book_sql, book_many_sql, reference_sql, vars_file, out = sys.argv[1:]
v = json.load(open(vars_file))

def file_statement(path):
    lines = [l.rstrip() for l in open(path) if not l.lstrip().startswith("--")]
    return "\n".join(l for l in lines if l.strip()).strip().rstrip(";").strip()

queries = [json.load(open(f))["query"] for f in sorted(glob.glob(f"{sqlx_dir}/query-*.json"))]
def cached(name, *patterns):
    """The one cached statement that matches the first pattern matching any."""
    for pattern in patterns:
        found = [q for q in queries if re.search(pattern, q, re.S)]
        if len(found) > 1:
            sys.exit(f"bench.sh: {len(found)} statements in .sqlx/ match {pattern!r} ({name}); update wrk/bench.sh")
        if found:
            return found[0]
    return None

# The statements of POST /book's own connections, planned as they plan them.
BOOK_CONNECTIONS = ("book", "book-many")
stay = f"daterange('{v['check_in']}', '{v['check_out']}')"
nights = (f"array['{v['check_in']}'::date, '{v['check_in']}'::date + 1, '{v['check_in']}'::date + 2]",
          "array[100.00, 100.00, 100.00]::numeric[]")
uuid = lambda key: f"'{v[key]}'::uuid"
# name, what it is, statement, {number of parameters: arguments of EXECUTE}; the
# variants follow the service's statements as they were and as they are on main
# (token version, booking limits, allocation excluding the rooms tried).
# A statement found in neither form stops the script; `optional` ones are skipped.
statements = [
    ("book", "POST /book (src/db/book.sql)", file_statement(book_sql),
     {4: ["'ROOM7'", "'user3'", f"'{v['night']}'::date", uuid("caller")],
      7: ["'ROOM7'", "'user3'", f"'{v['night']}'::date", uuid("caller"), str(v["horizon"]), str(v["guest_limit"]),
          str(v["caller_ver"])]}),
    ("book-many", "POST /book, the requests queued while every connection was busy (src/db/book_many.sql), 4 nights",
     file_statement(book_many_sql),
     {7: ["array['ROOM7', 'ROOM8', 'ROOM9', 'ROOM7']", "array['user3', 'user4', 'user5', 'user6']",
          f"array['{v['night']}'::date, '{v['night']}'::date, '{v['night']}'::date, '{v['night']}'::date + 1]",
          f"array[{uuid('caller')}, {uuid('caller')}, {uuid('caller')}, {uuid('caller')}]",
          str(v["horizon"]), str(v["guest_limit"]),
          f"array[{v['caller_ver']}, {v['caller_ver']}, {v['caller_ver']}, {v['caller_ver']}]"]}),
    ("reference", "wrk/reference.sql", file_statement(reference_sql),
     {3: ["'ROOM7'", "'user3'", f"'{v['night']}'::date"]}),
    ("auth", "the auth check of every route but /book (AuthUser)",
     cached("auth", r'^select role as "role: Role" from users where id = \$1( and token_version = \$2)?$'),
     {1: [uuid("user")], 2: [uuid("user"), str(v["user_ver"])]}),
    ("allocation-context", "POST /bookings: hotel, room type, rate plan",
     cached("context", r"from hotels h\s+join room_types rt on rt\.hotel_id = h\.id\s+join rate_plans rp"),
     {4: [uuid("hotel"), uuid("rate_plan"), uuid("room_type"), "null::uuid"]}),
    ("allocation-guest-limit", "POST /bookings by a guest: live bookings of the guest",
     cached("guest limit", r"from live_bookings b\s+where b\.user_id = u\.id.*from users u where u\.id = \$1"),
     {1: [uuid("user")]}, "optional"),
    ("allocation-free-rooms", "POST /bookings: free rooms of the type (free_rooms)",
     cached("free rooms", r"^select r\.id from rooms r\s+where r\.room_type_id = \$1"),
     {3: [uuid("room_type"), stay, "null::uuid"],
      5: [uuid("room_type"), stay, "null::uuid", "array[]::uuid[]", "8"]}),
    ("allocation-price", "POST /bookings: nightly rates (price_stay)",
     cached("price", r"from daily_rates\s+where room_type_id = \$1 and rate_plan_id = \$2"),
     {4: [uuid("room_type"), uuid("rate_plan"), f"'{v['check_in']}'::date", f"'{v['check_out']}'::date"]}),
    ("allocation-insert", "POST /bookings: insert",
     cached("insert", r"^insert into bookings \(room_id, user_id, stay, guests, check_in_at"),
     {7: [uuid("room"), uuid("user"), stay, "1", uuid("rate_plan"), "300.00", "'EUR'"]}),
    ("allocation-invoice", "POST /bookings: invoice (write_invoice)",
     cached("invoice", r"^with invoice as \(\s+insert into invoices"),
     {5: [uuid("booking"), "'EUR'", "300.00", nights[0], nights[1]]}),
    ("allocation-answer", "POST /bookings: the booking as answered",
     cached("answer", r"from unnest\(\$1::uuid\[\]\) with ordinality as wanted",
            r"from booking_details where id = \$1$",
            r"from booking_details\s+where \(\$1::uuid is null or id = \$1\)"),
     {1: [f"array[{uuid('booking')}]"],
      8: [uuid("booking"), "null::booking_status", "null::uuid", "null::date", "null::date", "null::uuid", "1", "0"]}),
]
found = []
for name, what, text, variants, *optional in statements:
    if text is None:
        if optional:
            continue
        sys.exit(f"bench.sh: the statement '{name}' ({what}) is not in .sqlx/ in any form known; update wrk/bench.sh")
    n = len(set(re.findall(r"\$(\d+)", text)))
    if n not in variants:
        sys.exit(f"bench.sh: the statement '{name}' now takes {n} parameters; update wrk/bench.sh")
    found.append((name, what, text, variants[n]))
statements = found
with open(out, "w") as f:
    f.write("\\set ON_ERROR_STOP on\n\\pset pager off\nset client_min_messages = warning;\n")
    for name, what, text, args in statements:
        n = len(set(re.findall(r"\$(\d+)", text)))
        if n != len(args):
            sys.exit(f"bench.sh: {name} now takes {n} parameters, not {len(args)}; update wrk/bench.sh")
        f.write(f"prepare {name.replace('-', '_')} as\n{text};\n")
    # Once each first, unexplained: the session's first insert also reads the
    # catalogs for the foreign keys' triggers, which is no part of the statement.
    f.write("\\o /dev/null\n")
    for name, what, text, args in statements:
        f.write(f"begin;\nexecute {name.replace('-', '_')}({', '.join(args)});\nrollback;\n")
    f.write("\\o\n")
    # POST /book's own connections run with enable_seqscan off (db::book::book_pool).
    own = lambda name: "set local enable_seqscan = off;\n" if name in BOOK_CONNECTIONS else ""
    for mode in ("generic", "custom"):
        f.write(f"set plan_cache_mode = force_{mode}_plan;\n")
        for name, what, text, args in statements:
            f.write(f"\\echo '=== {name} [{mode} plan]: {what}'\n")
            f.write(f"begin;\n{own(name)}explain (analyze, buffers) execute {name.replace('-', '_')}({', '.join(args)});\nrollback;\n")
PY
    {
        echo "=== statistics: $label"
        sql -c "select format('%-10s %9s rows, statistics for %9s (%s), %s changed since',
                              c.relname, s.n_live_tup, c.reltuples,
                              coalesce(greatest(s.last_analyze, s.last_autoanalyze)::text, 'never analyzed'),
                              s.n_mod_since_analyze)
                from pg_class c join pg_stat_user_tables s on s.relid = c.oid
                where c.relname in ('hotels', 'rooms', 'users', 'bookings', 'room_types', 'daily_rates')
                order by c.relname"
        echo
        PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -q -f "$RUN_DIR/explain-$label.sql"
        echo
    } >>"$BOOKING_EXPLAIN" 2>&1 || { tail -n 20 "$BOOKING_EXPLAIN" >&2; die "EXPLAIN of the booking path failed"; }
}
# Writes EXPLAIN_CHECK: per plan its sequential scans, the buffers its execution
# touched and its time. Fails (returns 1) on a sequential scan of rooms, users or
# bookings; a plan touching more than BUFFERS_WARN buffers is reported as one whose
# cost grows with the data (a bounded lookup touches a few dozen).
BUFFERS_WARN=200
check_booking_plans() {
    python3 - "$BOOKING_EXPLAIN" "$EXPLAIN_CHECK" "$BUFFERS_WARN" <<'PY'
import json, re, sys
text, out, warn = sys.argv[1:]
state, plan, plans = None, None, []
for line in open(text):
    m = re.match(r"=== statistics: (.*)", line)
    if m:
        state = m.group(1).strip()
    m = re.match(r"=== (\S+) \[(\w+) plan\]", line)
    if m:
        plan = {"statement": m.group(1), "plan": m.group(2), "statistics": state,
                "seq_scans": [], "buffers": None, "ms": None}
        plans.append(plan)
        continue
    if not plan:
        continue
    m = re.search(r"Seq Scan on (\w+)", line)
    if m:
        plan["seq_scans"].append(m.group(1))
    m = re.search(r"Buffers: shared((?: \w+=\d+)+)", line)
    if m and plan["buffers"] is None:   # the top node's: the whole execution
        counts = dict(kv.split("=") for kv in m.group(1).split())
        plan["buffers"] = int(counts.get("hit", 0)) + int(counts.get("read", 0))
    m = re.search(r"Execution Time: ([\d.]+) ms", line)
    if m:
        plan["ms"] = float(m.group(1))
name = lambda p: f"{p['statement']} [{p['plan']}, {p['statistics']}]"
# POST /book's own connections run with enable_seqscan off: their statements
# may scan nothing; the others no table that grows with the inventory.
failed = [f"{t} in {name(p)}" for p in plans for t in p["seq_scans"]
          if t in ("rooms", "users", "bookings") or p["statement"] in ("book", "book-many")]
heavy = [f"{name(p)}: {p['buffers']} buffers, {p['ms']} ms" for p in plans if (p["buffers"] or 0) > int(warn)]
json.dump({"plans": plans, "failed": failed, "heavy": heavy, "buffers_warn": int(warn),
           "ok": not failed and bool(plans)}, open(out, "w"), indent=2)
others = sorted({f"{t} in {p['statement']}" for p in plans for t in p["seq_scans"]})
print(f"    {len(plans)} plans checked; sequential scans: {', '.join(others) or 'none'}"
      + (f"; FAILED: {', '.join(failed)}" if failed else "; none of rooms, users or bookings"), file=sys.stderr)
for h in heavy:
    print(f"    more than {warn} buffers: {h}", file=sys.stderr)
sys.exit(1 if failed or not plans else 0)
PY
}

LARGE_LOAD_SECONDS=""
load_large_inventory() {
    log "large: emptying bookings, loading $LARGE_DATA"
    RESET_SCOPE=all reset_bookings
    LARGE_LOAD_SECONDS=$(timed_load "$LARGE_DATA" large)
    log "large: loaded in $LARGE_LOAD_SECONDS s: $(sql -c "
        select (select count(*) from hotels) || ' hotels, ' || (select count(*) from rooms) || ' rooms, '
            || (select count(*) from users) || ' users, ' || (select count(*) from bookings) || ' bookings'")"
    : >"$BOOKING_EXPLAIN"
    log "large: EXPLAIN of the booking path, statistics as the bulk load left them"
    explain_booking_path "after the bulk load, before ANALYZE"
    sql -c 'vacuum (analyze)' -c 'checkpoint'
    log "large: EXPLAIN of the booking path after VACUUM (ANALYZE)"
    explain_booking_path "after VACUUM (ANALYZE)"
    PLAN_CHECK=ok
    check_booking_plans || PLAN_CHECK=failed
}

# --- Profile ---------------------------------------------------------------------------
if [[ $PROFILE == 1 ]]; then
    check_pgbench_scripts seed
    PERF_DATA="$RUN_DIR/perf.data"
    tag=profile-seed
    reset_bookings
    pgss_reset
    log "profile: wrk -t4 -c10 -d${DURATION}s on the seed workload, perf record -a -g"
    perf record -a -g -F 499 -o "$PERF_DATA" -- \
        wrk -t4 -c10 -d"${DURATION}s" -s "$BENCH_DIR/post_book.lua" "$BASE_URL" >"$RUN_DIR/$tag.wrk" 2>"$RUN_DIR/perf-record.log" \
        || { cat "$RUN_DIR/perf-record.log" >&2; die "perf record failed"; }
    pgss_snapshot "$RUN_DIR/$tag.pgss"
    harvest_log
    # The reference under pgbench, profiled the same way, with as many clients
    # as wrk opens connections (8): what PostgreSQL's work costs it there.
    reset_bookings
    log "profile: pgbench -c8 -j4 -T$DURATION of wrk/reference.sql, perf record -a -g"
    perf record -a -g -F 499 -o "$RUN_DIR/perf-reference.data" -- \
        pgbench -n -M prepared "${PGBENCH_VARS[@]}" -c 8 -j 4 -T "$DURATION" \
            -f "$RUN_DIR/seed-reference.pgbench" "$DB_URL" >"$RUN_DIR/$tag.pgbench" 2>"$RUN_DIR/perf-record-reference.log" \
        || { cat "$RUN_DIR/perf-record-reference.log" >&2; die "perf record of pgbench failed"; }
    perf script -i "$PERF_DATA" --comms postgres 2>/dev/null >"$RUN_DIR/perf-postgres.txt" || true
    perf script -i "$RUN_DIR/perf-reference.data" --comms postgres 2>/dev/null >"$RUN_DIR/perf-postgres-reference.txt" || true
    mkdir -p "$RESULTS_DIR"
    SERVICE_PID="${SERVICE_PIDS[0]}"
    perf script -i "$PERF_DATA" --pid "$SERVICE_PID" 2>/dev/null >"$RUN_DIR/perf-service.txt"
    if command -v inferno-collapse-perf >/dev/null 2>&1; then
        inferno-collapse-perf <"$RUN_DIR/perf-service.txt" >"$RUN_DIR/perf-service.folded"
        inferno-flamegraph --title "room-booking under wrk -t4 -c10 (seed workload)" \
            <"$RUN_DIR/perf-service.folded" >"$RESULTS_DIR/flamegraph-seed.svg"
    else
        echo "bench.sh: inferno not found (cargo install inferno): no flame graph" >&2
    fi
    perf report -i "$PERF_DATA" --sort comm --stdio --no-children 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -n 15 >"$RUN_DIR/perf-comm.txt" || true
    perf report -i "$PERF_DATA" --pid "$SERVICE_PID" --sort sym --stdio --no-children -g none 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -n 40 >"$RUN_DIR/perf-sym.txt" || true
    python3 - "$RUN_DIR" "$tag" "$RESULTS_DIR/profile-seed.md" "$COMMAND_LINE" "$DURATION" <<'PY'
import datetime, json, sys
run_dir, tag, out, command, duration = sys.argv[1:]
wrk = {}
for line in open(f"{run_dir}/{tag}.wrk"):
    key, _, rest = line.strip().partition(" ")
    wrk[key] = rest
n, us = (int(x) for x in wrk["REQUESTS"].split())
p50, p99 = (int(x) / 1000 for x in wrk["LATENCY"].split())
pgss = [json.loads(l) for l in open(f"{run_dir}/{tag}.pgss") if l.strip()]
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
md = [f"# Profile of POST /book under the seed workload, {now}", "",
      f"- Command: `{command}` (wrk -t4 -c10, {duration} s, under `perf record -a -g -F 499`)",
      f"- wrk: {n / (us / 1e6):.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, {wrk['STATUS']}",
      "- Flame graph of the service's stacks: `wrk/results/flamegraph-seed.svg`", "",
      "CPU samples by command, whole machine (perf report --sort comm):", "", "```",
      open(f"{run_dir}/perf-comm.txt").read().rstrip(), "```", "",
      "The service's hottest functions (self time, share of all samples):", "", "```",
      open(f"{run_dir}/perf-sym.txt").read().rstrip(), "```", ""]
# Inclusive shares of the service's own samples (weighted by cycles): stacks that
# contain a frame of each kind. They overlap (the log line's write is also a syscall).
import os, re
folded = f"{run_dir}/perf-service.folded"
if os.path.exists(folded):
    kinds = [
        ("kernel: TCP to and from wrk", r"tcp_sendmsg|tcp_recvmsg|tcp_v4_rcv|tcp_ack"),
        ("kernel: the Unix socket to PostgreSQL", r"unix_stream"),
        ("kernel: epoll (waiting for I/O readiness)", r"epoll"),
        ("hyper: HTTP/1 parsing and writing", r"hyper::proto::h1::(role|io|decode|encode)|httparse"),
        ("the per-request log line (tracing_subscriber: format and write)", r"tracing_subscriber"),
        ("sqlx: the one statement, encode, decode, pool", r"sqlx_core|sqlx_postgres"),
        ("JWT verification (room_booking::auth::Keys::verify)", r"Keys::verify|jsonwebtoken"),
        ("JSON request and answer bodies (serde_json)", r"serde_json"),
        ("problem document of the 409 (room_booking::error)", r"room_booking::error"),
        ("malloc / free (mimalloc's mi_*, or the C library's)",
         r"^(_?mi_|malloc|cfree|free|realloc|_int_malloc|_int_free|malloc_consolidate)"),
        ("tokio timers (request timeout)", r"tokio::runtime::time|tokio::time"),
    ]
    total, counts = 0, {k: 0 for k, _ in kinds}
    for line in open(folded):
        stack, _, weight = line.rstrip().rpartition(" ")
        weight = int(weight)
        total += weight
        frames = stack.split(";")
        for k, rx in kinds:
            if any(re.search(rx, fr) for fr in frames):
                counts[k] += weight
    md += ["Where the service's own CPU goes (share of its samples whose stack contains such a frame; "
           "the kinds overlap):", "", "| share | kind |", "|---:|---|"]
    md += [f"| {100 * counts[k] / total:.1f} % | {k} |" for k, _ in kinds if total]
    md.append("")
# PostgreSQL's side: CPU per request (the service's run) and per transaction
# (the reference under pgbench), in microseconds, by the functions on the
# stack (inclusive; 499 samples a second of each core).
def postgres_functions(path):
    samples, counts = 0, {}
    frames = []
    def flush():
        nonlocal samples
        if frames:
            samples += 1
            for name in set(frames):
                counts[name] = counts.get(name, 0) + 1
    for line in open(path, errors="replace"):
        if not line.strip():
            flush(); frames = []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1].rsplit(" (", 1)[0].split("+0x")[0])
    flush()
    return samples, counts
reference_tx = None
for line in open(f"{run_dir}/{tag}.pgbench"):
    if line.startswith("number of transactions actually processed:"):
        reference_tx = int(line.split(":")[1].split("/")[0])
functions = [
    ("PostgresMain", "the backend, all of it"),
    ("PortalRun", "running the statement"),
    ("standard_ExecutorStart", "setting up the plan's nodes"),
    ("standard_ExecutorRun", "the lookups and the insert attempt"),
    ("ExecCheckIndexConstraints", "the exclusion constraint's probe"),
    ("ExecConstraints", "the CHECK constraints"),
    ("GetCachedPlan", "the prepared statement's plan"),
    ("CommitTransactionCommand", "commit"),
    ("pq_getbyte", "reading from the client"),
    ("__send", "writing to the client"),
    ("epoll_wait", "waiting for the client"),
]
try:
    service_samples, service_counts = postgres_functions(f"{run_dir}/perf-postgres.txt")
    reference_samples, reference_counts = postgres_functions(f"{run_dir}/perf-postgres-reference.txt")
except OSError:
    service_samples = 0
if service_samples and reference_samples and reference_tx:
    per_request = 1e6 / 499 / n
    per_transaction = 1e6 / 499 / reference_tx
    md += ["PostgreSQL's CPU by function on the stack (inclusive), in microseconds per request of the "
           f"service's run and per transaction of `wrk/reference.sql` under pgbench (-c8 -j4, {duration} s, "
           f"{reference_tx} transactions), from `perf script --comms postgres`:", "",
           "| function | what | service run, µs/request | reference, µs/transaction |", "|---|---|---:|---:|",
           f"| (all samples) | PostgreSQL's processes | {service_samples * per_request:.1f} | "
           f"{reference_samples * per_transaction:.1f} |"]
    md += [f"| `{f}` | {what} | {service_counts.get(f, 0) * per_request:.1f} | "
           f"{reference_counts.get(f, 0) * per_transaction:.1f} |" for f, what in functions]
    md.append("")
if pgss:
    calls = sum(s["calls"] for s in pgss)
    md += [f"pg_stat_statements during the run: {calls} statements for {n} requests "
           f"({calls / n:.2f} per request)", "",
           "| calls | mean ms | total ms | statement |", "|---:|---:|---:|---|"]
    for s in pgss[:10]:
        md.append(f"| {s['calls']} | {s['mean_ms']:.3f} | {s['total_ms']:.0f} | `{s['query'][:140]}` |")
    md.append("")
open(out, "w").write("\n".join(md))
print("\n".join(md))
PY
    stop_services
    exit 0
fi

# --- Runs ------------------------------------------------------------------------------
PLAN_CHECK=""
for step in seed insert search large scaleout; do
    wants "$step" || continue
    case "$step" in
        seed|insert|search)
            # The seed step runs with ROOM0..49 alone; the BIG rooms come just before the insert step.
            [[ $step == insert ]] && create_big_rooms
            [[ $step == search ]] && { load_search_data; harvest_log; }
            [[ $step != search ]] && check_pgbench_scripts "$step"
            for config in "${CONFIGS[@]}"; do
                measure "$step" "$step" "${config%x*}" "${config#*x}"
            done
            ;;
        large)
            load_large_inventory
            RESET_SCOPE=default-hotel
            harvest_log
            measure large seed 4 10
            ;;
        scaleout)
            if ((INSTANCES < 2)); then
                log "scaleout: --instances $INSTANCES, nothing to scale out"
                continue
            fi
            for ((i = 1; i < INSTANCES; i++)); do
                start_service $((PORT + i)) --no-migrate
            done
            harvest_log
            measure scaleout seed 4 10 "$INSTANCES"
            ;;
    esac
done
stop_services
if [[ -s "$SERVICE_PROBLEMS" ]]; then
    echo "bench.sh: the service logged warnings or errors; the first ones:" >&2
    head -n 10 "$SERVICE_PROBLEMS" >&2
fi

# --- Report ----------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y-%m-%d-%H%M)"
MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
[[ -f "$SEARCH_EXPLAIN" ]] && cp "$SEARCH_EXPLAIN" "$RESULTS_DIR/search-explain.txt"
[[ -s "$BOOKING_EXPLAIN" ]] && cp "$BOOKING_EXPLAIN" "$RESULTS_DIR/booking-explain.txt"
PG_VERSION="$(sql -c 'show server_version' 2>/dev/null || echo unknown)"
set +e
python3 - "$RESULTS_JSONL" "$RESULTS_DIR" "$STAMP" "$MACHINE" "$COMMAND_LINE" "$DURATION" \
    "${POOL_SIZE:-twice the cores (default)}, POST /book ${BOOK_POOL_SIZE:-the cores, at least two (default)}" "${DATABASE_URL:+DATABASE_URL}" "$BIG_ROOMS" \
    "$SEARCH_LOAD_SECONDS" "$SEARCH_EXPLAIN" "$LARGE_LOAD_SECONDS" "$EXPLAIN_CHECK" "$PLAN_CHECK" \
    "${RUST_LOG:-info (default)}" "$PG_VERSION" <<'PY'
import datetime, json, os, statistics, sys
(jsonl, results_dir, stamp, machine, command, duration, pool, external, big_rooms,
 search_load, search_explain, large_load, explain_check, plan_check, rust_log, pg_version) = sys.argv[1:]
runs = [json.loads(l) for l in open(jsonl) if l.strip()]
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()

def share(run, pred):
    total = sum(run["status"].values())
    return 100 * sum(v for k, v in run["status"].items() if pred(k)) / total if total else 0.0

def ratio(a, b):
    return a / b if a is not None and b else None

def f(x, spec="{:.2f}"):
    return "-" if x is None else spec.format(x)

def entry(r):
    return {
        "threads": r["threads"], "connections": r["connections"], "instances": r["instances"],
        "rooms": r["rooms"], "hotel_rooms": r["hotel_rooms"],
        "rps": round(r["rps"], 1), "p50_ms": round(r["p50_ms"], 3), "p99_ms": round(r["p99_ms"], 3),
        "status": r["status"], "errors": r["errors"],
        "db_tps": r["db_tps"] and round(r["db_tps"], 1), "db_p50_ms": r["db_p50_ms"], "db_p99_ms": r["db_p99_ms"],
        "reference_tps": r["reference_tps"] and round(r["reference_tps"], 1),
        "ref_p50_ms": r["ref_p50_ms"], "ref_p99_ms": r["ref_p99_ms"],
        # service / handler SQL (what the HTTP layer costs) and service / reference (the targets').
        "ratio": r["db_tps"] and round(r["rps"] / r["db_tps"], 3),
        "ratio_reference": r["reference_tps"] and round(r["rps"] / r["reference_tps"], 3),
        "statements_per_request": r["pgss"] and r["pgss"]["calls_per_request"] and round(r["pgss"]["calls_per_request"], 3),
        "overlaps": r["overlaps"], "load_1m": r["load_1m"],
        # CPU time per request (wrk, the service, PostgreSQL) and per pgbench
        # transaction (pgbench, PostgreSQL), in microseconds.
        "cpu_us": r.get("cpu_us"), "db_cpu_us": r.get("db_cpu_us"), "ref_cpu_us": r.get("ref_cpu_us"),
    }

doc = {"date": now, "machine": machine, "command": command, "postgresql": pg_version,
       "workloads": {}, "overlaps": 0}
for r in runs:
    doc["overlaps"] += r["overlaps"]
    if r["step"] in ("seed", "insert", "search"):
        doc["workloads"].setdefault(r["step"], []).append(entry(r))
if search_load:
    doc["search_data_load_s"] = float(search_load)
check = json.load(open(explain_check)) if os.path.exists(explain_check) else None
seed_c10 = next((r for r in runs if r["step"] == "seed" and (r["threads"], r["connections"]) == (4, 10)), None)
large = next((r for r in runs if r["step"] == "large"), None)
if large:
    doc["large_inventory"] = dict(entry(large), setup_s=float(large_load) if large_load else None,
                                  hotels=large["hotels"],
                                  p50_vs_seed=ratio(large["p50_ms"], seed_c10 and seed_c10["p50_ms"]),
                                  explain_check=check)
scale = next((r for r in runs if r["step"] == "scaleout"), None)
if scale:
    doc["scale_out"] = dict(entry(scale), per_instance=scale["per_instance"],
                            vs_one_instance=ratio(scale["rps"], seed_c10 and seed_c10["rps"]))

labels = {"seed": "seed", "insert": "insert", "search": "search", "large": "seed, large inventory",
          "scaleout": "seed, scale-out"}
md = [f"# POST /book and GET /hotels (search) benchmark, {now}", "",
      f"- Machine: {machine}; PostgreSQL {pg_version}",
      f"- Command: `{command}` ({duration} s per wrk and per pgbench run)",
      f"- Database: {'external (DATABASE_URL)' if external else 'own PostgreSQL of wrk/bench.sh (fresh cluster, pg_stat_statements loaded)'}; "
      f"service pool size {pool}, log level {rust_log}",
      f"- seed: `wrk/post_book.lua`, ROOM0..49 x user0..49 x nights 0..30; "
      f"insert: `wrk/insert_book.lua`, BIG0..{int(big_rooms) - 1} x user0..49 x nights 1..365",
      "- search: `wrk/search.lua`, GET /hotels?city=City 0..9, check-in 0..299 days ahead, 1..5 nights, "
      "1..4 guests, on `wrk/search_data.sql` (100 hotels, 10,000 rooms, 1,000,000 bookings"
      + (f"; loaded in {search_load} s)" if search_load else ")"),
      "- large: the seed workload after `wrk/large_inventory.sql` (100 hotels x 1,000 rooms named ROOM0..999, "
      "100,000 users, 100,000 bookings" + (f"; loaded in {large_load} s" if large_load else "") + ")",
      "- handler tps: pgbench running the statement of `src/db/book.sql` (with the settings of the service's "
      "connections for it: generic plans, enable_seqscan off) or `src/db/search_hotels.sql` "
      "with the wrk script's ranges, as many clients as wrk opens connections (wrk 4.1: CONNS // THREADS per thread, so -t4 -c10 is 8); reference tps: pgbench running `wrk/reference.sql`, "
      "the smallest correct seed booking",
      "- svc/ref = service req/s / reference tps (the targets' ratio); svc/handler = service req/s / "
      "handler tps (what HTTP, auth and JSON cost over the same SQL); stmts/req: statements PostgreSQL "
      "ran per request during the wrk run (pg_stat_statements); load: the machine's 1-minute load average "
      "before the wrk run (the benchmark alone keeps it near 2 to 3 on two cores: more means other work "
      "competed for the cores, and the figures of that row are not comparable)", "",
      "| workload | wrk | rooms (hotel) | rps | p50 ms | p99 ms | % 2xx | % 409 | % other | handler tps | reference tps | svc/ref | svc/handler | stmts/req | overlaps | load |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in runs:
    wrk = f"-t{r['threads']} -c{r['connections']}" + (f" on {r['instances']} processes" if r["instances"] > 1 else "")
    s2 = share(r, lambda k: k.startswith("2"))
    s409 = share(r, lambda k: k == "409")
    so = 100 - s2 - s409 if r["status"] else 0.0
    so = 0.0 if abs(so) < 1e-9 else so
    e = entry(r)
    md.append(f"| {labels[r['step']]} | {wrk} | {r['rooms']:,} ({r['hotel_rooms']:,}) | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {s2:.1f} | {s409:.1f} | {so:.1f} | {f(r['db_tps'], '{:.0f}')} | "
              f"{f(r['reference_tps'], '{:.0f}')} | {f(e['ratio_reference'])} | {f(e['ratio'])} | "
              f"{f(e['statements_per_request'])} | {r['overlaps']} | {r['load_1m']:.1f} |")
md.append("")

def cpu_cells(cpu, keys):
    cpu = cpu or {}
    values = [cpu.get(k) for k in keys]
    total = sum(values) if all(v is not None for v in values) else None
    return [f(v, "{:.0f}") for v in values] + [f(total, "{:.0f}")]

cpu_runs = [r for r in runs if r.get("cpu_us") and r["cpu_us"].get("wrk") is not None]
if cpu_runs:
    md += ["CPU time per request of each run, in microseconds of one core (user + system, from /proc and "
           "bash's `times`): the service's run (wrk, the service, PostgreSQL) and, per transaction, the "
           "pgbench runs (pgbench, PostgreSQL). Client, server and database share the machine's cores: "
           "at full load, a run's rate is about the cores' microseconds per second over its total.", "",
           "| workload | wrk | service run: wrk | service | PostgreSQL | total | handler SQL: pgbench | PostgreSQL | total "
           "| reference: pgbench | PostgreSQL | total |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cpu_runs:
        wrk = f"-t{r['threads']} -c{r['connections']}" + (f" on {r['instances']} processes" if r["instances"] > 1 else "")
        cells = (cpu_cells(r["cpu_us"], ["wrk", "service", "postgres"])
                 + cpu_cells(r.get("db_cpu_us"), ["pgbench", "postgres"])
                 + cpu_cells(r.get("ref_cpu_us"), ["pgbench", "postgres"]))
        md.append(f"| {labels[r['step']]} | {wrk} | " + " | ".join(cells) + " |")
    md.append("")

# The benchmark's targets (README, "Benchmark"), in this run (the README quotes medians of 3 runs).
fails = []
def target(name, value, ok, shown):
    md.append(f"- {name}: {shown} — {'met' if ok else 'MISSED'}" if value is not None else f"- {name}: not measured")
insert_c10 = next((r for r in runs if r["step"] == "insert" and (r["threads"], r["connections"]) == (4, 10)), None)
seed_c80 = next((r for r in runs if r["step"] == "seed" and (r["threads"], r["connections"]) == (8, 80)), None)
md += ["Targets (this run):", ""]
v = seed_c10 and ratio(seed_c10["rps"], seed_c10["reference_tps"])
target("seed -t4 -c10 >= 0.5 x reference", v, v is not None and v >= 0.5, f"{f(v)} x")
v = insert_c10 and ratio(insert_c10["rps"], insert_c10["reference_tps"])
target("insert -t4 -c10 >= 0.8 x reference", v, v is not None and v >= 0.8, f"{f(v)} x")
v = seed_c80 and seed_c80["p99_ms"]
target("seed -t8 -c80 p99 <= 15 ms", v, v is not None and v <= 15, f"{f(v)} ms")
v = large and seed_c10 and ratio(large["p50_ms"], seed_c10["p50_ms"])
target("large inventory: /book p50 within 1.2 x of 50 rooms", v, v is not None and v <= 1.2,
       f"{f(large and large['p50_ms'])} ms vs {f(seed_c10 and seed_c10['p50_ms'])} ms, {f(v)} x "
       f"(reference tps {f(large and large['reference_tps'], '{:.0f}')} vs "
       f"{f(seed_c10 and seed_c10['reference_tps'], '{:.0f}')})")
five = sum(v for r in runs for k, v in r["status"].items() if k.startswith("5"))
md.append(f"- no 5xx: {five} — {'met' if five == 0 else 'MISSED'}")
md.append(f"- no overlapping live bookings (SQL self-join after every wrk and pgbench run): "
          f"{doc['overlaps']} — {'met' if doc['overlaps'] == 0 else 'MISSED'}")
if check:
    md.append(f"- booking path plans without a sequential scan of rooms, users or bookings, and POST /book's "
              f"statements without any ({len(check['plans'])} plans, generic and custom, stale and fresh statistics): "
              + ("met" if check["ok"] else "MISSED: " + ", ".join(check["failed"])))
md.append("")

notes = []
for r in runs:
    expected = ("200",) if r["workload"] == "search" else ("201", "409")
    other = {k: v for k, v in r["status"].items() if k not in expected}
    errors = {k: v for k, v in r["errors"].items() if v}
    if other or errors or r["log_problems"]:
        notes.append(f"- {labels[r['step']]} -t{r['threads']} -c{r['connections']}: "
                     + ", ".join([f"{v} x {k}" for k, v in sorted(other.items())]
                                 + [f"{v} socket {k} errors" for k, v in sorted(errors.items())]
                                 + ([f"{r['log_problems']} WARN/ERROR lines in the service log"]
                                    if r["log_problems"] else [])))
md += ["Other answers, socket errors, service log warnings:", ""] + (notes or ["- none"]) + [""]

book_runs = [r for r in runs if r["workload"] != "search"]
if book_runs:
    md += ["Nights booked in the default hotel per run (service 201s; pgbench: rows of transactions):", ""]
for r in book_runs:
    line = f"- {labels[r['step']]} -c{r['connections']}: service {r['service_rows']} ({r['status'].get('201', 0)} x 201)"
    if r["db_xacts"]:
        line += f"; handler SQL {r['db_rows']} of {r['db_xacts']}; reference {r['ref_rows']} of {r['ref_xacts']}"
    md.append(line)
if book_runs:
    md.append("")

if scale:
    md += [f"Scale-out: {scale['instances']} service processes on one PostgreSQL, wrk split across them "
           f"(-t4 -c10 in all): {scale['rps']:.0f} req/s combined ("
           + ", ".join(f"{p['rps']:.0f} req/s, p50 {p['p50_ms']:.2f} ms" for p in scale["per_instance"])
           + f"), {f(doc['scale_out']['vs_one_instance'])} x one process; overlaps {scale['overlaps']}. "
           "On this 2-core machine a second process competes with PostgreSQL and wrk for the same cores: "
           "the figure shows that several processes book correctly together and what the extra process "
           "costs, not a speed-up.", ""]

pgss_runs = [r for r in runs if r["pgss"] and (r["threads"], r["connections"]) == (4, 10)]
if pgss_runs:
    md += ["PostgreSQL's work per request during the wrk runs at -t4 -c10 (pg_stat_statements):", ""]
    for r in pgss_runs:
        md.append(f"- {labels[r['step']]}: {r['pgss']['calls']} statements for {r['requests']} requests "
                  f"({r['pgss']['calls_per_request']:.2f} per request); "
                  + "; ".join(f"{s['calls']} x {s['mean_ms']:.3f} ms `{s['query'][:70]}…`"
                              for s in r["pgss"]["statements"][:3]))
    md.append("")

if check:
    md += ["Plans of the booking path on the large inventory (`wrk/results/booking-explain.txt`): buffers "
           "touched and execution time of EXPLAIN (ANALYZE, BUFFERS), and the tables read by a sequential scan:", "",
           "| statement | generic, stale | custom, stale | generic, analyzed | custom, analyzed | sequential scans |",
           "|---|---:|---:|---:|---:|---|"]
    by = {}
    for p in check["plans"]:
        by.setdefault(p["statement"], []).append(p)
    for st, ps in by.items():
        cells = [f"{p['buffers']} / {p['ms']} ms" for p in ps]
        scans = sorted({t for p in ps for t in p["seq_scans"]})
        md.append(f"| {st} | " + " | ".join(cells) + f" | {', '.join(scans) or '-'} |")
    md.append("")
    if check["heavy"]:
        md += [f"Plans touching more than {check['buffers_warn']} buffers (their cost grows with the data): "
               + "; ".join(check["heavy"]), ""]
if os.path.exists(search_explain):
    md += ["Plan of one search (also in `wrk/results/search-explain.txt`):", "", "```",
           open(search_explain).read().rstrip("\n"), "```", ""]

text = "\n".join(md)
for name in ("latest", stamp):
    with open(f"{results_dir}/{name}.md", "w") as fh:
        fh.write(text)
    with open(f"{results_dir}/{name}.json", "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
print(text)
print(f"Written: {results_dir}/latest.{{md,json}} and {results_dir}/{stamp}.{{md,json}}")
sys.exit(1 if five or doc["overlaps"] or (check and not check["ok"]) else 0)
PY
status=$?
set -e
[[ $status == 0 ]] || echo "bench.sh: a 5xx answer, an overlap or a sequential scan on the booking path (see above)" >&2
exit "$status"
