"""Celery tasks of runs: thin calls into runs.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

import orchestrator.celery  # noqa: F401  (the app must exist before a task is sent)
from runs import services


@shared_task
def mark_late_runs() -> int:
    return services.mark_late_runs()


@shared_task
def delete_old_runs() -> int:
    """Retention (RUN_RETENTION_DAYS; off by default)."""
    return services.delete_old_runs()
