"""Celery tasks of runs: thin calls into runs.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

import orchestrator.celery  # noqa: F401  (the app must exist before a task is sent)
from accounts.audit import delete_old_entries
from runs import services


@shared_task
def mark_late_runs() -> int:
    return services.mark_late_runs()


@shared_task
def delete_old_runs() -> int:
    """Retention (RUN_RETENTION_DAYS; off by default): old runs, and audit entries as old."""
    deleted = services.delete_old_runs()
    delete_old_entries()
    return deleted
