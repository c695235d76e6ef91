"""Workers and claimed runs turned into the client interface's plain records (see
runs/records.py): what a worker sees, whichever transport it uses."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from orchestrator.client.base import ClaimedRun, HeldRun, WorkerInfo
from runs.records import deployment_info


def worker_info(worker: Any, *, queue_ids: list[Any] | None = None, pool_created: bool = False) -> WorkerInfo:
    return WorkerInfo(
        id=str(worker.pk),
        name=worker.name,
        pool_name=worker.pool.name,
        pool_type=worker.pool.type,
        limit=worker.limit,
        queue_ids=None if queue_ids is None else [str(q) for q in queue_ids],
        heartbeat_seconds=settings.WORKER_HEARTBEAT_SECONDS,
        run_heartbeat_seconds=settings.RUN_HEARTBEAT_SECONDS,
        pool_created=pool_created,
    )


def claimed_run(run: Any) -> ClaimedRun:
    """`run` with its work pool and deployment loaded (FlowRun.objects.with_related())."""
    from orchestrator.core.errors import ValidationError
    from workpools.infrastructure.templates import job_configuration_for, job_variables_for

    try:
        configuration, error = job_configuration_for(run), ""
    except ValidationError as invalid:  # a template edited since: the run cannot start as it is
        configuration, error = {}, f"Its job configuration cannot be rendered: {invalid}"
    return ClaimedRun(
        id=str(run.pk),
        name=run.name,
        deployment=deployment_info(run.deployment) if run.deployment_id else None,
        job_variables=job_variables_for(run),
        job_configuration=configuration,
        configuration_error=error,
    )


def held_run(run: Any) -> HeldRun:
    return HeldRun(
        id=str(run.pk),
        name=run.name,
        state_type=str(run.state_type),
        state_name=run.state_name,
        pid=run.pid,
        hostname=run.hostname,
    )
