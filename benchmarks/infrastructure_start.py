"""How long from triggering a run through the API to its flow RUNNING, per infrastructure type.

    .venv/bin/python benchmarks/infrastructure_start.py [--runs 20] [--types process,docker] [--gap 1]

Uses a throw-away data directory (SQLite) unless DATABASE_URL is set. gunicorn serves the API
(as `make up` runs it); for each type a real `runworker` (on the database) serves a pool of its
own, and runs are triggered one at a time with POST /api/deployments/<id>/runs/ (a trigger key),
each after the previous one finished. Prints the median and 95th percentile of trigger ->
claimed (PENDING), -> RUNNING and -> COMPLETED.

`process` starts runs as forks of the worker's pre-warmed launcher. `docker` starts one container
per run from the test image (tests/support/images.py builds it, nothing is pulled), whose engine
reaches gunicorn over HTTP with a run token: an interpreter start inside a fresh container.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.worker_pickup import start_web  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--types", default="process,docker")
    parser.add_argument("--gap", type=float, default=1.0, help="Seconds between a run's end and the next trigger.")
    args = parser.parse_args()
    os.environ.setdefault("ORCHESTRATOR_HOME", tempfile.mkdtemp(prefix="orch-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.services import create_api_key

    web, url = start_web()
    _, key = create_api_key(f"bench-trigger-{os.getpid()}", scope="trigger")
    try:
        for pool_type in args.types.split(","):
            report(pool_type, measure(pool_type, url, key, args.runs, args.gap))
    finally:
        web.terminate()
        web.wait()


def measure(pool_type: str, url: str, key: str, runs: int, gap: float) -> dict[str, list[float]]:
    import requests

    from deployments.models import Deployment, Flow
    from runs.models import FlowRun
    from workpools.services import create_work_pool

    marker = tempfile.mkdtemp(prefix="orch-bench-markers-")
    flows = ROOT / "tests" / "flows"
    job_variables: dict[str, Any] = {}
    if pool_type == "docker":
        from tests.support.images import build_test_image

        job_variables = {
            "image": build_test_image(),
            "image_pull_policy": "Never",
            "api_url": url,
            "volumes": [f"{flows}:{flows}:ro", f"{marker}:{marker}"],
        }
    pool = create_work_pool(f"bench-{pool_type}-{os.getpid()}", type=pool_type, job_variables=job_variables)
    flow, _ = Flow.objects.get_or_create(name="count_me")
    dep = Deployment.objects.create(
        flow=flow,
        name=pool.name,
        work_pool=pool,
        path=str(flows),
        entrypoint="counting.py:count_me",
        parameters={"marker_dir": marker},
        enforce_parameter_schema=False,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool.name, "--poll-interval", "0.5"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    times: dict[str, list[float]] = {"claimed": [], "RUNNING": [], "COMPLETED": []}
    try:
        time.sleep(3)  # let the worker (and its launcher) start
        for _ in range(runs):
            time.sleep(gap)
            triggered = time.monotonic()
            response = session.post(f"{url}/api/deployments/{dep.pk}/runs/", json={}, timeout=30)
            response.raise_for_status()
            run = FlowRun.objects.get(pk=response.json()["id"])
            seen: dict[str, float] = {}
            deadline = triggered + 120
            while time.monotonic() < deadline:
                run.refresh_from_db()
                now = time.monotonic() - triggered
                if run.state_type != "SCHEDULED":
                    seen.setdefault("claimed", now)
                if run.started_at:
                    seen.setdefault("RUNNING", now)
                if run.is_terminal:
                    seen.setdefault("COMPLETED", now)
                    break
                time.sleep(0.01)
            if run.state_type != "COMPLETED":
                raise SystemExit(f"{pool_type} run {run.name} ended {run.state_type}: {run.state_message}")
            for label, value in seen.items():
                times[label].append(value)
    finally:
        worker.terminate()
        worker.wait()
    return times


def report(pool_type: str, times: dict[str, list[float]]) -> None:
    print(f"{pool_type}: {len(times['COMPLETED'])} runs triggered through the API")
    for label, values in times.items():
        q = statistics.quantiles(values, n=20) if len(values) > 1 else values
        print(f"  trigger -> {label:10} p50 {statistics.median(values):.3f} s   p95 {q[-1]:.3f} s")


if __name__ == "__main__":
    main()
