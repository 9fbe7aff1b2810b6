#!/usr/bin/env bash
# The repeatable fault run of SPEC section 7, in one command from the repository root:
#
#   bash wrk/chaos.sh            # about 20 s of load before and 30 s after each fault
#   bash wrk/chaos.sh --quick    # 3 s before and after: the CI smoke run, about a minute
#
# Builds the release binary (cargo decides whether it is stale), then runs three
# phases, each under steady load from wrk/chaos_client.py: bookings of distinct
# room-nights at CHAOS_RATE per second, every booking with its own
# Idempotency-Key, retried with the same key on 503 (after Retry-After), on
# 409 idempotency_key_in_use, on connection errors and on timeouts, until it
# gets a final answer; every 201 is recorded. Every CHAOS_KEYLESS_EVERY-th
# booking has no key: the benchmark's hot path (the booking connections and
# their queue), retried on the same faults as a client without a key would;
# its retry may find the night booked by the attempt whose answer was lost.
#   kill-9             the service on its managed PostgreSQL (fresh data directory):
#                      `kill -9` of the postmaster; the service's supervisor restarts it
#   restart-immediate  the same service: `pg_ctl restart -m immediate` of its cluster,
#                      as an operator would; the supervisor adopts the new postmaster
#   external-restart   a second service on DATABASE_URL, a throw-away PostgreSQL this
#                      script creates (trust authentication, Unix socket only):
#                      `pg_ctl restart -m fast`
# For each it measures, with pg_isready and postmaster.pid polled every 50 ms,
# when PostgreSQL is back (a new postmaster accepting connections) and the time
# from then to the first 201 (the figure; target under 5 s). After each phase it
# checks with SQL: every acknowledged booking is in the table exactly once, with
# its room and night; no booking the service did not acknowledge; each key's
# idempotency record holds the acknowledged id; 0 overlapping live bookings. Any
# 5xx other than 503, a 503 without Retry-After, a connection error or client
# timeout, an answer slower than the request timeout, a booking without a final
# answer or a 409 room_already_booked (every room-night is booked by one
# booking only: with a key, a lost acknowledgement) fails the run; for a
# keyless booking, such a 409 passes only after a 503 for it, and then that
# night must be booked exactly once, for its user, before the retry was sent. Also checked: db_restarts_total counts both managed restarts, /ready is
# 200 after each fault, each service stops cleanly on SIGTERM (and with it the
# managed PostgreSQL, adopted one included), and no panic is logged. Before the
# first phase, `chaos_client.py selftest` shows that the SQL checks can fail:
# it books one night and expects each deliberately wrong record of it caught.
# Results: wrk/results/chaos-latest.{md,json} and wrk/results/chaos-<UTC date-time>.{md,json};
# a --quick run writes wrk/results/chaos-quick-latest.{md,json} only (git-ignored).
# Exit status 0 only when every check passed.
#
# Environment:
#   PORT              HTTP port on 127.0.0.1 (default: a free one)
#   CHAOS_RATE        new bookings per second (default 200)
#   CHAOS_WORKERS     client threads (default 32)
#   CHAOS_KEYLESS_EVERY  every Nth booking without an Idempotency-Key (default 2; 0: none)
#   CHAOS_WARMUP      seconds of load before each fault (default 20; --quick: 3)
#   CHAOS_AFTER       seconds of load after the first 201 after it (default 30; --quick: 3)
#   CHAOS_RECOVERY_TARGET  seconds allowed from PostgreSQL back to the first 201 (default 5)
#   REQUEST_TIMEOUT, POOL_SIZE, BOOK_POOL_SIZE, POOL_ACQUIRE_TIMEOUT, RUST_LOG ...  read by the service
#   CHAOS_KEEP=1      keep the temporary directory (clusters, service and PostgreSQL logs)
#   CHAOS_SKIP_BUILD=1  use the existing target/release/room-booking
# DATABASE_URL and JWT_SECRET from the environment are ignored: the managed
# phases use a fresh data directory, the external one a cluster of its own.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "chaos.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
if [[ $QUICK == 1 ]]; then
    WARMUP="${CHAOS_WARMUP:-3}"; AFTER="${CHAOS_AFTER:-3}"
else
    WARMUP="${CHAOS_WARMUP:-20}"; AFTER="${CHAOS_AFTER:-30}"
fi
RATE="${CHAOS_RATE:-200}"
WORKERS="${CHAOS_WORKERS:-32}"
KEYLESS_EVERY="${CHAOS_KEYLESS_EVERY:-2}"
RECOVERY_TARGET="${CHAOS_RECOVERY_TARGET:-5}"
COMMAND_LINE="bash wrk/chaos.sh${*:+ $*}"
for var in CHAOS_RATE CHAOS_WORKERS CHAOS_KEYLESS_EVERY CHAOS_WARMUP CHAOS_AFTER CHAOS_RECOVERY_TARGET REQUEST_TIMEOUT POOL_SIZE BOOK_POOL_SIZE; do
    [[ -n "${!var:-}" ]] && COMMAND_LINE="$var=${!var} $COMMAND_LINE"
done


number='^[0-9]+([.][0-9]+)?$'
[[ "$RATE" =~ $number && "$RATE" != 0 ]] || die "CHAOS_RATE must be a positive number, not '$RATE'"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "CHAOS_WORKERS must be a positive whole number, not '$WORKERS'"
[[ "$KEYLESS_EVERY" =~ ^[0-9]+$ ]] || die "CHAOS_KEYLESS_EVERY must be a whole number (0: none), not '$KEYLESS_EVERY'"
[[ "$WARMUP" =~ $number ]] || die "CHAOS_WARMUP must be a number of seconds, not '$WARMUP'"
[[ "$AFTER" =~ $number ]] || die "CHAOS_AFTER must be a number of seconds, not '$AFTER'"
[[ "$RECOVERY_TARGET" =~ $number ]] || die "CHAOS_RECOVERY_TARGET must be a number of seconds, not '$RECOVERY_TARGET'"

# --- Tools -----------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found. $2"; }
need python3 "Install it with: apt-get install -y python3"
need psql "Install it with: apt-get install -y postgresql-client"
need pg_isready "It comes with the PostgreSQL client: apt-get install -y postgresql-client"
need curl "Install it with: apt-get install -y curl"
need cargo "Install Rust from https://rustup.rs"
# Without PORT, a free one: CI runs of other checkouts may share the machine.
PORT="${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
# The server binaries, found as the service finds them.
PGBIN=""
if command -v initdb >/dev/null 2>&1; then
    PGBIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
else
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -z "$PGBIN" ]] && command -v pg_config >/dev/null 2>&1 && PGBIN="$(pg_config --bindir)"
fi
[[ -x "$PGBIN/initdb" && -x "$PGBIN/pg_ctl" ]] \
    || die "the PostgreSQL server binaries (initdb, pg_ctl) were not found; apt-get install -y postgresql"

# As root, PostgreSQL runs as an unprivileged user (the service picks the same one).
if [[ $EUID -eq 0 ]]; then
    need runuser "It comes with util-linux."
    if id postgres >/dev/null 2>&1; then PG_USER=postgres
    elif id nobody >/dev/null 2>&1; then PG_USER=nobody
    else die "running as root, but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL"; fi
    as_pg() { runuser -u "$PG_USER" -- "$@"; }
    AS_PG="runuser -u $PG_USER -- "
else
    PG_USER="$(id -un)"
    as_pg() { "$@"; }
    AS_PG=""
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLIENT="$ROOT/wrk/chaos_client.py"
RESULTS_DIR="$ROOT/wrk/results"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/room-booking"
[[ "$BIN" == /* ]] || BIN="$ROOT/$BIN"
BASE_URL="http://127.0.0.1:$PORT"
REQUEST_TIMEOUT_S="${REQUEST_TIMEOUT:-10}"
[[ -f "$CLIENT" ]] || die "$CLIENT not found"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
port_free || die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set PORT"

# --- Temporary directory, clean-up ---------------------------------------------
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/room-booking-chaos.XXXXXX")"
# PostgreSQL's user must reach the clusters inside it.
chmod 755 "$RUN_DIR"
DATA_DIR="$RUN_DIR/managed"
EXT_DIR="$RUN_DIR/external"
SERVICE_PID=""
SERVICE_LOG=""
CHILD_PID=""

run_child() { # command...: in the background, so that a signal reaches the traps
    local rc=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

# The live postgres whose pid is the first line of $1/postmaster.pid, if any.
postmaster_of() {
    local pid
    pid="$(head -n 1 "$1/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == postgres ]] || return 1
    echo "$pid"
}

SERVICE_EXIT=""
stop_service() { # sets SERVICE_EXIT to the service's exit status
    SERVICE_EXIT=""
    if [[ -n "$SERVICE_PID" ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        log "Stopping the service (pid $SERVICE_PID)"
        local rc=0
        stop_pid "$SERVICE_PID" 30 "the service" || rc=$?
        SERVICE_EXIT=$rc
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
    # Whatever PostgreSQL is left: the external cluster, or a managed one whose
    # service died. Each by the pid in its postmaster.pid.
    local dir pid
    for dir in "$DATA_DIR" "$EXT_DIR"; do
        if pid="$(postmaster_of "$dir")"; then
            echo "chaos.sh: stopping the PostgreSQL of $dir (pid $pid)" >&2
            kill -INT "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -QUIT "$pid" 2>/dev/null || true
        fi
    done
    if [[ $status -ne 0 && -n "$SERVICE_LOG" && -f "$SERVICE_LOG" ]]; then
        echo "--- last lines of $SERVICE_LOG (without per-request lines) ---" >&2
        { grep -av 'finished processing request' "$SERVICE_LOG" || true; } | tail -n 20 >&2
    fi
    if [[ $status -ne 0 || "${CHAOS_KEEP:-}" == 1 ]]; then
        echo "chaos.sh: kept $RUN_DIR (service logs service-*.log, PostgreSQL logs */postgres.log, pg_ctl-*.log)" >&2
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'echo "chaos.sh: interrupted" >&2; exit 130' INT
trap 'echo "chaos.sh: terminated" >&2; exit 143' TERM

# --- Build ---------------------------------------------------------------------------
if [[ "${CHAOS_SKIP_BUILD:-}" == 1 ]]; then
    [[ -x "$BIN" ]] || die "CHAOS_SKIP_BUILD=1 but $BIN does not exist"
    log "Using the existing $BIN (CHAOS_SKIP_BUILD=1)"
else
    log "Building the release binary"
    # The committed .sqlx/ cache: no database needed to compile.
    SQLX_OFFLINE="${SQLX_OFFLINE:-true}" run_child cargo build --release
    [[ -x "$BIN" ]] || die "cargo build --release did not produce $BIN (is CARGO_TARGET_DIR elsewhere?)"
fi

# --- Helpers -------------------------------------------------------------------------
NOTES=()
FAILURES=()
note() { NOTES+=("$*"); log "$*"; }
fail() { FAILURES+=("$*"); echo "chaos.sh: FAIL: $*" >&2; }

start_service() { # name, then the environment and arguments: env VAR=... "$BIN" ...
    local name="$1"
    shift
    port_free || die "port $PORT on 127.0.0.1 is already in use"
    SERVICE_LOG="$RUN_DIR/service-$name.log"
    # setsid: a session of its own, so that a Ctrl-C reaches this script, which
    # then stops the service (and its PostgreSQL) cleanly.
    setsid "$@" >>"$SERVICE_LOG" 2>&1 &
    SERVICE_PID=$!
    log "Starting the service $name (pid $SERVICE_PID, log $SERVICE_LOG)"
    await_service "$SERVICE_PID" "$BASE_URL" "$SERVICE_LOG"
}

check_ready() { # after a fault: /ready answers 200 (the pool recovered)
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$BASE_URL/ready" || true)
    if [[ "$code" == 200 ]]; then note "$1: GET /ready answered 200 after the fault"
    else fail "$1: GET /ready answered $code after the fault"; fi
}

check_log() { # name: no panic; what the service logged at ERROR (the 5xx lines aside)
    local panics file="$RUN_DIR/log-errors-$1.txt"
    panics=$(grep -ac 'panicked' "$SERVICE_LOG" || true)
    [[ "$panics" -eq 0 ]] || fail "$1: the service log has $panics 'panicked' lines"
    # The service's own count of 5xx answers other than 503, beside the client's.
    local n5xx
    n5xx=$({ grep -aE 'finished processing request.* status=5[0-9][0-9]' "$SERVICE_LOG" || true; } | { grep -acv 'status=503' || true; })
    if [[ "$n5xx" -eq 0 ]]; then note "$1: the service log shows no 5xx answer other than 503"
    else fail "$1: the service log shows $n5xx answers 5xx other than 503"; fi
    # tower_http logs every 5xx answer at ERROR: the client counts those.
    { grep -a ' ERROR ' "$SERVICE_LOG" || true; } | { grep -av 'tower_http::trace::on_failure' || true; } \
        | sed -E 's/^[^ ]+ +ERROR +//; s/ dir=[^ ]*//; s/request_id="[^"]*"//' | cut -c1-200 \
        | sort | uniq -c | sort -rn >"$file"
    while IFS= read -r line; do
        note "$1: service log ERROR: $(sed -E 's/^ *([0-9]+) /\1 x /' <<<"$line")"
    done < <(head -n 5 "$file")
}

PHASE_FILES=()
run_phase() { # name server room-prefix fault-label fault-command pg-host password-file db-url
    local name="$1" server="$2" prefix="$3" label="$4" fault="$5" host="$6" pwfile="$7" url="$8"
    log "$name: creating ${prefix}0..49 and chaos-u0..9"
    python3 "$CLIENT" setup --url "$BASE_URL" --token "$TOKEN" --room-prefix "$prefix" --rooms 50 \
        || die "$name: creating the rooms and users failed"
    local out="$RUN_DIR/phase-$name.json"
    local pw=()
    [[ -n "$pwfile" ]] && pw=(--db-password-file "$pwfile")
    run_child python3 "$CLIENT" phase --name "$name" --server "$server" --url "$BASE_URL" --token "$TOKEN" \
        --room-prefix "$prefix" --rooms 50 --nights 700 --rate "$RATE" --workers "$WORKERS" \
        --keyless-every "$KEYLESS_EVERY" \
        --warmup "$WARMUP" --after "$AFTER" --request-timeout "$REQUEST_TIMEOUT_S" \
        --recovery-target "$RECOVERY_TARGET" --fault-label "$label" --fault-cmd "$fault" \
        --fault-log "$RUN_DIR/fault-$name.log" --pg-host "$host" --pid-file "$host/postmaster.pid" \
        --db-url "$url" "${pw[@]}" --service-pid "$SERVICE_PID" --out "$out" \
        || die "$name: the chaos client failed"
    [[ -f "$out" ]] || die "$name: the chaos client wrote no result"
    PHASE_FILES+=("$out")
    kill -0 "$SERVICE_PID" 2>/dev/null || die "$name: the service died (see $out and $SERVICE_LOG)"
}

pg_ctl_log() { # a log file PostgreSQL's user may write, for pg_ctl -l
    local file="$RUN_DIR/pg_ctl-$1.log"
    : >"$file"
    [[ $EUID -eq 0 ]] && chown "$PG_USER" "$file"
    echo "$file"
}

metric() { # name: its value in /metrics
    curl -sf --max-time 10 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }' | tail -n 1
}

queue_note() { # server: how the keyless bookings reached PostgreSQL (not a check: it depends on the load)
    local nights statements
    nights="$(metric book_statement_nights_total || true)"
    statements="$(metric book_statements_total || true)"
    note "$1: keyless bookings: ${nights:-?} nights in ${statements:-?} statements (book_statement_nights_total, book_statements_total; more nights than statements: the queue booked some together)"
}

# --- Phases 1 and 2: the managed PostgreSQL ---------------------------------------------------
start_service managed env -u DATABASE_URL -u JWT_SECRET "$BIN" --data-dir "$DATA_DIR" serve --bind "127.0.0.1:$PORT"
log "Minting an admin token (chaos-admin)"
TOKEN=$(env -u DATABASE_URL -u JWT_SECRET "$BIN" --log error --data-dir "$DATA_DIR" token chaos-admin --create-admin 2>>"$SERVICE_LOG" | tail -n 1) \
    || die "room-booking token chaos-admin --create-admin failed"
[[ -n "$TOKEN" ]] || die "room-booking token printed no token"
MANAGED_URL="postgres://postgres@localhost/room_booking?host=$DATA_DIR"
PWFILE="$DATA_DIR/superuser-password"
[[ -f "$PWFILE" ]] || PWFILE=""

# The SQL checks must be able to fail: one booking, checked against right and wrong records of it.
log "selftest of the SQL checks (rooms ST-*)"
if python3 "$CLIENT" selftest --url "$BASE_URL" --token "$TOKEN" --room-prefix ST- \
        --db-url "$MANAGED_URL" ${PWFILE:+--db-password-file "$PWFILE"}; then
    note "the SQL checks caught each deliberately wrong record of a booking (chaos_client.py selftest)"
else
    fail "the SQL checks' selftest failed: a check did not catch a wrong record (chaos_client.py selftest)"
fi

q() { printf '%q' "$1"; }
run_phase kill-9 managed K9- "kill -9 of the postmaster" \
    "kill -9 \"\$(head -n 1 $(q "$DATA_DIR/postmaster.pid"))\"" "$DATA_DIR" "$PWFILE" "$MANAGED_URL"
check_ready kill-9
run_phase restart-immediate managed RI- "pg_ctl restart -m immediate" \
    "$AS_PG$(q "$PGBIN/pg_ctl") restart -m immediate -D $(q "$DATA_DIR") -w -t 60 -l $(q "$(pg_ctl_log managed)")" \
    "$DATA_DIR" "$PWFILE" "$MANAGED_URL"
check_ready restart-immediate
restarts="$(metric db_restarts_total || true)"
if [[ "$restarts" == 2 ]]; then note "managed: db_restarts_total is 2 (a restart by the supervisor, an adoption)"
else fail "managed: db_restarts_total is '${restarts}', expected 2"; fi
queue_note managed
stop_service
if [[ "$SERVICE_EXIT" == 0 ]]; then note "managed: the service stopped on SIGTERM with status 0"
else fail "managed: the service ended with status '$SERVICE_EXIT' on SIGTERM"; fi
if pid="$(postmaster_of "$DATA_DIR")"; then
    fail "managed: PostgreSQL (pid $pid) still runs after the service stopped"
else
    note "managed: the (adopted) PostgreSQL stopped with the service"
fi
check_log managed

# --- Phase 3: an external PostgreSQL on DATABASE_URL ---------------------------------------
log "Creating a throw-away PostgreSQL cluster in $EXT_DIR"
mkdir "$EXT_DIR"
[[ $EUID -eq 0 ]] && chown "$PG_USER" "$EXT_DIR"
chmod 700 "$EXT_DIR"
as_pg "$PGBIN/initdb" -D "$EXT_DIR" -U postgres -A trust -E UTF8 --locale=C --no-instructions \
    >"$RUN_DIR/initdb-external.log" 2>&1 || { cat "$RUN_DIR/initdb-external.log" >&2; die "initdb failed"; }
as_pg "$PGBIN/pg_ctl" start -D "$EXT_DIR" -w -t 60 -l "$(pg_ctl_log external)" \
    -o "-k $EXT_DIR -c listen_addresses= -c max_connections=200" >/dev/null \
    || { cat "$RUN_DIR/pg_ctl-external.log" >&2; die "the external PostgreSQL did not start"; }
EXT_URL="postgres://postgres@localhost/room_booking?host=$EXT_DIR"
psql "postgres://postgres@localhost/postgres?host=$EXT_DIR" -X -q -v ON_ERROR_STOP=1 \
    -c 'create database room_booking' || die "cannot create the database room_booking"
JWT="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
start_service external env DATABASE_URL="$EXT_URL" JWT_SECRET="$JWT" "$BIN" serve --bind "127.0.0.1:$PORT"
TOKEN=$(env DATABASE_URL="$EXT_URL" JWT_SECRET="$JWT" "$BIN" --log error token chaos-admin --create-admin 2>>"$SERVICE_LOG" | tail -n 1) \
    || die "room-booking token chaos-admin --create-admin failed"
[[ -n "$TOKEN" ]] || die "room-booking token printed no token"
run_phase external-restart external EX- "pg_ctl restart -m fast" \
    "$AS_PG$(q "$PGBIN/pg_ctl") restart -m fast -D $(q "$EXT_DIR") -w -t 60 -l $(q "$RUN_DIR/pg_ctl-external.log")" \
    "$EXT_DIR" "" "$EXT_URL"
check_ready external-restart
queue_note external
stop_service
if [[ "$SERVICE_EXIT" == 0 ]]; then note "external: the service stopped on SIGTERM with status 0"
else fail "external: the service ended with status '$SERVICE_EXIT' on SIGTERM"; fi
check_log external
as_pg "$PGBIN/pg_ctl" stop -D "$EXT_DIR" -m fast -w -t 60 >/dev/null || fail "the external PostgreSQL did not stop"

# --- Report ----------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
python3 - "$RUN_DIR/extra.json" "${NOTES[@]}" --failures "${FAILURES[@]}" <<'PY'
import json, sys
out, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--failures")
json.dump({"notes": rest[:cut], "failures": rest[cut + 1:]}, open(out, "w"), indent=2)
PY
MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
if [[ $QUICK == 1 ]]; then
    NAMES=(--name chaos-quick-latest)
else
    NAMES=(--name chaos-latest --name "chaos-$(date -u +%Y-%m-%d-%H%M)")
fi
python3 "$CLIENT" report --results "$RESULTS_DIR" "${NAMES[@]}" --machine "$MACHINE" \
    --command "$COMMAND_LINE" --recovery-target "$RECOVERY_TARGET" --expected-phases 3 \
    --extra "$RUN_DIR/extra.json" "${PHASE_FILES[@]}"
