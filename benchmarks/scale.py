"""Claims and API list pages against a big runs table (the dashboard's pages: dashboard_pages.py).

    createdb -h 127.0.0.1 -U postgres orch_1m
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_1m
    .venv/bin/python manage.py migrate && .venv/bin/python manage.py seeddemo --runs 1000000
    .venv/bin/python benchmarks/scale.py [--repeat 15]
    .venv/bin/python benchmarks/dashboard_pages.py

Everything runs in-process against the configured database (no network). Claims:
- idle claim: claim_runs for a worker of a pool whose queue holds nothing due (the query every
  idle poll makes), and next_due_at (what an idle worker asks before it sleeps);
- claiming a due run: claim_runs(max_runs=1) in the seeded `data-pipelines` pool, which holds
  due runs among its hundreds of thousands; the pool's limits are lifted and
  each claim rolled back, so every repetition claims
  the same way and the data is left as it was.
API list pages: GET /api/flow-runs/ with every filter and `limit` up to its maximum, through
Django's test client with a read key (routing, authentication, filtering, serialisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    fn()  # warm up
    timings, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        timings.append((time.perf_counter() - began) * 1000)
    return h.median(timings), max(timings), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    h.setup_django()
    from django.db import transaction
    from django.test import Client

    from accounts.services import create_api_key
    from deployments.models import Deployment
    from runs.models import FlowRun
    from workpools.models import WorkPool
    from workpools.services import claim_runs, create_work_queue, next_due_at, register_worker

    total = FlowRun.objects.order_by().count()
    busy = WorkPool.objects.get(name="data-pipelines")
    worker, _ = register_worker(busy.name, name="bench-scale")
    empty_queue = busy.queues.filter(name="bench-empty").first() or create_work_queue(busy, "bench-empty")

    def claim_one_rolled_back() -> int:
        with transaction.atomic():
            # The seeded pool is at its limits: lift them inside the transaction (rolled back).
            WorkPool.objects.filter(pk=busy.pk).update(concurrency_limit=None, paused=False)
            busy.queues.update(concurrency_limit=None, paused=False)
            Deployment.objects.filter(work_pool=busy).update(concurrency_limit=None)
            claimed = claim_runs(worker, max_runs=1)
            transaction.set_rollback(True)
        return len(claimed)

    rows = []
    median, worst, n = timed(lambda: len(claim_runs(worker, queue_ids=[empty_queue.pk])), args.repeat)
    rows.append(("idle claim (claim_runs, nothing due)", median, worst, f"{n} claimed"))
    median, worst, _ = timed(lambda: next_due_at(worker), args.repeat)
    rows.append(("next_due_at (idle worker, before sleeping)", median, worst, ""))
    median, worst, n = timed(claim_one_rolled_back, args.repeat)
    rows.append(("claiming a due run (claim_runs, max_runs=1)", median, worst, f"{n} claimed"))
    h.table(
        f"Claims with {total:,} runs in the table ({args.repeat} repetitions)",
        ["operation", "p50 ms", "max ms", "note"],
        rows,
    )

    _, key = create_api_key(f"bench-scale-{time.time_ns()}", scope="read")
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {key}")
    busiest = Deployment.objects.get(flow__name="etl", name="events-5min")
    quiet = Deployment.objects.get(flow__name="reports", name="weekly-revenue")
    base = "/api/flow-runs/"
    pages = [
        ("default page", base),
        ("limit=500", f"{base}?limit=500"),
        ("state=FAILED", f"{base}?state=FAILED"),
        ("state=FAILED&state=CRASHED", f"{base}?state=FAILED&state=CRASHED"),
        ("state=FAILED, limit=500", f"{base}?state=FAILED&limit=500"),
        ("state=RUNNING", f"{base}?state=RUNNING"),
        ("busiest deployment", f"{base}?deployment={busiest.pk}"),
        ("rare deployment", f"{base}?deployment={quiet.pk}"),
        ("rare deployment + CRASHED", f"{base}?deployment={quiet.pk}&state=CRASHED"),
        ("pool", f"{base}?pool={busy.name}"),
        ("common tag (etl)", f"{base}?tag=etl"),
        ("rare tag (finance)", f"{base}?tag=finance"),
        ("since 1 day ago", f"{base}?since={_ago(1)}"),
        ("since 7 days, until 6 days ago", f"{base}?since={_ago(7)}&until={_ago(6)}"),
    ]
    rows = []
    for label, url in pages:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
        median, worst, response = timed(lambda url=url: client.get(url), args.repeat)
        count = len(response.json().get("results", []))
        rows.append((label, median, worst, str(count)))
    h.table(
        f"REST API run lists with {total:,} runs ({args.repeat} requests each)",
        ["GET /api/flow-runs/", "p50 ms", "max ms", "rows"],
        rows,
    )


def _ago(days: int) -> str:
    from datetime import timedelta

    from django.utils import timezone

    return (timezone.now() - timedelta(days=days)).isoformat().replace("+00:00", "Z")


if __name__ == "__main__":
    main()
