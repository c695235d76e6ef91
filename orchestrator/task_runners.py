"""Task runners for `@flow(task_runner=...)`:

    from orchestrator.task_runners import DaskTaskRunner, RayTaskRunner, ThreadTaskRunner

ThreadTaskRunner (the default) runs submitted tasks on threads of the flow process;
DaskTaskRunner and RayTaskRunner run them on a cluster (extras `[dask]`, `[ray]`). See
docs/task-runners.md.
"""

from orchestrator.sdk.task_runners import (
    DaskTaskRunner,
    RayTaskRunner,
    TaskRunCancelled,
    TaskRunCrashed,
    TaskRunFuture,
    TaskRunner,
    ThreadTaskRunner,
)

__all__ = [
    "DaskTaskRunner",
    "RayTaskRunner",
    "TaskRunCancelled",
    "TaskRunCrashed",
    "TaskRunFuture",
    "TaskRunner",
    "ThreadTaskRunner",
]
