"""Celery tasks of work pools: thin calls into workpools.services, safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task
def reap_crashed_runs_and_offline_workers() -> Any:
    """The reaper (beat, REAPER_INTERVAL_SECONDS): runs whose heartbeat stopped -> CRASHED,
    silent workers -> OFFLINE."""
    # Imported when called: the service lands with runworker (the workers issue); until then
    # this says so instead of failing every few seconds.
    try:
        from workpools.services import reap_crashed_runs_and_offline_workers as reap
    except ImportError:
        log.warning("The reaper service (workpools.services.reap_crashed_runs_and_offline_workers) is not there yet.")
        return None
    return reap()
