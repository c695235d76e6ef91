"""How long from creating a run to its flow running: poll + claim + process start.

    .venv/bin/python benchmarks/worker_pickup.py [--runs 20] [--cold-start]

Uses a throw-away data directory (SQLite) unless DATABASE_URL is set; starts a real
`runworker` and creates runs one at a time, each after the previous one finished. Prints the
median and 95th percentile of created -> RUNNING and of created -> COMPLETED.
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
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="orch-bench-")
    os.environ.setdefault("ORCHESTRATOR_HOME", home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from deployments.models import Deployment, Flow
    from runs.models import FlowRun
    from runs.services import create_flow_run
    from workpools.services import create_work_pool

    call_command("migrate", verbosity=0)
    pool = create_work_pool(f"bench-{os.getpid()}")
    flow, _ = Flow.objects.get_or_create(name="count_me")
    marker = tempfile.mkdtemp()
    dep = Deployment.objects.create(
        flow=flow, name=f"bench-{os.getpid()}", work_pool=pool, path=str(ROOT / "tests" / "flows"),
        entrypoint="counting.py:count_me", parameters={"marker_dir": marker}, enforce_parameter_schema=False,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool.name, "--poll-interval", "0.5"]
        + (["--cold-start"] if args.cold_start else []),
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    to_running, to_done = [], []
    try:
        time.sleep(3)  # let the worker (and its launcher) start
        for _ in range(args.runs):
            created = time.monotonic()
            run, _ = create_flow_run(dep)
            while True:
                run.refresh_from_db()
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
    mode = "cold start (fresh interpreter per run)" if args.cold_start else "pre-warmed launcher (fork per run)"
    print(f"{args.runs} runs, {mode}, poll interval 0.5 s, {FlowRun.objects.count()} runs in db")
    for label, values in (("created -> RUNNING", to_running), ("created -> COMPLETED", to_done)):
        q = statistics.quantiles(values, n=20)
        print(f"  {label:22} median {statistics.median(values):.3f} s   p95 {q[-1]:.3f} s")


if __name__ == "__main__":
    main()
