"""Celery tasks of runs: thin calls into runs.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from runs import services


@shared_task
def mark_late_runs() -> int:
    return services.mark_late_runs()


@shared_task
def fail_expired_pauses() -> int:
    """Paused and suspended runs whose pause timed out end FAILED."""
    return services.fail_expired_pauses()


@shared_task
def delete_old_runs() -> int:
    """Retention (RUN_RETENTION_DAYS; off by default)."""
    return services.delete_old_runs()
