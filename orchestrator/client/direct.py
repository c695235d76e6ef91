"""The direct transport: the client interface answered by the services, in this process,
against the orchestrator's own database. The default on the orchestrator's host."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from orchestrator.client.base import (
    CachedResult,
    DeploymentInfo,
    FlowRunInfo,
    LogEntry,
    OrchestratorClient,
    TaskRunInfo,
)
from runs.errors import NotFound, OrchestratorError


def ensure_django() -> None:
    """Configure Django from the environment unless something (manage.py, the test runner,
    the engine) already did: a flow script needs no set-up of its own."""
    from django.apps import apps

    if apps.ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()


class DirectClient(OrchestratorClient):
    name = "direct"

    def __init__(self) -> None:
        ensure_django()
        self._check_database()

    @staticmethod
    def _check_database() -> None:
        from django.db import connection

        if "runs_flowrun" not in connection.introspection.table_names():
            raise OrchestratorError(
                "The orchestrator's database has no tables yet: run `manage.py migrate` (or `make up`) first."
            )

    # --- flow runs ---
    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        return _flow_run_info(self._flow_run(run_id))

    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        from deployments.services import get_or_create_flow
        from runs.services import create_adhoc_flow_run

        flow = get_or_create_flow(flow_name, description=description)
        run = create_adhoc_flow_run(flow, parameters=parameters)
        run.flow = flow
        return _flow_run_info(run)

    def set_flow_run_state(
        self, run_id: str, state_type: str, *, expected: str, name: str | None = None, message: str = "",
        retry: bool = True,
    ) -> FlowRunInfo:
        from runs.services import set_state

        run = self._flow_run(run_id)
        set_state(run, state_type, expected=expected, name=name, message=message, retry=retry)
        return _flow_run_info(run)

    def set_flow_run_retries(self, run_id: str, *, retries: int, retry_delay_seconds: float) -> None:
        from runs.services import set_flow_run_retries

        set_flow_run_retries(self._flow_run(run_id), retries=retries, retry_delay_seconds=retry_delay_seconds)

    def heartbeat_flow_run(self, run_id: str) -> bool:
        from runs.services import record_run_heartbeat

        return record_run_heartbeat(run_id)

    @staticmethod
    def _flow_run(run_id: str) -> Any:
        from django.core.exceptions import ValidationError as NotAUUID

        from runs.models import FlowRun

        try:
            return FlowRun.objects.select_related("flow", "deployment__flow").get(pk=run_id)
        except (FlowRun.DoesNotExist, NotAUUID, ValueError):
            raise NotFound(f"No flow run with id {run_id!r}.") from None

    # --- task runs ---
    def create_task_run(
        self, flow_run_id: str, *, name: str, task_key: str, dynamic_key: str, tags: list[str]
    ) -> TaskRunInfo:
        from runs.services import create_task_run

        task_run = create_task_run(flow_run_id, name=name, task_key=task_key, dynamic_key=dynamic_key, tags=tags)
        return _task_run_info(task_run)

    def set_task_run_state(
        self, task_run_id: str, state_type: str, *, expected: str, name: str | None = None, message: str = "",
        result: Any = None, store_result: bool = False, cache_key: str = "", cache_expires_at: datetime | None = None,
    ) -> TaskRunInfo:
        from runs.models import TaskRun
        from runs.services import set_task_run_state

        try:
            task_run = TaskRun.objects.get(pk=task_run_id)
        except TaskRun.DoesNotExist:
            raise NotFound(f"No task run with id {task_run_id!r}.") from None
        extra: dict[str, Any] = {"result": result} if store_result else {}
        set_task_run_state(
            task_run, state_type, expected=expected, name=name, message=message, cache_key=cache_key,
            cache_expires_at=cache_expires_at, **extra,
        )
        return _task_run_info(task_run)

    def read_cached_result(self, cache_key: str) -> CachedResult | None:
        from runs.services import find_cached_task_run

        task_run = find_cached_task_run(cache_key)
        if task_run is None:
            return None
        return CachedResult(task_run_id=str(task_run.pk), task_run_name=task_run.name, value=task_run.result)

    # --- logs ---
    def send_logs(self, entries: list[LogEntry]) -> None:
        from runs.services import write_logs

        write_logs([entry.__dict__ for entry in entries])

    def release_thread(self) -> None:
        from django.db import connection

        connection.close()


def _flow_run_info(run: Any) -> FlowRunInfo:
    deployment = None
    if run.deployment_id is not None:
        dep = run.deployment
        deployment = DeploymentInfo(
            id=str(dep.pk), full_name=dep.full_name, entrypoint=dep.entrypoint, path=dep.path,
            pull_steps=list(dep.pull_steps or []),
        )
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
        deployment=deployment,
    )


def _task_run_info(task_run: Any) -> TaskRunInfo:
    return TaskRunInfo(
        id=str(task_run.pk), name=task_run.name, state_type=str(task_run.state_type),
        state_name=task_run.state_name, run_count=task_run.run_count,
    )
