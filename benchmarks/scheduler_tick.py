"""How long the scheduler's tick takes for many deployments (not a test: it prints the figures).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orchestrator .venv/bin/python benchmarks/scheduler_tick.py

Seeds N deployments (default 10,000) with one schedule each, a third each cron, interval and
rrule, in three timezones, all firing about hourly; then times three ticks: the first (makes
every schedule's runs), a repeat (nothing to do), and one an hour later (the window moved on).
The seeded rows are deleted before and after. Use a database you can spare.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=10_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from deployments.models import Deployment, DeploymentSchedule, Flow
    from deployments.services import schedule_deployments
    from runs.models import FlowRun
    from workpools.models import WorkPool
    from workpools.services import create_work_pool

    call_command("migrate", interactive=False, verbosity=0)

    def clean() -> None:
        FlowRun.objects.filter(flow__name="bench-flow").delete()
        Deployment.objects.filter(flow__name="bench-flow").delete()
        Flow.objects.filter(name="bench-flow").delete()
        WorkPool.objects.filter(name="bench-pool").delete()

    clean()
    pool = create_work_pool("bench-pool")
    flow = Flow.objects.create(name="bench-flow")
    deployments = Deployment.objects.bulk_create(
        Deployment(
            flow=flow,
            name=f"bench-{i:05d}",
            entrypoint="flows/bench.py:bench",
            work_pool=pool,
            parameters={"i": i},
            tags=["bench"],
        )
        for i in range(args.deployments)
    )
    zones = ["UTC", "Europe/Berlin", "America/New_York"]
    schedules = []
    for i, d in enumerate(deployments):
        kind = ("cron", "interval", "rrule")[i % 3]
        fields = {
            "cron": {"cron": f"{i % 60} * * * *"},
            "interval": {"interval_seconds": 3600 + 60 * (i % 7)},
            "rrule": {"rrule": f"FREQ=HOURLY;BYMINUTE={i % 60}"},
        }[kind]
        schedules.append(DeploymentSchedule(deployment=d, slug="hourly", kind=kind, timezone=zones[i % 3], **fields))
    DeploymentSchedule.objects.bulk_create(schedules)

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(f"seeded {len(deployments)} deployments, one schedule each")
    now = timezone.now()
    try:
        for label, at in (("first tick", now), ("repeat tick", now), ("tick an hour later", now + timedelta(hours=1))):
            started = time.perf_counter()
            created = schedule_deployments(now=at)
            print(f"{label}: {time.perf_counter() - started:.2f} s, {created} runs created")
    finally:
        clean()


if __name__ == "__main__":
    main()
