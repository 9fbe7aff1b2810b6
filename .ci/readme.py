#!/usr/bin/env python3
"""The README's first calls, run as a newcomer runs them, each output checked.

Starts the release binary with no settings but a free port in a fresh directory under a
private (mode 700) one, as `cargo run --release` in a clone under root's home
would, runs the shell blocks of "First calls" (the `token` line's `cargo run
--release -q --` is the binary itself) and compares every line the script
prints with the `# ...` line the README shows after its command. Ids, dates,
times and `…` in the README stand for whatever the service answers there.

Usage: python3 .ci/readme.py [path of the room-booking binary]
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/room-booking"))

def free_port() -> int:
    """A free port: other checkouts' CI runs may share the machine, so the
    service listens there (`BIND_ADDR`) instead of the README's 3000."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PORT = free_port()


def blocks(readme: str) -> str:
    """The sh blocks from "## First calls" to the next section."""
    section = readme.split("## First calls", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.S))


def expected_lines(script: str) -> list[str]:
    """The outputs the README shows: comment lines that hold a value."""
    return [line[2:] for line in script.splitlines() if re.match(r'# [{\["0-9]', line)]


def pattern(shown: str) -> re.Pattern:
    """A shown output as a pattern: ids, dates, times and `…` are wildcards."""
    text = re.escape(shown)
    text = text.replace("…", ".*")
    text = re.sub(r"[0-9a-f]{8}\\-\.\*", ".*", text)
    text = re.sub(r"\d{4}\\-\d{2}\\-\d{2}", r"\\d{4}-\\d{2}-\\d{2}", text)
    text = re.sub(r"T\d{2}:\d{2}:\d{2}", r"T\\d{2}:\\d{2}:\\d{2}", text)
    return re.compile(text + r"\Z")


def wait_until_ready(service: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if service.poll() is not None:
            sys.exit(f"the service stopped:\n{open(log).read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the service did not become ready:\n{open(log).read()}")


def main() -> None:
    script = blocks(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read())
    script = script.replace("cargo run --release -q --", f'"{BIN}"')
    assert "B=http://127.0.0.1:3000" in script, "the README's base URL moved"
    script = script.replace("B=http://127.0.0.1:3000", f"B=http://127.0.0.1:{PORT}")
    expected = expected_lines(script)
    if len(expected) < 10:
        sys.exit(f"only {len(expected)} outputs found in the README's first calls")

    home = tempfile.mkdtemp(prefix="room-booking-readme-")  # mode 700
    clone = os.path.join(home, "room-booking")
    os.mkdir(clone)
    log = os.path.join(home, "service.log")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR", "JWT_SECRET", "RUST_LOG", "BIND_ADDR")}
    moved = None
    with open(log, "w") as out:
        service = subprocess.Popen([BIN], cwd=clone, env={**env, "BIND_ADDR": f"127.0.0.1:{PORT}"}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_ready(service, log)
        found = re.search(r"dir=(/var/lib/room-booking/\w+)", open(log).read())
        moved = found.group(1) if found else None
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=300)
        actual = run.stdout.splitlines()
        failures = [f"README shows: {shown}\n   it printed: {got}"
                    for shown, got in zip(expected, actual + [""] * len(expected)) if not pattern(shown).match(got)]
        if run.returncode != 0 or len(actual) != len(expected) or failures:
            print(run.stderr, file=sys.stderr)
            print("\n".join(failures) or f"{len(actual)} lines printed, {len(expected)} shown", file=sys.stderr)
            sys.exit(1)
        print(f"README first calls: {len(expected)} outputs as shown"
              + (f"; the cluster moved to {moved}" if moved else ""))
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        shutil.rmtree(home, ignore_errors=True)
        if moved:
            shutil.rmtree(moved, ignore_errors=True)


if __name__ == "__main__":
    main()
