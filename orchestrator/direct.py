"""The direct transport: the client interface answered by the services, in this process,
against the orchestrator's own database. The default on the orchestrator's host.

This is the server side of the client interface, so it lives with the Django project, not in
`orchestrator.client`: `get_client()` loads it by name, after configuring Django, only where the
environment names no HTTP API (a flow process on a remote worker never imports it)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as NotAUUID
from django.db import close_old_connections, connection
from django.utils import timezone

from blocks.services import get_variable, read_secret_value
from deployments.services import get_or_create_flow
from deployments.services.deploying import deploy_definitions
from deployments.services.subflows import create_subflow_run
from deployments.specs import flow_deployment
from orchestrator.client.base import (
    CachedResult,
    ClaimedRun,
    FlowRunInfo,
    HeldRun,
    LogEntry,
    OrchestratorClient,
    RunInputInfo,
    TaskRunInfo,
    WorkerInfo,
)
from orchestrator.core.errors import NotFound, OrchestratorError
from orchestrator.db_retry import NOT_APPLIED, call_with_retry
from runs.models import Artifact, FlowRun, TaskRun
from runs.records import flow_run_info, run_input_info, task_run_info
from runs.services import (
    applied_flow_run_state,
    applied_task_run_state,
    create_adhoc_flow_run,
    create_artifact,
    create_task_run,
    created_task_run,
    find_cached_task_run,
    pause_flow_run,
    read_flow_run_input,
    record_flow_run_result,
    record_run_heartbeat,
    record_run_process,
    set_flow_run_retries,
    set_state,
    set_task_run_state,
    stored_log_batch,
    update_artifact,
    write_logs,
)
from workpools import services
from workpools.models import Worker
from workpools.records import claimed_run, held_run, worker_info
from workpools.services import RunWaiter, mark_worker_stopped, record_worker_heartbeat, runs_to_start


def _info_or_not_applied(task_run: Any) -> Any:
    return NOT_APPLIED if task_run is None else task_run_info(task_run)


class DirectClient(OrchestratorClient):
    """Every call survives a lost database connection (a PostgreSQL restart): it reconnects
    and tries again until settings.DIRECT_RETRY_SECONDS, and a write that may have been stored
    before the connection died is looked for first, so it never happens twice
    (orchestrator.db_retry, runs.services.replays)."""

    name = "direct"

    def __init__(self) -> None:
        call_with_retry(self._check_database, what="checking the database")
        self._workers: dict[str, Any] = {}
        self._waiters: dict[str, RunWaiter] = {}

    @staticmethod
    def _check_database() -> None:
        if "runs_flowrun" not in connection.introspection.table_names():
            raise OrchestratorError(
                "The orchestrator's database has no tables yet: run `manage.py migrate` (or `make up`) first."
            )

    def environment(self) -> dict[str, str]:
        # The child must reach the same database as this process, whatever its cwd.
        return {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "orchestrator.settings"),
            "ORCHESTRATOR_HOME": str(settings.ORCHESTRATOR_HOME),
        }

    def idle(self) -> None:
        close_old_connections()

    # --- workers ---
    def register_worker(
        self,
        pool: str,
        *,
        name: str,
        limit: int | None = None,
        queues: list[str] | None = None,
        create_pool: bool = True,
        hostname: str = "",
        pid: int | None = None,
    ) -> WorkerInfo:
        if queues:
            try:
                known = services.get_work_pool(pool)
            except NotFound:
                known = None  # register_worker creates it (or says it is missing)
            if known is not None:
                services.get_work_queues(known, queues)  # NotFound before the worker shows ONLINE
        worker, created = services.register_worker(
            pool, name=name, limit=limit, create_pool=create_pool, hostname=hostname or None, pid=pid
        )
        try:
            queue_ids = [q.pk for q in services.get_work_queues(worker.pool, queues)] if queues else None
        except NotFound:
            mark_worker_stopped(worker)  # a pool created just now has only its default queue
            raise
        self._workers[str(worker.pk)] = worker
        return worker_info(worker, queue_ids=queue_ids, pool_created=created)

    def heartbeat_worker(self, worker: WorkerInfo) -> None:
        call_with_retry(lambda: record_worker_heartbeat(self._worker(worker)), what="a worker heartbeat")

    def mark_worker_stopped(self, worker: WorkerInfo) -> None:
        waiter = self._waiters.pop(worker.id, None)
        if waiter is not None:
            waiter.close()
        call_with_retry(lambda: mark_worker_stopped(self._worker(worker)), what="marking the worker stopped")

    def claim_runs(
        self,
        worker: WorkerInfo,
        *,
        prefetch_seconds: float = 0.0,
        wait_seconds: float = 0.0,
        max_runs: int | None = None,
    ) -> list[ClaimedRun]:
        # A claim lost with its connection is handed out again by the next one (unstarted runs).
        def claim() -> list[ClaimedRun]:
            waiter = self._waiter(worker)
            waiter.listen()  # before looking: a run created during this claim still wakes the worker
            waiter.claimed(timezone.now() + timedelta(seconds=max(0.0, prefetch_seconds)))
            runs = runs_to_start(
                self._worker(worker),
                queue_ids=worker.queue_ids,
                prefetch_seconds=prefetch_seconds,
                wait_seconds=wait_seconds,
                max_runs=max_runs,
            )
            return [claimed_run(run) for run in runs]

        return call_with_retry(claim, what="a claim")

    def wait_for_runs(self, worker: WorkerInfo, *, timeout: float, prefetch_seconds: float = 0.0) -> bool:
        return self._waiter(worker).wait(timeout, prefetch_seconds=prefetch_seconds)

    @property
    def wakeups(self) -> str:
        return "postgres" if connection.vendor == "postgresql" else "local" if connection.vendor == "sqlite" else ""

    def _waiter(self, worker: WorkerInfo) -> RunWaiter:
        if worker.id not in self._waiters:
            self._waiters[worker.id] = RunWaiter(self._worker(worker), queue_ids=worker.queue_ids)
        return self._waiters[worker.id]

    def read_held_runs(self, worker: WorkerInfo, *, states: list[str]) -> list[HeldRun]:
        def read() -> list[HeldRun]:
            held = FlowRun.objects.held_by(self._worker(worker)).filter(state_type__in=states).order_by("state_at")
            return [held_run(run) for run in held]

        return call_with_retry(read, what="reading the worker's runs")

    def record_run_process(self, run_id: str, *, pid: int, hostname: str) -> None:
        call_with_retry(
            lambda: record_run_process(self._flow_run(run_id), pid=pid, hostname=hostname), what="recording a process"
        )

    def issue_run_token(self, run_id: str) -> str:
        from accounts.services import issue_run_token

        return issue_run_token(self._flow_run(run_id))[1]

    def _worker(self, info: WorkerInfo) -> Any:
        if info.id not in self._workers:
            try:
                self._workers[info.id] = Worker.objects.select_related("pool").get(pk=info.id)
            except Worker.DoesNotExist:
                raise NotFound(f"No worker {info.name!r} in work pool {info.pool_name!r}.") from None
        return self._workers[info.id]

    # --- flow runs ---
    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        return call_with_retry(lambda: flow_run_info(self._flow_run(run_id)), what="reading a flow run")

    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        def create() -> FlowRunInfo:
            flow = get_or_create_flow(flow_name, description=description)
            run = create_adhoc_flow_run(flow, parameters=parameters)
            run.flow = flow
            return flow_run_info(run)

        return call_with_retry(create, what="creating a flow run")

    def set_flow_run_state(
        self,
        run_id: str,
        state_type: str,
        *,
        expected: str,
        name: str | None = None,
        message: str = "",
        retry: bool = True,
    ) -> FlowRunInfo:
        since = timezone.now()

        def move() -> FlowRunInfo:
            run = self._flow_run(run_id)
            set_state(run, state_type, expected=expected, name=name, message=message, retry=retry)
            return flow_run_info(run)

        def applied() -> Any:
            # The move may have been committed with only its answer lost: then it is done.
            run = applied_flow_run_state(run_id, state_type, name=name, message=message, since=since)
            return NOT_APPLIED if run is None else flow_run_info(run)

        return call_with_retry(move, what=f"moving flow run {run_id} to {state_type}", applied=applied)

    def create_subflow_run(
        self,
        parent_run_id: str,
        flow_name: str,
        *,
        description: str,
        parameters: dict[str, Any],
        task_key: str,
        dynamic_key: str,
    ) -> FlowRunInfo:
        run = create_subflow_run(
            self._flow_run(parent_run_id),
            flow_name,
            description=description,
            parameters=parameters,
            task_key=task_key,
            dynamic_key=dynamic_key,
        )
        return flow_run_info(run)

    def record_flow_run_result(self, run_id: str, *, result_uri: str) -> None:
        record_flow_run_result(self._flow_run(run_id), result_uri=result_uri)

    def pause_flow_run(
        self,
        run_id: str,
        *,
        key: str,
        schema: dict[str, Any] | None,
        timeout_seconds: float,
        suspend: bool,
        description: str = "",
    ) -> RunInputInfo:
        run = self._flow_run(run_id)
        request = pause_flow_run(
            run, key=key, schema=schema, timeout_seconds=timeout_seconds, suspend=suspend, description=description
        )
        return run_input_info(request, run)

    def read_flow_run_input(self, run_id: str, *, key: str) -> RunInputInfo:
        run = self._flow_run(run_id)
        return run_input_info(read_flow_run_input(run, key), run)

    def set_flow_run_retries(self, run_id: str, *, retries: int, retry_delay_seconds: float) -> None:
        call_with_retry(
            lambda: set_flow_run_retries(
                self._flow_run(run_id), retries=retries, retry_delay_seconds=retry_delay_seconds
            ),
            what="setting retries",
        )

    def heartbeat_flow_run(self, run_id: str) -> bool:
        return call_with_retry(lambda: record_run_heartbeat(run_id), what="a flow run heartbeat")

    @staticmethod
    def _flow_run(run_id: str) -> Any:
        try:
            return FlowRun.objects.select_related("flow", "deployment__flow").get(pk=run_id)
        except (FlowRun.DoesNotExist, NotAUUID, ValueError):
            raise NotFound(f"No flow run with id {run_id!r}.") from None

    # --- task runs ---
    def create_task_run(
        self, flow_run_id: str, *, name: str, task_key: str, dynamic_key: str, tags: list[str]
    ) -> TaskRunInfo:
        since = timezone.now()
        return call_with_retry(
            lambda: task_run_info(
                create_task_run(flow_run_id, name=name, task_key=task_key, dynamic_key=dynamic_key, tags=tags)
            ),
            what="creating a task run",
            applied=lambda: _info_or_not_applied(
                created_task_run(flow_run_id, task_key=task_key, dynamic_key=dynamic_key, since=since)
            ),
        )

    def set_task_run_state(
        self,
        task_run_id: str,
        state_type: str,
        *,
        expected: str,
        name: str | None = None,
        message: str = "",
        result: Any = None,
        store_result: bool = False,
        cache_key: str = "",
        cache_expires_at: datetime | None = None,
        result_uri: str = "",
    ) -> TaskRunInfo:
        since = timezone.now()

        def move() -> TaskRunInfo:
            task_run = self._task_run(task_run_id)
            extra: dict[str, Any] = {"result": result} if store_result else {}
            set_task_run_state(
                task_run,
                state_type,
                expected=expected,
                name=name,
                message=message,
                cache_key=cache_key,
                cache_expires_at=cache_expires_at,
                result_uri=result_uri,
                **extra,
            )
            return task_run_info(task_run)

        return call_with_retry(
            move,
            what=f"moving task run {task_run_id} to {state_type}",
            applied=lambda: _info_or_not_applied(
                applied_task_run_state(task_run_id, state_type, message=message, since=since)
            ),
        )

    def read_task_run(self, task_run_id: str) -> TaskRunInfo:
        return task_run_info(self._task_run(task_run_id))

    @staticmethod
    def _task_run(task_run_id: str) -> Any:
        try:
            return TaskRun.objects.get(pk=task_run_id)
        except (TaskRun.DoesNotExist, NotAUUID, ValueError):
            raise NotFound(f"No task run with id {task_run_id!r}.") from None

    def read_cached_result(self, cache_key: str) -> CachedResult | None:
        task_run = call_with_retry(lambda: find_cached_task_run(cache_key), what="reading a cached result")
        if task_run is None:
            return None
        return CachedResult(
            task_run_id=str(task_run.pk),
            task_run_name=task_run.name,
            value=task_run.result,
            result_uri=task_run.result_uri,
        )

    # --- artifacts ---
    def create_artifact(
        self,
        flow_run_id: str,
        *,
        type: str,
        data: Any,
        key: str = "",
        description: str = "",
        task_run_id: str | None = None,
    ) -> str:
        run = self._flow_run(flow_run_id)
        artifact = create_artifact(run, type=type, data=data, key=key, description=description, task_run_id=task_run_id)
        return str(artifact.pk)

    def update_artifact(self, artifact_id: str, *, data: Any) -> None:
        try:
            artifact = Artifact.objects.get(pk=artifact_id)
        except (Artifact.DoesNotExist, NotAUUID, ValueError):
            raise NotFound(f"No artifact with id {artifact_id!r}.") from None
        update_artifact(artifact, data=data)

    # --- variables and secrets ---
    def read_variable(self, name: str) -> tuple[bool, Any]:
        try:
            return True, get_variable(name).value
        except NotFound:
            return False, None

    def read_secret(self, name: str) -> str:
        return read_secret_value(name)

    # --- logs ---
    def send_logs(self, entries: list[LogEntry]) -> None:
        records = [entry.__dict__ for entry in entries]
        call_with_retry(
            lambda: write_logs(records),
            what=f"storing {len(records)} log line(s)",
            applied=lambda: len(records) if stored_log_batch(records) else NOT_APPLIED,
        )

    # --- deployments ---
    def flow_deployment(self, flow: Any, name: str, **options: Any) -> Any:
        return flow_deployment(flow, name, **options)

    def deploy_flow(self, flow: Any, name: str, *, project_dir: str, **options: Any) -> Any:
        (result,) = deploy_definitions([flow_deployment(flow, name, **options)], project_dir=Path(project_dir))
        return result.deployment

    def release_thread(self) -> None:
        connection.close()
