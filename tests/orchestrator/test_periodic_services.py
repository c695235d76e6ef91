"""Beat and host cron run the same periodic services: every entry names a real task."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

from django.conf import settings


def test_every_beat_entry_names_a_registered_task(subprocess_env: dict[str, str]) -> None:
    entries = settings.CELERY_BEAT_SCHEDULE
    assert {
        "schedule-deployments",
        "mark-late-runs",
        "reap-crashed-runs-and-offline-workers",
        "delete-old-runs",
    } <= set(entries)
    # What a fresh worker process registers at start (this test process's registry is shared
    # with every test before it).
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "from orchestrator.celery import app; app.loader.import_default_modules(); print(*sorted(app.tasks))",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    for entry in entries.values():
        assert entry["task"] in listing, entry["task"]
        assert entry["schedule"] > 0


def test_host_cron_runs_the_same_tasks_as_beat() -> None:
    beat_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    cron_tasks = set()
    for _when, path in settings.CRONJOBS:
        module, name = path.rsplit(".", 1)
        assert callable(getattr(import_module(module), name))
        cron_tasks.add(path)
    assert cron_tasks == beat_tasks
