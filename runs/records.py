"""Flow runs and task runs turned into the client interface's plain records.

One mapping for both transports: the direct transport returns these records as they are, and
the API endpoints behind the HTTP transport serialize the very same records, so an engine sees
the same data whichever way it reaches the orchestrator.
"""

from __future__ import annotations

from typing import Any

from orchestrator.client.base import DeploymentInfo, FlowRunInfo, RunInputInfo, TaskRunInfo


def deployment_info(dep: Any) -> DeploymentInfo | None:
    if dep is None:
        return None
    return DeploymentInfo(
        id=str(dep.pk),
        full_name=dep.full_name,
        entrypoint=dep.entrypoint,
        path=dep.path,
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
        parent_flow_run_id=str(run.parent_flow_run_id) if run.parent_flow_run_id else None,
        parent_task_run_id=str(run.parent_task_run_id) if run.parent_task_run_id else None,
        result_uri=run.result_uri,
    )


def task_run_info(task_run: Any) -> TaskRunInfo:
    return TaskRunInfo(
        id=str(task_run.pk),
        name=task_run.name,
        state_type=str(task_run.state_type),
        state_name=task_run.state_name,
        run_count=task_run.run_count,
    )


def run_input_info(request: Any, run: Any) -> RunInputInfo:
    return RunInputInfo(
        key=request.key,
        provided=request.provided_at is not None,
        value=request.value,
        state_type=str(run.state_type),
        state_name=run.state_name,
    )
