#!/usr/bin/env bash
# The API as a fuzzed contract: validates GET /openapi.json as OpenAPI 3.1,
# then runs schemathesis twice (every check) against the service on a fresh
# managed PostgreSQL: every phase with generated ids, then the examples,
# coverage and fuzzing phases with ids of real rows bound to part of the
# requests. Builds nothing: it runs target/debug/room-booking, which .ci/run
# builds first. Exits non-zero on any failure.
#
# Settings (environment): SCHEMATHESIS_SEED (default 20261122),
# SCHEMATHESIS_MAX_EXAMPLES (default 80), SCHEMATHESIS_TIME_LIMIT (seconds for
# each schemathesis run, default 480),
# SCHEMATHESIS_REPORT_DIR (JUnit and NDJSON reports kept there, one
# directory per run; default none).
set -euo pipefail
cd "$(dirname "$0")/.."
unset DATABASE_URL

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
seed=${SCHEMATHESIS_SEED:-20261122}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-80}
time_limit=${SCHEMATHESIS_TIME_LIMIT:-480}
# One worker: with more, hypothesis's ast.parse from several threads trips
# CPython 3.11's "AST constructor recursion depth mismatch" (gh-106905).
workers=1

binary=${CARGO_TARGET_DIR:-target}/debug/room-booking
venv=.ci/.venv
started=$SECONDS

step() { printf '\n==> %s\n' "$*"; }

[ -x "$binary" ] || { echo "$binary is missing: run cargo build first" >&2; exit 1; }

step "schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $VALIDATOR_VERSION in $venv"
installed() {
    "$venv/bin/python" -c 'import sys
from importlib.metadata import version
sys.exit(version(sys.argv[1]) != sys.argv[2])' "$1" "$2" 2>/dev/null
}
if ! installed schemathesis "$SCHEMATHESIS_VERSION" || ! installed openapi-spec-validator "$VALIDATOR_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi
"$venv/bin/schemathesis" --version

step "the service on a fresh managed PostgreSQL"
# The managed PostgreSQL runs as an unprivileged user when we are root: it
# must be able to reach the data directory inside the temporary one.
work=$(mktemp -d /tmp/room-booking-schemathesis.XXXXXX)
chmod 755 "$work"
data_dir=$work/data
log=$work/service.log
server=
stop() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT
# AUTH_BURST, SEARCH_BURST: schemathesis sends thousands of /auth/* calls and
# searches from one address; at the defaults nearly all of them would answer
# 429 and those operations would go untested. The limits have tests of their own.
AUTH_BURST=1000000 SEARCH_BURST=1000000 RUST_LOG=${RUST_LOG:-warn,room_booking=info} \
    "$binary" --data-dir "$data_dir" serve --bind 127.0.0.1:0 >"$log" 2>&1 &
server=$!
addr=
for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listening addr=\([0-9.]*:[0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
done
[ -n "$addr" ] || { echo "the service did not start listening" >&2; cat "$log"; exit 1; }
api=http://$addr
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$api/ready" 2>/dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null "$api/ready" || { echo "$api/ready does not answer 200" >&2; cat "$log"; exit 1; }
token=$("$binary" --data-dir "$data_dir" token schemathesis --create-admin 2>>"$log")
echo "serving on $api"
# The room and the guest of POST /book's documented example, so that the
# examples phase books a real night and the stateful phase can follow that
# booking (Location: /bookings/{id}) through its changes and cancellation.
for resource in 'rooms {"name": "ROOM7"}' 'users {"name": "user3"}'; do
    curl -fsS -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' \
        -X POST "$api/${resource%% *}" -d "${resource#* }"
done

step "GET /openapi.json is valid OpenAPI 3.1"
curl -fsS "$api/openapi.json" -o "$work/openapi.json"
"$venv/bin/openapi-spec-validator" --schema 3.1 --validation-errors all "$work/openapi.json"

# No NUL characters in generated strings: PostgreSQL text cannot store them,
# so the service refuses every one with 400 malformed_request, as the
# document's 400 answers say (tests/contract.rs and src/extract.rs test it).
# From the temporary directory: schemathesis keeps a cache (.schemathesis/)
# in its working directory, and every run here starts from nothing.
root=$PWD
report_dir=${SCHEMATHESIS_REPORT_DIR:+$(realpath -m "$SCHEMATHESIS_REPORT_DIR")}
status=0
# fuzz NAME CONFIG PHASES TOKEN: one schemathesis run, its output in $work/NAME.out.
fuzz() {
    local name=$1 config=$2 phases=$3 bearer=$4 run_status=0
    (cd "$work" && timeout --kill-after=10 "$time_limit" \
        "$root/$venv/bin/schemathesis" --config-file "$config" run "$api/openapi.json" \
        --phases "$phases" \
        --checks all \
        --seed "$seed" \
        --max-examples "$max_examples" \
        --workers "$workers" \
        --request-timeout 15 \
        --generation-database none \
        --generation-allow-x00 false \
        --header "Authorization: Bearer $bearer" \
        --no-color \
        ${report_dir:+--report junit,ndjson --report-dir "$report_dir/$name"} \
        >"$work/$name.out" 2>&1) || run_status=$?
    cat "$work/$name.out"
    if [ "$run_status" -eq 124 ] || [ "$run_status" -eq 137 ]; then
        echo "schemathesis ran out of its ${time_limit}s" >&2
    fi
    [ "$run_status" -eq 0 ] || status=$run_status
}

step "schemathesis run 1: every phase (seed $seed, at most $max_examples examples per operation, ${time_limit}s)"
fuzz all "$root/.ci/schemathesis.toml" examples,coverage,fuzzing,stateful "$token"

# Run 1 may have deleted, demoted or renamed its admin, or changed its
# password (schemathesis reads ids from the answers), so run 2 gets a new token.
step "schemathesis run 2: real ids (.ci/schemathesis_fixtures.py, .ci/schemathesis-ids.toml)"
token=$("$binary" --data-dir "$data_dir" token schemathesis --create-admin --promote 2>>"$log")
mkdir "$work/ids"
"$root/$venv/bin/python" .ci/schemathesis_fixtures.py "$api" "$token" "$work/ids"
cat .ci/schemathesis.toml .ci/schemathesis-ids.toml >"$work/schemathesis-ids.toml"
# Not the stateful phase: schemathesis 4.32.5 sends the path's template
# (`/bookings/{id}`) when a bound parameter is filled from a link.
fuzz ids "$work/schemathesis-ids.toml" examples,coverage,fuzzing "$token"

# A 5xx fails a check already; a panic or a logged error must not pass unseen.
if grep -qE ' ERROR |panicked' "$log"; then
    echo "the service logged errors:" >&2
    grep -E ' ERROR |panicked' "$log" | tail -n 20 >&2
    [ "$status" -ne 0 ] || status=1
fi
step "summary"
for name in all ids; do
    [ -f "$work/$name.out" ] || continue
    echo "run $name:"
    grep -E '^ *[0-9]+ generated, ' "$work/$name.out" | tail -n 1 || true
    grep -E '^=+ .* in [0-9.]+s =+$' "$work/$name.out" | tail -n 1 || true
done
echo "schemathesis.sh: exit $status after $((SECONDS - started))s"
exit "$status"
