"""Celery tasks of deployments: thin calls into deployments.services, safe to run twice."""

from __future__ import annotations

from celery import shared_task

import orchestrator.celery  # noqa: F401  (the app must exist before a task is sent)
from deployments import services


@shared_task
def schedule_deployments() -> int:
    """The scheduler's full pass (beat, SCHEDULER_INTERVAL_SECONDS)."""
    return services.schedule_deployments()


@shared_task
def schedule_deployment(deployment_id: str) -> int:
    """Schedule one new or changed deployment now, not at the next full pass."""
    return services.schedule_deployments(deployment_ids=[deployment_id])
