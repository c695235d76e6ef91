"""Celery tasks of work pools: thin calls into workpools.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from workpools import services


@shared_task
def recover_lost_runs() -> dict[str, int]:
    """The reaper (beat, REAPER_INTERVAL_SECONDS): runs whose heartbeat stopped -> CRASHED,
    silent workers -> OFFLINE."""
    return services.recover_lost_runs()
