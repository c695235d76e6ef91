"""Celery tasks of work pools: thin calls into workpools.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

import orchestrator.celery  # noqa: F401  (the app must exist before a task is sent)
from workpools import services


@shared_task
def recover_lost_runs() -> dict[str, int]:
    """The reaper (beat, REAPER_INTERVAL_SECONDS): runs whose heartbeat stopped -> CRASHED,
    silent workers -> OFFLINE."""
    return services.recover_lost_runs()
