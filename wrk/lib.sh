# What the scripts of wrk/ share: messages, --help, and stopping and awaiting
# processes. Sourced (`. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`) right after
# `set -euo pipefail`; messages carry the name of the script that sources it.

SCRIPT_NAME="$(basename "$0")"

# The comment block at the top of the script, up to `set -euo pipefail`.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "$SCRIPT_NAME: $*" >&2; exit 1; }
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# stop_pid PID [SECONDS [WHAT]]: SIGTERM, up to SECONDS (default 30) to end,
# then SIGKILL (saying so when WHAT names the process). Returns the process's
# exit status; call it as `stop_pid … || true` when that does not matter.
stop_pid() {
    local pid="$1" limit="${2:-30}" what="${3:-}" rc=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((limit * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            [[ -n "$what" ]] && echo "$SCRIPT_NAME: $what (pid $pid) did not stop within $limit s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# await_service PID URL [LOG]: waits up to 120 s for URL/health while the
# process PID lives (showing the end of LOG if it dies), then requires
# URL/ready to answer 200.
await_service() {
    local pid="$1" url="$2" log_file="${3:-}" i
    for i in $(seq 1 600); do
        if curl -sf -o /dev/null "$url/health"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            [[ -n "$log_file" ]] && tail -n 20 "$log_file" >&2
            die "the service at $url exited during start-up"
        fi
        [[ $i -eq 600 ]] && die "the service did not answer $url/health within 120 s"
        sleep 0.2
    done
    curl -sf -o /dev/null "$url/ready" || die "$url/ready does not answer 200 (database unreachable?)"
}

# cpu_seconds PID_FILE SERVICE_PID...: "service postgres", the CPU seconds (user
# + system) so far of the service processes and of the PostgreSQL whose
# postmaster.pid is PID_FILE, with the backends that have ended (the
# postmaster's children's time); PostgreSQL's "-" without a PID_FILE.
cpu_seconds() {
    python3 - "$(getconf CLK_TCK)" "$@" <<'PY'
import os, sys
hz, pid_file, services = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
def stat(pid):  # the fields after the command's name: state, ppid, ...
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    except OSError:  # the process has ended
        return None
def ticks(pid, children=False):
    fields = stat(pid)
    # utime, stime (and cutime, cstime) are fields 14-17 of /proc/PID/stat.
    return sum(int(x) for x in fields[11:15 if children else 13]) if fields else 0
svc = sum(ticks(p) for p in services) / hz
pg = "-"
if pid_file and os.path.exists(pid_file):
    postmaster = open(pid_file).readline().strip()
    kids = [d for d in os.listdir("/proc") if d.isdigit() and (stat(d) or [None, None])[1] == postmaster]
    pg = (ticks(postmaster, children=True) + sum(ticks(k) for k in kids)) / hz
print(svc, pg)
PY
}
