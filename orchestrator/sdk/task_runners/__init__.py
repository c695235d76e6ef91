"""Task runners: where a flow's submitted and mapped tasks run, chosen per flow with
`@flow(task_runner=...)`. Users import them from `orchestrator.task_runners`."""

from __future__ import annotations

from orchestrator.sdk.runner import TaskRunFuture, TaskRunner, ThreadTaskRunner
from orchestrator.sdk.task_runners.dask_runner import DaskTaskRunner
from orchestrator.sdk.task_runners.ray_runner import RayTaskRunner
from orchestrator.sdk.task_runners.remote import TaskRunCancelled, TaskRunCrashed

__all__ = [
    "DaskTaskRunner",
    "RayTaskRunner",
    "TaskRunCancelled",
    "TaskRunCrashed",
    "TaskRunFuture",
    "TaskRunner",
    "ThreadTaskRunner",
]
