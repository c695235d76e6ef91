"""Database rows turned into the client interface's plain records.

One mapping for both transports: the direct transport returns these records as they are, and
the API endpoints behind the HTTP transport serialize the very same records, so a worker or an
engine sees the same data whichever way it reaches the orchestrator.
"""

from __future__ import annotations

from typing import Any

from orchestrator.client.base import ClaimedRun, DeploymentInfo, FlowRunInfo, HeldRun, TaskRunInfo, WorkerInfo


def deployment_info(dep: Any) -> DeploymentInfo | None:
    if dep is None:
        return None
    return DeploymentInfo(
        id=str(dep.pk), full_name=dep.full_name, entrypoint=dep.entrypoint, path=dep.path,
        pull_steps=list(dep.pull_steps or []),
    )


def flow_run_info(run: Any) -> FlowRunInfo:
    return FlowRunInfo(
        id=str(run.pk),
        name=run.name,
        flow_name=run.flow.name,
        state_type=str(run.state_type),
        state_name=run.state_name,
        state_message=run.state_message,
        parameters=dict(run.parameters or {}),
        run_count=run.run_count,
        retries=run.retries,
        retry_delay_seconds=run.retry_delay_seconds,
        next_scheduled_start_at=run.next_scheduled_start_at,
        worker_id=str(run.worker_id) if run.worker_id else None,
        deployment=deployment_info(run.deployment) if run.deployment_id else None,
    )


def task_run_info(task_run: Any) -> TaskRunInfo:
    return TaskRunInfo(
        id=str(task_run.pk), name=task_run.name, state_type=str(task_run.state_type),
        state_name=task_run.state_name, run_count=task_run.run_count,
    )


def worker_info(worker: Any, *, queue_ids: list[Any] | None = None, pool_created: bool = False) -> WorkerInfo:
    from django.conf import settings

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
    from runs.errors import ValidationError
    from workpools.infrastructure.templates import job_configuration_for, job_variables_for

    try:
        configuration, error = job_configuration_for(run), ""
    except ValidationError as invalid:  # a template edited since: the run cannot start as it is
        configuration, error = {}, f"Its job configuration cannot be rendered: {invalid}"
    return ClaimedRun(
        id=str(run.pk), name=run.name, deployment=deployment_info(run.deployment) if run.deployment_id else None,
        job_variables=job_variables_for(run), job_configuration=configuration, configuration_error=error,
    )


def held_run(run: Any) -> HeldRun:
    return HeldRun(
        id=str(run.pk), name=run.name, state_type=str(run.state_type), state_name=run.state_name, pid=run.pid,
        hostname=run.hostname,
    )
