"""What every benchmark shares: the database it measures, the real processes it starts (gunicorn,
runworker), the machine line printed beside every table, and the table itself.

Without DATABASE_URL a benchmark uses a throw-away data directory (SQLite); with it, the database
it names (create a database of your own: the benchmark adds pools, deployments and runs to it).
The machine is often shared: every table is printed with the load average before and after it.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "tests" / "flows"


def setup_django() -> str:
    """Configure Django on the benchmark's database (migrated); returns its vendor."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["ORCHESTRATOR_HOME"] = tempfile.mkdtemp(prefix="orch-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    return str(connection.vendor)


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}"


def database_label() -> str:
    from django.db import connection

    return "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"


def p(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print `rows` under `title` as a Markdown table (pasted as is into docs/performance.md)."""
    print(f"\n### {title}\n")
    print(f"{database_label()} | {machine()}\n")
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.0f}"
    return str(value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_web(*, workers: int = 2, threads: int = 16) -> tuple[subprocess.Popen, str]:
    """gunicorn serving the orchestrator on a free port, as `make up` runs it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "orchestrator.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--graceful-timeout",
            "5",
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/", timeout=1)
        except urllib.error.HTTPError:
            return web, url  # 401: it answers
        except OSError:
            time.sleep(0.1)
    web.kill()
    raise SystemExit("gunicorn did not start")


def start_worker(pool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real `manage.py runworker` on `pool`; returns once it polls for work."""
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool, *args],
        cwd=ROOT,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if "polling for work" in line:
            break
    else:
        raise SystemExit(f"the worker exited with {worker.wait()}")
    # Keep reading its output so it never blocks on a full pipe.
    import threading

    threading.Thread(target=lambda: [None for _ in worker.stdout], daemon=True).start()  # type: ignore[union-attr]
    return worker


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def counting_deployment(pool: Any, name: str, marker_dir: str) -> Any:
    """A deployment of tests/flows/counting.py:count_me, which records each execution itself."""
    from deployments.models import Deployment, Flow

    flow, _ = Flow.objects.get_or_create(name="count_me")
    return Deployment.objects.create(
        flow=flow,
        name=name,
        work_pool=pool,
        path=str(FLOWS),
        entrypoint="counting.py:count_me",
        parameters={"marker_dir": marker_dir},
        enforce_parameter_schema=False,
    )


def executions(marker_dir: str) -> dict[str, int]:
    """How many times each run's flow started, as the flow itself recorded it."""
    counts: dict[str, int] = {}
    path = Path(marker_dir) / "events.log"
    if path.exists():
        for line in path.read_text().splitlines():
            kind, run_id, _ = line.split()
            if kind == "start":
                counts[run_id] = counts.get(run_id, 0) + 1
    return counts


def rss_mb(pid: int, *, with_children: bool = False) -> float:
    """Resident memory of `pid` (and its descendants) in MB, from /proc."""
    pids = [pid] + (descendants(pid) if with_children else [])
    total = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    try:
        direct = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return children
    for child in map(int, direct):
        children.append(child)
        children.extend(descendants(child))
    return children
