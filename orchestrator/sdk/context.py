"""What the code of a flow or task can ask about the run it is part of."""

from __future__ import annotations

import threading
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.client.base import FlowRunInfo, OrchestratorClient, TaskRunInfo
from orchestrator.sdk.logs import RunLogger

if TYPE_CHECKING:
    from orchestrator.sdk.flows import Flow
    from orchestrator.sdk.interrupts import Scope
    from orchestrator.sdk.runner import TaskRunFuture, TaskRunner
    from orchestrator.sdk.tasks import Task


class MissingContextError(RuntimeError):
    """Something that needs a flow or task run was used outside one."""


@dataclass
class FlowRunContext:
    flow: Flow
    run: FlowRunInfo
    client: OrchestratorClient
    logger: RunLogger
    runner: TaskRunner
    log_prints: bool
    futures: list[TaskRunFuture] = field(default_factory=list)
    task_scopes: set[Scope] = field(default_factory=set)  # tasks running now, to stop with the flow
    _calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> int:
        """0, 1, 2, ... for successive calls of one task in this run (names its task runs)."""
        with self._lock:
            key = self._calls[task_key]
            self._calls[task_key] += 1
            return key


@dataclass
class TaskRunContext:
    task: Task[..., Any]
    task_run: TaskRunInfo
    flow_run: FlowRunInfo
    parameters: dict[str, Any]
    logger: RunLogger
    client: OrchestratorClient | None = None  # how this task run reaches the orchestrator


flow_run_context: ContextVar[FlowRunContext | None] = ContextVar("flow_run_context", default=None)
task_run_context: ContextVar[TaskRunContext | None] = ContextVar("task_run_context", default=None)


def get_run_logger() -> RunLogger:
    """The logger of the task run or flow run this code runs in. Its records go to the console
    and to the run's logs. Raises MissingContextError outside a flow or task run."""
    task_ctx = task_run_context.get()
    if task_ctx is not None:
        return task_ctx.logger
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return flow_ctx.logger
    raise MissingContextError("get_run_logger() works only inside a flow or task run.")


def current_client() -> OrchestratorClient:
    """The client of the task run or flow run this code runs in (a cluster worker's task run has
    its own), else one from the environment."""
    task_ctx = task_run_context.get()
    if task_ctx is not None and task_ctx.client is not None:
        return task_ctx.client
    flow_ctx = flow_run_context.get()
    if flow_ctx is not None:
        return flow_ctx.client
    from orchestrator.client import get_client

    return get_client()
