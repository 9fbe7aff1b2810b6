#!/usr/bin/env bash
# The abuse scenario (SPEC 4.8), in one command from the repository root:
#
#   bash wrk/abuse.sh            # 20 s per phase, all phases: about 5 minutes
#   bash wrk/abuse.sh --quick    # 10 s per phase, the main phases: under 2 minutes
#
# Builds the release binary (cargo does nothing when it is up to date), starts
# it on a fresh managed PostgreSQL in a temporary directory, creates ROOM0..49
# and user0..49 as wrk/bench.sh does, and an inventory for the search (hotels,
# room types, rooms, rate plans and rates through the API, some bookings with
# SQL). Then:
#   probe     on the quiet service, connections of five kinds (a header sent a
#             byte a second, a partial header, nothing at all, the HTTP/2
#             preface a byte a second, an idle keep-alive) against the
#             header-read timeout: how many does the server still hold after it?
# and phases, each running the seed workload of bench.sh (wrk -t4 -c10
# wrk/post_book.lua, POST /book; the 1,550 slots emptied before each phase)
# for ABUSE_DURATION seconds, alone or while attackers (wrk/abuse_attack.py)
# hit the service, all on 127.0.0.0/8:
#   quiet          the seed workload alone
#   auth           (a) 50 connections posting wrong passwords to /auth/token
#                  as fast as the answers come, from 127.0.0.1
#   auth-spread    (a') the same from 500 loopback addresses (127.0.1.1, ...),
#                  moving on at each 429: what the per-address limit cannot stop
#   slowloris      (b) 2,000 connections, each sending a request header a byte
#                  every 2 s, reopened when the server closes them
#   search         (c) 8 connections asking GET /hotels for the longest stay
#                  allowed, 1 guest, 100 a page, every hotel
#   combined       (a) + (b) + (c) at once: the targets apply here
#   silent         2,000 connections that send nothing at all (a finding)
#   quiet-after    the seed workload alone again: has the service recovered?
# In every phase a canary opens a new connection every 0.5 s (GET /health), to
# show what a client arriving during the attack waits. The attackers start
# first; wrk starts once they are under way.
#
# Reported per phase: POST /book requests/s, p50, p99 and 5xx; the attackers'
# answers by status (the share of 429/503) and rates; the slow-loris
# connections' lifetimes; the canary's waits; CPU used by the service,
# PostgreSQL, wrk, the attackers and the rest of the machine. Targets, under
# `combined`: at least 0.7 x the quiet requests/s, p99 under 3 x the quiet
# p99, zero 5xx for the bookers. Results: wrk/results/abuse-<UTC>.{md,json}
# and wrk/results/abuse-latest.{md,json}.
#
# Exit status: non-zero when the bookers got any 5xx, the service died or
# stopped answering, or a tool failed. Missed speed targets are reported
# (PASS/FAIL) but do not fail the run: the machine is shared and noisy.
#
# Environment:
#   PORT            HTTP port on 127.0.0.1 (default: a free one)
#   ABUSE_DURATION  seconds of wrk per phase (default 20; --quick: 10)
#   ABUSE_PHASES    the phases to run, in order (default: all; --quick:
#                   "quiet combined quiet-after"); the probe always runs first
#   MAX_CONNECTIONS, HEADER_READ_TIMEOUT, HASH_SLOTS, AUTH_BURST, AUTH_PERIOD,
#   PUBLIC_QUERIES, SEARCH_BURST, SEARCH_PERIOD, REFUSAL_DELAY,
#   SEARCH_MAX_NIGHTS, POOL_SIZE, BOOK_POOL_SIZE, RUST_LOG, ...
#                   read by the service itself: set them to try other limits
#   ABUSE_KEEP=1    keep the temporary directory (database, logs, raw figures)
#   ABUSE_SKIP_BUILD=1  use the existing target/release/room-booking
#   ABUSE_BIN       run this binary instead (no build), e.g. a patched one
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "abuse.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
if [[ $QUICK == 1 ]]; then
    DURATION="${ABUSE_DURATION:-10}"
    read -r -a PHASES <<<"${ABUSE_PHASES:-quiet combined quiet-after}"
else
    DURATION="${ABUSE_DURATION:-20}"
    read -r -a PHASES <<<"${ABUSE_PHASES:-quiet auth auth-spread slowloris search combined silent quiet-after}"
fi
COMMAND_LINE="bash wrk/abuse.sh${*:+ $*}"
for var in ABUSE_BIN ABUSE_DURATION ABUSE_PHASES MAX_CONNECTIONS HEADER_READ_TIMEOUT HASH_SLOTS AUTH_BURST AUTH_PERIOD \
           PUBLIC_QUERIES SEARCH_BURST SEARCH_PERIOD REFUSAL_DELAY SEARCH_MAX_NIGHTS POOL_SIZE BOOK_POOL_SIZE REQUEST_TIMEOUT POOL_ACQUIRE_TIMEOUT RUST_LOG; do
    [[ -n "${!var:-}" ]] && COMMAND_LINE="$var=\"${!var}\" $COMMAND_LINE"
done


[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "ABUSE_DURATION must be a whole number of seconds, not '$DURATION'"
for phase in "${PHASES[@]}"; do
    case "$phase" in
        quiet|quiet-after|auth|auth-spread|slowloris|search|combined|silent) ;;
        *) die "unknown phase '$phase' in ABUSE_PHASES" ;;
    esac
done
[[ -n "${DATABASE_URL:-}" ]] && die "abuse.sh runs on its own managed PostgreSQL; unset DATABASE_URL"

# --- Tools -----------------------------------------------------------------
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found. $2"; }
need wrk "Install it with: apt-get install -y wrk"
need psql "Install it with: apt-get install -y postgresql-client"
need curl "Install it with: apt-get install -y curl"
need python3 "Install it with: apt-get install -y python3"
need ss "Install it with: apt-get install -y iproute2"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_DIR="$ROOT/wrk"
RESULTS_DIR="$BENCH_DIR/results"
ATTACK="$BENCH_DIR/abuse_attack.py"
BIN="${ABUSE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/room-booking}"
[[ -f "$ATTACK" ]] || die "$ATTACK not found"

# 2,000 slow connections (plus the server's side of each) need descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[[ "$(ulimit -n)" == unlimited || "$(ulimit -n)" -ge 8192 ]] \
    || die "the open-file limit is $(ulimit -n); 2,000 slow connections need more (ulimit -n 8192)"

if [[ -z "${PORT:-}" ]]; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set PORT"
fi
BASE_URL="http://127.0.0.1:$PORT"
TARGET="127.0.0.1:$PORT"

# The limits in force (the service's defaults unless set), for the report.
HEADER_TIMEOUT="${HEADER_READ_TIMEOUT:-5}"
SEARCH_NIGHTS="${SEARCH_MAX_NIGHTS:-30}"

# --- Temporary directory, clean-up ---------------------------------------------
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/room-booking-abuse.XXXXXX")"
# As root the service runs PostgreSQL as an unprivileged user, who must reach the data directory.
chmod 755 "$RUN_DIR"
DATA_DIR="$RUN_DIR/pgdata"
DB_URL="postgresql://postgres@/room_booking?host=$DATA_DIR"
SERVICE_LOG="$RUN_DIR/service.log"
SERVICE_PID=""
BG_PIDS=()      # attackers, wrk, the sampler: stopped by pid on exit
FAILED=0

stop_service() {
    if [[ -n "$SERVICE_PID" ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        log "Stopping the service (pid $SERVICE_PID)"
        stop_pid "$SERVICE_PID" 30 "the service" || true
    fi
    SERVICE_PID=""
}

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${BG_PIDS[@]}"; do
        stop_pid "$pid" 5 || true
    done
    stop_service
    if [[ $status -ne 0 || "${ABUSE_KEEP:-}" == 1 ]]; then
        echo "abuse.sh: kept $RUN_DIR (service log: $SERVICE_LOG)" >&2
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
trap 'echo "abuse.sh: interrupted" >&2; exit 130' INT
trap 'echo "abuse.sh: terminated" >&2; exit 143' TERM

# Starts a command in the background (its output to a file) and records its pid.
start_bg() { # out command...
    local out="$1"
    shift
    "$@" >"$out" 2>&1 &
    BG_PIDS+=("$!")
    LAST_PID=$!
}
forget_pid() { # pid: no longer to be stopped on exit
    local keep=() pid
    for pid in "${BG_PIDS[@]}"; do [[ "$pid" == "$1" ]] || keep+=("$pid"); done
    BG_PIDS=("${keep[@]}")
}

# --- Build and start ---------------------------------------------------------
if [[ -n "${ABUSE_BIN:-}" ]]; then
    [[ -x "$BIN" ]] || die "ABUSE_BIN=$ABUSE_BIN is not an executable"
    log "Using $BIN (ABUSE_BIN)"
elif [[ "${ABUSE_SKIP_BUILD:-}" == 1 ]]; then
    [[ -x "$BIN" ]] || die "ABUSE_SKIP_BUILD=1 but $BIN does not exist"
    log "Using the existing $BIN (ABUSE_SKIP_BUILD=1)"
else
    log "Building the release binary"
    # The committed .sqlx/ cache: no database needed to build.
    SQLX_OFFLINE="${SQLX_OFFLINE:-true}" cargo build --release
fi

setsid "$BIN" --data-dir "$DATA_DIR" serve --bind "$TARGET" >>"$SERVICE_LOG" 2>&1 &
SERVICE_PID=$!
# (setsid: its own session, so that a Ctrl-C reaches this script, which then stops
# the service and its PostgreSQL cleanly.)
log "Starting the service (pid $SERVICE_PID, $BASE_URL, log $SERVICE_LOG)"
await_service "$SERVICE_PID" "$BASE_URL" "$SERVICE_LOG"

# The managed cluster's superuser password, when it has one (clusters made before
# passwords were used have none).
if [[ -f "$DATA_DIR/superuser-password" ]]; then
    PGPASSWORD="$(cat "$DATA_DIR/superuser-password")"
    export PGPASSWORD
fi
sql() { PGOPTIONS="-c client_min_messages=warning" psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
sql -c 'select 1' >/dev/null || die "psql cannot connect to the service's database ($DB_URL)"
postmaster_pid() { head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null || true; }

# The service logs every request: keep its warnings and errors, then empty the log
# (opened for appending) so that it does not grow by hundreds of megabytes.
SERVICE_PROBLEMS="$RUN_DIR/service-problems.log"
harvest_log() { # dir: writes dir/log.json (counts of warnings and errors by message)
    python3 - "$SERVICE_LOG" "$1/log.json" "$SERVICE_PROBLEMS" <<'PY'
import json, re, sys
log, out, problems = sys.argv[1:]
counts, first = {}, []
with open(log, "rb") as f:
    for raw in f:
        line = raw.decode("utf-8", "replace")
        m = re.search(r"\b(WARN|ERROR)\b", line)
        if not m:
            continue
        text = re.sub(r"\x1b\[[0-9;]*m", "", line[m.end():]).strip()
        text = re.sub(r"^[\w:]+(\{[^}]*\})?(:[\w:]+(\{[^}]*\})?)*: ", "", text)
        key = m.group(1) + " " + re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?", "N", text)[:120]
        counts[key] = counts.get(key, 0) + 1
        if len(first) < 50:
            first.append(line.rstrip())
json.dump(counts, open(out, "w"), indent=1)
with open(problems, "a") as f:
    f.writelines(l + "\n" for l in first)
PY
    : >"$SERVICE_LOG"
}

# --- Credentials and inventory -----------------------------------------------------
log "Minting an access token for the admin user abuse-admin"
TOKEN=$("$BIN" --log error --data-dir "$DATA_DIR" token abuse-admin --create-admin 2>>"$SERVICE_LOG" | tail -n 1) \
    || die "room-booking token abuse-admin --create-admin failed"
[[ -n "$TOKEN" ]] || die "room-booking token printed no token"
export TOKEN

log "Creating ROOM0..49, user0..49 and the search inventory over HTTP"
python3 "$ATTACK" setup --target "$TARGET" --token "$TOKEN" --hotels 10 --rooms 10 \
    || die "setting up the inventory failed"
# Bookings in the search hotels: in the first half of each type's rooms, a stay of
# 1 to 3 nights every 4 days for 400 days; the other half stays free, so that the
# search has offers to price over the whole stay.
sql -c "insert into bookings (room_id, user_id, stay, guests, status, check_in_at, check_out_at)
        select r.id, u.id, daterange(s.check_in, s.check_in + s.nights), 1, 'confirmed',
               s.check_in::timestamp at time zone 'UTC', (s.check_in + s.nights)::timestamp at time zone 'UTC'
        from rooms r
        join hotels h on h.id = r.hotel_id and h.name like 'Abuse hotel %'
        cross join generate_series(0, 99) as i
        cross join lateral (select current_date + 4 * i as check_in,
                                   1 + abs(hashtext(r.id::text || i)) % 3 as nights) as s
        join users u on u.name = 'user' || (abs(hashtext(r.id::text || i)) % 50)
        where split_part(r.name, '-', 2)::int < 5" \
    -c 'vacuum (analyze)' || die "adding the search bookings failed"
SEARCH_SET=$(sql -c "select (select count(*) from hotels where name like 'Abuse hotel %') || ' hotels, '
    || (select count(*) from rooms r join hotels h on h.id = r.hotel_id where h.name like 'Abuse hotel %') || ' rooms, '
    || (select count(*) from daily_rates) || ' daily rates, '
    || (select count(*) from bookings) || ' bookings'")
log "Search inventory: $SEARCH_SET"
check_in=$(date -u -d '+10 days' +%F); check_out=$(date -u -d "+$((10 + SEARCH_NIGHTS)) days" +%F)
search_items=$(curl -sf "$BASE_URL/hotels?check_in=$check_in&check_out=$check_out&guests=1&per_page=100" \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))') \
    || die "the maximal search (GET /hotels, $SEARCH_NIGHTS nights) failed"
[[ "$search_items" -gt 0 ]] || die "the maximal search found no hotel; the inventory is wrong"
log "A maximal search ($SEARCH_NIGHTS nights, 100 a page) finds $search_items hotels"

reset_bookings() {
    sql -c "delete from bookings where room_id in
                (select r.id from rooms r join hotels h on h.id = r.hotel_id where h.is_default)"
}

# --- The probe ---------------------------------------------------------------------
mkdir -p "$RUN_DIR/phases/probe"
harvest_log "$RUN_DIR/phases/probe"
log "probe: 50 connections of each kind against the header-read timeout (${HEADER_TIMEOUT} s)"
python3 "$ATTACK" probe --target "$TARGET" --per-kind 50 --header-timeout "$HEADER_TIMEOUT" --grace 3 \
    --out "$RUN_DIR/phases/probe/probe.json" || die "the probe failed"
kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died during the probe"

# --- Phases --------------------------------------------------------------------------
# Attackers per phase.
phase_attacks() {
    case "$1" in
        quiet|quiet-after) echo "" ;;
        auth) echo "auth" ;;
        auth-spread) echo "auth-spread" ;;
        slowloris) echo "slowloris" ;;
        search) echo "search" ;;
        combined) echo "auth slowloris search" ;;
        silent) echo "silent" ;;
    esac
}

start_attack() { # dir kind duration
    local dir="$1" kind="$2" limit="$3"
    local common=(--target "$TARGET" --duration "$limit" --out "$dir/$kind.json" --ready-file "$dir/$kind.ready")
    case "$kind" in
        auth) start_bg "$dir/$kind.log" python3 "$ATTACK" auth "${common[@]}" --conns 50 ;;
        auth-spread) start_bg "$dir/$kind.log" python3 "$ATTACK" auth "${common[@]}" --conns 50 --sources 500 ;;
        slowloris) start_bg "$dir/$kind.log" python3 "$ATTACK" slowloris "${common[@]}" --conns 2000 \
                       --mode classic --interval 2 --ramp 1 ;;
        silent) start_bg "$dir/$kind.log" python3 "$ATTACK" slowloris "${common[@]}" --conns 2000 \
                    --mode silent --interval 2 --ramp 1 ;;
        search) start_bg "$dir/$kind.log" python3 "$ATTACK" search "${common[@]}" --conns 8 --nights "$SEARCH_NIGHTS" ;;
        canary) start_bg "$dir/$kind.log" python3 "$ATTACK" canary "${common[@]}" --every 0.5 ;;
    esac
}

# Every second: connections to the port in the kernel (established, and waiting
# in the listen queue to be accepted).
sampler() { # out
    while :; do
        local est queue
        est=$(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l)
        queue=$(ss -Hltn "( sport = :$PORT )" 2>/dev/null | awk '{print $2; exit}')
        printf '%s\t%s\t%s\n' "$(date +%s.%N)" "$est" "${queue:-0}" >>"$1"
        sleep 1
    done
}

cpu_snapshot() { # out kind=pid...
    local out="$1"
    shift
    python3 "$ATTACK" cpu "service=$SERVICE_PID" "pg+=$(postmaster_pid)" "wrk~=$$" "${@/#/attack_}" >"$out"
}

run_phase() { # name
    local name="$1" dir="$RUN_DIR/phases/$1" kinds kind pids=() specs=() limit ready wrk_pid rc=0
    mkdir -p "$dir"
    read -r -a kinds <<<"$(phase_attacks "$name") canary"
    reset_bookings
    harvest_log "$dir"   # drop the lines before the phase
    # The service's own view of POST /book (its latency histogram), before and after.
    curl -s -m 5 -o "$dir/metrics0.txt" "$BASE_URL/metrics" || true
    # Attackers stop by themselves well after wrk would have; normally they get SIGTERM first.
    limit=$((DURATION + 60))
    for kind in "${kinds[@]}"; do
        start_attack "$dir" "$kind" "$limit"
        pids+=("$LAST_PID")
        specs+=("$kind=$LAST_PID")
    done
    # Wait until every attacker is under way (the slow-loris: its connections opened).
    for _ in $(seq 1 300); do
        ready=1
        for kind in "${kinds[@]}"; do [[ -f "$dir/$kind.ready" ]] || ready=0; done
        [[ $ready == 1 ]] && break
        sleep 0.1
    done
    [[ $ready == 1 ]] || die "$name: the attackers did not get under way within 30 s"
    [[ "${kinds[*]}" != canary ]] && sleep 2   # let the attack settle
    for i in "${!kinds[@]}"; do kill -USR1 "${pids[$i]}" 2>/dev/null || true; done
    start_bg /dev/null sampler "$dir/ss.tsv"
    local sampler_pid=$LAST_PID
    cpu_snapshot "$dir/cpu0.json" "${specs[@]}"
    log "$name: wrk -t4 -c10 -d${DURATION}s wrk/post_book.lua${kinds[1]:+ while: $(phase_attacks "$name")}"
    # Time since boot (not the wall clock, which may be stepped) around wrk's run.
    cut -d' ' -f1 /proc/uptime >"$dir/wrk.t0"
    start_bg "$dir/wrk.out" wrk -t4 -c10 -d"${DURATION}s" --timeout 30s -s "$BENCH_DIR/post_book.lua" "$BASE_URL"
    wrk_pid=$LAST_PID
    # wrk's clock starts before its connections are accepted: when they cannot get
    # in, it would wait as long as the attack lasts. Past its time, SIGINT makes it
    # stop and report what it has.
    for _ in $(seq 1 $(( (DURATION + 10) * 10 ))); do
        kill -0 "$wrk_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$wrk_pid" 2>/dev/null; then
        echo "abuse.sh: $name: wrk still runs $((DURATION + 10)) s after it started; stopping it" >&2
        echo "$((DURATION + 10))" >"$dir/wrk.stopped"
        kill -INT "$wrk_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$wrk_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$wrk_pid" 2>/dev/null || true
    fi
    wait "$wrk_pid" || rc=$?
    cut -d' ' -f1 /proc/uptime >"$dir/wrk.t1"
    forget_pid "$wrk_pid"
    [[ -f "$dir/wrk.stopped" ]] && rc=0
    cpu_snapshot "$dir/cpu1.json" "${specs[@]}"
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        stop_pid "$pid" 5 || true
        forget_pid "$pid"
    done
    stop_pid "$sampler_pid" 5 || true
    forget_pid "$sampler_pid"
    curl -s -m 10 -o "$dir/metrics1.txt" "$BASE_URL/metrics" || true
    [[ $rc == 0 ]] || { cat "$dir/wrk.out" >&2; die "$name: wrk failed (exit $rc)"; }
    if [[ ! -f "$dir/wrk.stopped" ]]; then
        grep -q '^STATUS ' "$dir/wrk.out" || { cat "$dir/wrk.out" >&2; die "$name: no STATUS line in wrk's output"; }
    fi
    for kind in "${kinds[@]}"; do
        [[ -s "$dir/$kind.json" ]] || { cat "$dir/$kind.log" >&2; die "$name: the $kind attacker wrote no figures"; }
    done
    printf '%s\n' "$name" >"$dir/name"
    printf '%s\n' "$(phase_attacks "$name")" >"$dir/attacks"
    harvest_log "$dir"
    kill -0 "$SERVICE_PID" 2>/dev/null || die "$name: the service died"
    curl -sf -m 30 -o /dev/null "$BASE_URL/health" || die "$name: the service does not answer /health after the phase"
    python3 "$BENCH_DIR/abuse_report.py" phase-line "$dir" >&2 || true
}

for phase in "${PHASES[@]}"; do
    run_phase "$phase"
done
stop_service

# --- Report ----------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP="$(date -u +%Y-%m-%d-%H%M)"
MACHINE="$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(free -g | awk '/^Mem:/ {print $2}') GiB"
python3 "$BENCH_DIR/abuse_report.py" report "$RUN_DIR" "$RESULTS_DIR" "$STAMP" "$MACHINE" "$COMMAND_LINE" \
    "$DURATION" "$SEARCH_SET" "${PHASES[*]}" || FAILED=$?
log "Results: $RESULTS_DIR/abuse-$STAMP.md (and abuse-latest.md)"
exit "$FAILED"
