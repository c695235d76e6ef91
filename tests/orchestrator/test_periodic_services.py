"""Beat and host cron run the same periodic services: every entry names a real task."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

from orchestrator.celery import app


def test_every_beat_entry_names_a_registered_task() -> None:
    app.loader.import_default_modules()
    entries = settings.CELERY_BEAT_SCHEDULE
    assert {"schedule-deployments", "mark-late-runs", "reap-crashed-runs-and-offline-workers", "delete-old-runs"} <= set(entries)
    for entry in entries.values():
        assert entry["task"] in app.tasks, entry["task"]
        assert entry["schedule"] > 0


def test_host_cron_runs_the_same_tasks_as_beat() -> None:
    beat_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    cron_tasks = set()
    for _when, path in settings.CRONJOBS:
        module, name = path.rsplit(".", 1)
        assert callable(getattr(import_module(module), name))
        cron_tasks.add(path)
    assert cron_tasks == beat_tasks

