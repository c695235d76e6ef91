"""The direct transport: the client interface answered by the services, in this process,
against the orchestrator's own database. The default on the orchestrator's host."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from orchestrator.client.base import (
    CachedResult,
    ClaimedRun,
    FlowRunInfo,
    HeldRun,
    LogEntry,
    OrchestratorClient,
    TaskRunInfo,
    WorkerInfo,
)
from orchestrator.client.records import claimed_run, flow_run_info, held_run, task_run_info, worker_info
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
        self._workers: dict[str, Any] = {}

    @staticmethod
    def _check_database() -> None:
        from django.db import connection

        if "runs_flowrun" not in connection.introspection.table_names():
            raise OrchestratorError(
                "The orchestrator's database has no tables yet: run `manage.py migrate` (or `make up`) first."
            )

    def environment(self) -> dict[str, str]:
        from django.conf import settings

        # The child must reach the same database as this process, whatever its cwd.
        return {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "orchestrator.settings"),
            "ORCHESTRATOR_HOME": str(settings.ORCHESTRATOR_HOME),
        }

    def idle(self) -> None:
        from django.db import close_old_connections

        close_old_connections()

    # --- workers ---
    def register_worker(
        self, pool: str, *, name: str, limit: int | None = None, queues: list[str] | None = None,
        create_pool: bool = True, hostname: str = "", pid: int | None = None,
    ) -> WorkerInfo:
        from workpools import services

        worker, created = services.register_worker(
            pool, name=name, limit=limit, create_pool=create_pool, hostname=hostname or None, pid=pid
        )
        queue_ids = [q.pk for q in services.get_work_queues(worker.pool, queues)] if queues else None
        self._workers[str(worker.pk)] = worker
        return worker_info(worker, queue_ids=queue_ids, pool_created=created)

    def heartbeat_worker(self, worker: WorkerInfo) -> None:
        from workpools.services import record_worker_heartbeat

        record_worker_heartbeat(self._worker(worker))

    def mark_worker_stopped(self, worker: WorkerInfo) -> None:
        from workpools.services import mark_worker_stopped

        mark_worker_stopped(self._worker(worker))

    def claim_runs(
        self, worker: WorkerInfo, *, prefetch_seconds: float = 0.0, wait_seconds: float = 0.0
    ) -> list[ClaimedRun]:
        from workpools.services import runs_to_start

        runs = runs_to_start(
            self._worker(worker), queue_ids=worker.queue_ids, prefetch_seconds=prefetch_seconds,
            wait_seconds=wait_seconds,
        )
        return [claimed_run(run) for run in runs]

    def read_held_runs(self, worker: WorkerInfo, *, states: list[str]) -> list[HeldRun]:
        from runs.models import FlowRun

        held = FlowRun.objects.held_by(self._worker(worker)).filter(state_type__in=states).order_by("state_at")
        return [held_run(run) for run in held]

    def record_run_process(self, run_id: str, *, pid: int, hostname: str) -> None:
        from runs.services import record_run_process

        record_run_process(self._flow_run(run_id), pid=pid, hostname=hostname)

    def issue_run_token(self, run_id: str) -> str:
        from accounts.services import issue_run_token

        return issue_run_token(self._flow_run(run_id))[1]

    def _worker(self, info: WorkerInfo) -> Any:
        from workpools.models import Worker

        if info.id not in self._workers:
            try:
                self._workers[info.id] = Worker.objects.select_related("pool").get(pk=info.id)
            except Worker.DoesNotExist:
                raise NotFound(f"No worker {info.name!r} in work pool {info.pool_name!r}.") from None
        return self._workers[info.id]

    # --- flow runs ---
    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        return flow_run_info(self._flow_run(run_id))

    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        from deployments.services import get_or_create_flow
        from runs.services import create_adhoc_flow_run

        flow = get_or_create_flow(flow_name, description=description)
        run = create_adhoc_flow_run(flow, parameters=parameters)
        run.flow = flow
        return flow_run_info(run)

    def set_flow_run_state(
        self, run_id: str, state_type: str, *, expected: str, name: str | None = None, message: str = "",
        retry: bool = True,
    ) -> FlowRunInfo:
        from runs.services import set_state

        run = self._flow_run(run_id)
        set_state(run, state_type, expected=expected, name=name, message=message, retry=retry)
        return flow_run_info(run)

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
        return task_run_info(task_run)

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
        return task_run_info(task_run)

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
