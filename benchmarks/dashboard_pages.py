"""Time every dashboard page's server time against the configured database.

Meant for PostgreSQL holding a million runs:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_dashboard .venv/bin/python manage.py migrate
    DATABASE_URL=... .venv/bin/python manage.py seeddemo --runs 1000000
    DATABASE_URL=... .venv/bin/python benchmarks/dashboard_pages.py [--repeat 7] [--budget-ms 200]

/metrics is timed the same way (scraped from an allowed address). Each page is requested in-process through Django's test client (URL routing, middleware,
session, views, queries, templates: everything but the network), once to warm up and then
--repeat times. It prints the median and worst time, the number of SQL queries and the slowest
query, and exits 1 when a page's median is over the budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from deployments.models import Deployment  # noqa: E402
from runs.models import FlowRun, RunCursor  # noqa: E402
from workpools.models import WorkPool  # noqa: E402


def pages() -> list[tuple[str, str]]:
    """(label, url) for every page and fragment, with filters a person would use."""
    busiest = Deployment.objects.select_related("flow").get(flow__name="etl", name="events-5min")
    quiet = Deployment.objects.select_related("flow").get(flow__name="reports", name="weekly-revenue")
    pool = WorkPool.objects.get(name="data-pipelines")
    newest = FlowRun.objects.exclude(state_type="SCHEDULED").filter(logs__isnull=False).order_by("-expected_start_at")
    newest_run = newest.first()
    old_run = FlowRun.objects.filter(expected_start_at__lt=timezone.now() - timezone.timedelta(days=25)).first()
    # A cursor 20,000 runs deep (finding it is setup, not measured).
    deep = FlowRun.objects.order_by("-expected_start_at", "-id")[20_000]
    deep_cursor = RunCursor.of(deep).encode()
    runs = reverse("runs:list")
    assert newest_run is not None and old_run is not None, "seed the database first: manage.py seeddemo"
    return [
        ("home", reverse("home")),
        ("home: duration scatter", reverse("home") + "?chart=scatter"),
        ("/metrics (Prometheus scrape)", reverse("metrics")),
        ("work pools", reverse("workpools:list")),
        ("work pools: polled fragment", reverse("workpools:pools_fragment")),
        ("deployments", reverse("deployments:list")),
        ("deployment detail (busiest)", reverse("deployments:detail", args=[busiest.pk])),
        ("custom run form", reverse("deployments:custom_run", args=[busiest.pk])),
        ("runs: default (last 7 days)", runs),
        ("runs: any time", f"{runs}?window=all"),
        ("runs: last hour", f"{runs}?window=1h"),
        ("runs: state Failed", f"{runs}?state=FAILED&window=all"),
        ("runs: state Failed+Crashed", f"{runs}?state=FAILED&state=CRASHED&window=all"),
        ("runs: state Running", f"{runs}?state=RUNNING&window=all"),
        ("runs: busiest deployment", f"{runs}?deployment={busiest.pk}&window=all"),
        ("runs: rare deployment", f"{runs}?deployment={quiet.pk}&window=all"),
        ("runs: rare deployment+Crashed", f"{runs}?deployment={quiet.pk}&state=CRASHED&window=all"),
        ("runs: pool", f"{runs}?pool={pool.name}&window=all"),
        ("runs: common tag (etl)", f"{runs}?tag=etl&window=all"),
        ("runs: rare tag (finance)", f"{runs}?tag=finance&window=all"),
        ("runs: rare tag, 7 days", f"{runs}?tag=finance"),
        ("runs: 20,000 runs deep", f"{runs}?window=all&after={deep_cursor}"),
        ("runs: back from deep", f"{runs}?window=all&before={deep_cursor}"),
        ("run detail (newest, with logs)", reverse("runs:detail", args=[newest_run.pk])),
        ("run: header fragment", reverse("runs:header_fragment", args=[newest_run.pk])),
        ("run: timeline fragment", reverse("runs:timeline_fragment", args=[newest_run.pk])),
        ("run: task runs fragment", reverse("runs:task_runs_fragment", args=[newest_run.pk])),
        ("run: logs fragment", reverse("runs:logs_fragment", args=[newest_run.pk])),
        ("run detail (25 days old)", reverse("runs:detail", args=[old_run.pk])),
    ]


def measure(client: Client, url: str, repeat: int) -> dict[str, Any]:
    client.get(url)  # warm up: connection, templates, caches
    timings, queries, slowest = [], 0, 0.0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        queries = len(captured.captured_queries)
        slowest = max([slowest] + [float(q["time"]) * 1000 for q in captured.captured_queries])
    return {"median": statistics.median(timings), "max": max(timings), "queries": queries, "slowest": slowest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    args = parser.parse_args()

    from django.conf import settings

    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]  # the test client's address: /metrics without a key
    user, _ = get_user_model().objects.get_or_create(username="benchmark", defaults={"is_staff": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'runs_flowrun'")
            size = f"~{cursor.fetchone()[0]:,} runs (planner estimate)"
            cursor.execute("SHOW server_version")
            engine = f"PostgreSQL {cursor.fetchone()[0]}"
    else:
        size, engine = f"{FlowRun.objects.count():,} runs", connection.vendor
    print(f"{engine}, {size}; median and worst of {args.repeat} requests each, budget {args.budget_ms:.0f} ms\n")
    print(f"{'page':<34} {'median ms':>9} {'worst ms':>9} {'queries':>7} {'slowest query ms':>16}")
    print("-" * 79)
    over = []
    for label, url in pages():
        result = measure(client, url, args.repeat)
        flag = "  OVER BUDGET" if result["median"] > args.budget_ms else ""
        if flag:
            over.append(label)
        print(
            f"{label:<34} {result['median']:>9.1f} {result['max']:>9.1f} {result['queries']:>7} "
            f"{result['slowest']:>16.1f}{flag}"
        )
    print()
    print(f"{len(over)} page(s) over budget: {', '.join(over)}" if over else "Every page is within budget.")
    raise SystemExit(1 if over else 0)


if __name__ == "__main__":
    main()
