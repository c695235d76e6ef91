"""How long from creating a run to its flow running: poll + claim + process start.

    .venv/bin/python benchmarks/worker_pickup.py [--runs 20] [--cold-start] [--remote] [--gap 1]

Uses a throw-away data directory (SQLite) unless DATABASE_URL is set; starts a real
`runworker` and creates runs one at a time, each after the previous one finished. Prints the
median and 95th percentile of created -> claimed (PENDING), -> RUNNING and -> COMPLETED.

With --remote the worker is a remote one: gunicorn serves the API (as `make up` runs it), and
the worker gets `--api-url`/`--api-key`, no database settings and a data directory of its own,
so it and its flow runs reach the orchestrator over HTTP only (an idle worker long-polls).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-start", action="store_true")
    parser.add_argument("--remote", action="store_true", help="A worker over HTTP, without a database.")
    parser.add_argument("--gap", type=float, default=1.0, help="Seconds between a run's end and the next run.")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="orch-bench-")
    os.environ.setdefault("ORCHESTRATOR_HOME", home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from deployments.models import Deployment, Flow
    from deployments.services import create_flow_run
    from runs.models import FlowRun
    from workpools.services import create_work_pool

    call_command("migrate", verbosity=0)
    pool = create_work_pool(f"bench-{os.getpid()}")
    flow, _ = Flow.objects.get_or_create(name="count_me")
    marker = tempfile.mkdtemp()
    dep = Deployment.objects.create(
        flow=flow, name=f"bench-{os.getpid()}", work_pool=pool, path=str(ROOT / "tests" / "flows"),
        entrypoint="counting.py:count_me", parameters={"marker_dir": marker}, enforce_parameter_schema=False,
    )
    command = [sys.executable, "manage.py", "runworker", "--pool", pool.name, "--poll-interval", "0.5"]
    command += ["--cold-start"] if args.cold_start else []
    worker_env, web = dict(os.environ), None
    if args.remote:
        web, url = start_web()
        from accounts.services import create_api_key

        _, key = create_api_key(f"bench-{os.getpid()}", scope="worker", pool=pool)
        command += ["--api-url", url, "--api-key", key]
        worker_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ORCHESTRATOR_HOME")}
        worker_env["ORCHESTRATOR_HOME"] = tempfile.mkdtemp(prefix="orch-bench-remote-")
    worker = subprocess.Popen(command, cwd=ROOT, env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    to_claimed: list[float] = []
    to_running: list[float] = []
    to_done: list[float] = []
    try:
        time.sleep(3)  # let the worker (and its launcher) start
        for _ in range(args.runs):
            time.sleep(args.gap)  # the worker is idle again (waiting in its poll) when the run comes
            created = time.monotonic()
            run, _ = create_flow_run(dep)
            while True:
                run.refresh_from_db()
                if run.state_type != "SCHEDULED" and not to_claimed[len(to_done):]:
                    to_claimed.append(time.monotonic() - created)
                if run.started_at and not to_running[len(to_done):]:
                    to_running.append(time.monotonic() - created)
                if run.is_terminal:
                    to_done.append(time.monotonic() - created)
                    break
                time.sleep(0.01)
            assert run.state_type == "COMPLETED", run.state_message
    finally:
        worker.terminate()
        worker.wait()
        if web is not None:
            web.terminate()
            web.wait()
    mode = "cold start (fresh interpreter per run)" if args.cold_start else "pre-warmed launcher (fork per run)"
    where = "remote worker over HTTP (long poll)" if args.remote else "worker on the database, poll interval 0.5 s"
    print(f"{args.runs} runs, {mode}, {where}, {FlowRun.objects.count()} runs in db")
    for label, values in (
        ("created -> claimed", to_claimed), ("created -> RUNNING", to_running), ("created -> COMPLETED", to_done)
    ):
        q = statistics.quantiles(values, n=20)
        print(f"  {label:22} median {statistics.median(values):.3f} s   p95 {q[-1]:.3f} s")


def start_web() -> tuple[subprocess.Popen, str]:
    """gunicorn serving the orchestrator on a free port, as `make up` runs it."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "orchestrator.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "16"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/api/", timeout=1)
        except urllib.error.HTTPError:
            return web, url  # 401: it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


if __name__ == "__main__":
    main()
