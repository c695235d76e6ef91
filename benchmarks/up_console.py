"""What `make up` prints and how fast Ctrl-C stops it.

    .venv/bin/python benchmarks/up_console.py [--minutes 2] [--verbose] [--port 8391]

Starts `manage.py up` in a throw-away data directory (SQLite, filesystem broker), lets it run
(the example deployment runs every minute), sends SIGINT as Ctrl-C does and prints: console
lines per minute of running, ERROR lines, and the seconds from SIGINT until `up` exited.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=2.0, help="How long to let it run before Ctrl-C.")
    parser.add_argument("--verbose", action="store_true", help="Run `up --verbose` instead of the quiet default.")
    parser.add_argument("--port", type=int, default=8391)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "VERBOSE"}}
    env["ORCHESTRATOR_HOME"] = tempfile.mkdtemp(prefix="orch-bench-up-")
    command = [sys.executable, "manage.py", "up", "--port", str(args.port), *(["--verbose"] if args.verbose else [])]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit("up never answered:\n" + "".join(lines))
            time.sleep(0.5)
    started_lines = len(lines)
    time.sleep(args.minutes * 60)
    running_lines = len(lines) - started_lines
    os.kill(proc.pid, signal.SIGINT)
    stop_began = time.monotonic()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        sys.exit("up did not stop within 60 s")
    stopped_in = time.monotonic() - stop_began
    reader.join(timeout=5)
    errors = [line for line in lines if "ERROR" in line or "Traceback" in line]
    print(f"mode: {'verbose' if args.verbose else 'quiet'}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"console lines while running: {running_lines} in {args.minutes:g} min "
        f"({running_lines / args.minutes:.1f} per minute); {len(lines)} in all"
    )
    print(f"ERROR/Traceback lines: {len(errors)}")
    print(f"Ctrl-C to exit: {stopped_in:.1f} s (exit code {proc.returncode})")
    for line in errors[:10]:
        print("  " + line.rstrip())


if __name__ == "__main__":
    main()
