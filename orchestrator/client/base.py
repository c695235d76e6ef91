"""What the engine and the flow SDK need from the orchestrator, as one small interface.

Two transports implement it: `direct` (calls the services in this process, same database) and,
with the API, HTTP (the same methods over the REST API, for workers on other machines). Both
carry plain data only (the dataclasses below, dicts, JSON values), and both raise the same
runs.errors exceptions: NotFound, StateConflict/InvalidTransition, ValidationError. Business rules
stay in the services; a transport only carries calls to them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


@dataclass(frozen=True)
class LogEntry:
    flow_run_id: str
    task_run_id: str | None
    level: int
    logger: str
    message: str
    timestamp: datetime


class OrchestratorClient(ABC):
    """The calls a flow-run process makes. Methods may be called from several threads at once
    (task runner threads, the log shipper, the heartbeat); a transport keeps per-thread
    resources and `release_thread` frees the calling thread's."""

    name = "client"

    # --- flow runs ---
    @abstractmethod
    def read_flow_run(self, run_id: str) -> FlowRunInfo:
        """The run and its deployment (NotFound)."""

    @abstractmethod
    def create_adhoc_flow_run(self, flow_name: str, *, description: str, parameters: dict[str, Any]) -> FlowRunInfo:
        """A SCHEDULED run of the flow `flow_name` (created on first use), outside any deployment."""

    @abstractmethod
    def set_flow_run_state(
        self, run_id: str, state_type: str, *, expected: str, name: str | None = None, message: str = "",
        retry: bool = True,
    ) -> FlowRunInfo:
        """runs.services.set_state: compare-and-swap from `expected` (StateConflict, InvalidTransition).
        A failure with retries left comes back SCHEDULED/AwaitingRetry unless retry=False."""

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
        self, task_run_id: str, state_type: str, *, expected: str, name: str | None = None, message: str = "",
        result: Any = None, store_result: bool = False, cache_key: str = "", cache_expires_at: datetime | None = None,
    ) -> TaskRunInfo:
        """runs.services.set_task_run_state; `result` (JSON) is stored when store_result, and
        with a `cache_key` later calls may reuse it (until `cache_expires_at`)."""

    @abstractmethod
    def read_cached_result(self, cache_key: str) -> CachedResult | None:
        """The result of the latest completed task run stored under `cache_key`, while fresh."""

    # --- logs ---
    @abstractmethod
    def send_logs(self, entries: list[LogEntry]) -> None:
        """Store a batch of log lines: one call, however many lines."""

    def release_thread(self) -> None:
        """Free what the calling thread holds (a database connection); call it when a thread
        that used the client ends."""
