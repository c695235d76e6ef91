"""What workers, the engine and the flow SDK need from the orchestrator, as one small interface.

Two transports implement it: `direct` (calls the services in this process, same database) and
`http` (the same methods over the REST API with a worker's API key, for workers on machines
that hold no database credentials). Both carry plain data only (the dataclasses below, dicts,
JSON values), and both raise the same orchestrator.core.errors exceptions: NotFound,
StateConflict/InvalidTransition, ValidationError; the HTTP transport adds Unreachable (the
orchestrator did not answer) and Refused (the key was not accepted). Business rules stay in the
services; a transport only carries calls to them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.core.errors import OrchestratorError


class Unreachable(OrchestratorError):
    """The orchestrator did not answer (network error, timeout, 5xx) even after retries."""


class Refused(OrchestratorError):
    """The orchestrator refused the credentials: a missing, wrong or revoked API key (401), or
    a key that may not do this (403)."""


@dataclass(frozen=True)
class DeploymentInfo:
    id: str
    full_name: str  # flow/deployment
    entrypoint: str  # path/to/file.py:function
    path: str  # the directory the entrypoint is relative to ("" = the current one)
    pull_steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FlowRunInfo:
    id: str
    name: str
    flow_name: str
    state_type: str
    state_name: str
    state_message: str
    parameters: dict[str, Any]
    run_count: int
    retries: int
    retry_delay_seconds: int
    next_scheduled_start_at: datetime | None
    worker_id: str | None  # who holds the run; None for scripts and `deployment execute`
    deployment: DeploymentInfo | None
    parent_flow_run_id: str | None = None  # a subflow: the run that called it
    parent_task_run_id: str | None = None  # ... and the task run standing for the call there
    result_uri: str = ""  # where its persisted result is (result storage), once it has one


@dataclass(frozen=True)
class TaskRunInfo:
    id: str
    name: str
    state_type: str
    state_name: str
    run_count: int


@dataclass(frozen=True)
class CachedResult:
    task_run_id: str
    task_run_name: str
    value: Any
    result_uri: str = ""  # a persisted result: read it from result storage (value is then None)


@dataclass(frozen=True)
class RunInputInfo:
    """A pause of a run: whether its input was given (and what), and where the run stands."""

    key: str
    provided: bool
    value: Any
    state_type: str
    state_name: str


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker, as its loop needs it."""

    id: str
    name: str
    pool_name: str
    pool_type: str
    limit: int | None
    queue_ids: list[str] | None  # the queues it polls; None: all of the pool's
    heartbeat_seconds: float  # how often the orchestrator wants the worker's heartbeat
    run_heartbeat_seconds: float  # ... and its flow-run processes' heartbeats
    pool_created: bool = False  # registering created the pool


@dataclass(frozen=True)
class ClaimedRun:
    """What a worker needs to start a run it claimed."""

    id: str
    name: str
    deployment: DeploymentInfo | None
    job_variables: dict[str, Any]  # template defaults < pool < deployment < run, `env` merged key by key
    # The pool's base job template rendered with job_variables: what the infrastructure reads.
    job_configuration: dict[str, Any] = field(default_factory=dict)
    configuration_error: str = ""  # why it could not be rendered (the worker fails the run with it)


@dataclass(frozen=True)
class HeldRun:
    """A run a worker holds (claimed and not finished), and where its process lives."""

    id: str
    name: str
    state_type: str
    state_name: str
    pid: int | None
    hostname: str


@dataclass(frozen=True)
class LogEntry:
    flow_run_id: str
    task_run_id: str | None
    level: int
    logger: str
    message: str
    timestamp: datetime


class OrchestratorClient(ABC):
    """The calls a worker and a flow-run process make. Methods may be called from several
    threads at once (task runner threads, the log shipper, the heartbeat); a transport keeps
    per-thread resources and `release_thread` frees the calling thread's."""

    name = "client"

    def environment(self) -> dict[str, str]:
        """Environment variables a flow-run process started by a worker needs to reach the
        orchestrator the way this client does (get_client() reads them there)."""
        return {}

    def idle(self) -> None:
        """The caller is about to wait between steps (the worker loop): let go of what should
        not be held meanwhile."""

    # --- workers ---
    @abstractmethod
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
        """workpools.services.register_worker (NotFound for an unknown pool or queue,
        ValidationError for a bad limit). `queues` are names (or ids) of the pool's queues."""

    @abstractmethod
    def heartbeat_worker(self, worker: WorkerInfo) -> None:
        """The worker is alive."""

    @abstractmethod
    def mark_worker_stopped(self, worker: WorkerInfo) -> None:
        """The worker stopped on purpose: it shows OFFLINE at once."""

    @abstractmethod
    def claim_runs(
        self,
        worker: WorkerInfo,
        *,
        prefetch_seconds: float = 0.0,
        wait_seconds: float = 0.0,
        max_runs: int | None = None,
    ) -> list[ClaimedRun]:
        """The runs the worker should start now: ones it claimed earlier whose process it never
        recorded (an answer lost on the way), then newly claimed ones, at most `max_runs` in all.
        With `wait_seconds`, waits up to that long (bounded by the orchestrator) for a run to
        become due."""

    def wait_for_runs(self, worker: WorkerInfo, *, timeout: float, prefetch_seconds: float = 0.0) -> bool:
        """An idle worker waits here between claims: up to `timeout` seconds, less when a
        wake-up says a run became claimable in its pool or the next scheduled run comes due.
        True: claim now. Without wake-ups (the default) it just sleeps."""
        time.sleep(max(0.0, timeout))
        return False

    @property
    def wakeups(self) -> str:
        """How wait_for_runs learns of new work: "postgres", "local", or "" (it does not)."""
        return ""

    @abstractmethod
    def read_held_runs(self, worker: WorkerInfo, *, states: list[str]) -> list[HeldRun]:
        """The worker's runs in these states (CANCELLING ones to stop, all unfinished ones when
        it restarts)."""

    @abstractmethod
    def record_run_process(self, run_id: str, *, pid: int, hostname: str) -> None:
        """Where the run's process lives, so a restarted worker can find it again."""

    @abstractmethod
    def issue_run_token(self, run_id: str) -> str:
        """A short-lived API token that acts on this run only (its states, logs, task runs,
        heartbeats), for the run's job instead of the worker's own credentials; it stops working
        once the run is final (accounts.services.issue_run_token)."""

    # --- flow runs ---
    @abstractmethod
    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        """The run and its deployment (NotFound)."""

    @abstractmethod
    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        """A SCHEDULED run of the flow `flow_name` (created on first use), outside any deployment."""

    @abstractmethod
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
        """runs.services.set_state: compare-and-swap from `expected` (StateConflict, InvalidTransition).
        A failure with retries left comes back SCHEDULED/AwaitingRetry unless retry=False."""

    @abstractmethod
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
        """A SCHEDULED child run of the RUNNING run `parent_run_id` for flow `flow_name`, with a
        PENDING task run in the parent standing for the call (`parent_task_run_id`)."""

    @abstractmethod
    def record_flow_run_result(self, run_id: str, *, result_uri: str) -> None:
        """Where the run's persisted result is (result storage)."""

    @abstractmethod
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
        """runs.services.pause_flow_run: PAUSED (Paused, or Suspended) waiting for input under
        `key`; when that input was given already (a suspended flow starting over), no pause."""

    @abstractmethod
    def read_flow_run_input(self, run_id: str, *, key: str) -> RunInputInfo:
        """The pause `key` of the run (NotFound), and the run's state."""

    @abstractmethod
    def set_flow_run_retries(self, run_id: str, *, retries: int, retry_delay_seconds: float) -> None:
        """How often a failed run is tried again, and after how long."""

    @abstractmethod
    def heartbeat_flow_run(self, run_id: str) -> bool:
        """The process is alive. False: the run is no longer PENDING/RUNNING, stop it."""

    # --- task runs ---
    @abstractmethod
    def create_task_run(
        self, flow_run_id: str, *, name: str, task_key: str, dynamic_key: str, tags: list[str]
    ) -> TaskRunInfo:
        """A PENDING task run of the flow run."""

    @abstractmethod
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
        """runs.services.set_task_run_state; `result` (JSON) is stored when store_result, and
        with a `cache_key` later calls may reuse it (until `cache_expires_at`); `result_uri`:
        where the persisted result is (a cache hit reads it from there)."""

    @abstractmethod
    def read_task_run(self, task_run_id: str) -> TaskRunInfo:
        """The task run as it stands (NotFound)."""

    @abstractmethod
    def read_cached_result(self, cache_key: str) -> CachedResult | None:
        """The result of the latest completed task run stored under `cache_key`, while fresh."""

    # --- artifacts ---
    @abstractmethod
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
        """Publish an artifact of the run (ValidationError for data that does not fit its type);
        returns its id."""

    @abstractmethod
    def update_artifact(self, artifact_id: str, *, data: Any) -> None:
        """New data for a progress artifact."""

    # --- variables and secrets ---
    @abstractmethod
    def read_variable(self, name: str) -> tuple[bool, Any]:
        """(True, value) of the variable `name`, or (False, None) when there is none."""

    @abstractmethod
    def read_secret(self, name: str) -> str:
        """The clear value of the secret `name` (NotFound; Refused for a credential that may
        not read secrets)."""

    # --- logs ---
    @abstractmethod
    def send_logs(self, entries: list[LogEntry]) -> None:
        """Store a batch of log lines: one call, however many lines."""

    # --- deployments (a server action: only the direct transport can do it) ---
    def flow_deployment(self, flow: Any, name: str, **options: Any) -> Any:
        """The definition of a deployment of `flow` (what `flow.to_deployment()` returns)."""
        raise OrchestratorError(
            "Deploying from Python needs the orchestrator's database: run it where `manage.py deploy` runs."
        )

    def deploy_flow(self, flow: Any, name: str, *, project_dir: str, **options: Any) -> Any:
        """Create or update a deployment of `flow` and return it (what `flow.deploy()` does)."""
        raise OrchestratorError(
            "Deploying from Python needs the orchestrator's database: run it where `manage.py deploy` runs."
        )

    def release_thread(self) -> None:
        """Free what the calling thread holds (a database connection); call it when a thread
        that used the client ends."""
