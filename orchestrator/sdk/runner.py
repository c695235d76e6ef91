"""Task runners: where `task.submit()` and `task.map()` run task runs, and the futures they
return. `ThreadTaskRunner` (the default) runs them on a pool of threads in the flow process;
`orchestrator.sdk.task_runners` holds the cluster runners (Dask, Ray), which run them on a
cluster's workers. Whatever the runner, one task run goes through the same code
(`orchestrator.sdk.tasks.execute_task_run`): retries, timeouts and the cache mean the same."""

from __future__ import annotations

import contextvars
import copy
import functools
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import TYPE_CHECKING, Any

from orchestrator.client.base import OrchestratorClient, TaskRunInfo

if TYPE_CHECKING:
    from orchestrator.sdk.context import FlowRunContext
    from orchestrator.sdk.tasks import Task


class TaskRunFuture:
    """A task run that was submitted: `result()` waits for it and returns its value or raises
    its exception; `wait()` waits without raising; `state` is the task run's state as the
    orchestrator has it now. `cluster_ref` is the runner's own handle (a Dask future, a Ray
    ObjectRef) that a cluster runner passes to downstream tasks while this one is unfinished."""

    def __init__(
        self,
        future: Future[Any],
        task_run_name: str,
        *,
        client: OrchestratorClient | None = None,
        task_run_id: str | None = None,
        cluster_ref: Any = None,
    ) -> None:
        self._future = future
        self.task_run_name = task_run_name
        self.task_run_id = task_run_id  # known once the task run is recorded
        self.cluster_ref = cluster_ref
        self._client = client
        self.retrieved = False  # someone asked for the outcome, so a failure is theirs to handle

    def result(self, timeout: float | None = None) -> Any:
        self.retrieved = True
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.retrieved = True
        return self._future.exception(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task run finished (or `timeout` seconds). Returns whether it did."""
        wait_for([self._future], timeout)
        return self._future.done()

    def done(self) -> bool:
        return self._future.done()

    @property
    def state(self) -> TaskRunInfo:
        """The task run's current state (state_type, state_name, run_count), read from the
        orchestrator; Pending while it is not recorded yet."""
        if self.task_run_id is None or self._client is None:
            return TaskRunInfo(id="", name=self.task_run_name, state_type="PENDING", state_name="Pending", run_count=0)
        return self._client.read_task_run(self.task_run_id)

    def __repr__(self) -> str:
        return f"<TaskRunFuture {self.task_run_name!r} {'done' if self.done() else 'running'}>"


class TaskRunner(ABC):
    """Where a flow's submitted tasks run, chosen per flow: `@flow(task_runner=DaskTaskRunner())`.

    The object given to `@flow` holds options only; each flow run works on its own copy
    (`duplicate()`), started before the flow's code runs and shut down after it."""

    name = "TaskRunner"

    def duplicate(self) -> TaskRunner:
        """A copy with the same options, not started (one per flow run)."""
        return copy.copy(self)

    @abstractmethod
    def start(self, flow: FlowRunContext) -> None:
        """Get ready to run the task runs of flow run `flow` (start or reach a cluster).
        Raises with a readable message when it cannot."""

    @abstractmethod
    def submit(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        dynamic_key: int,
        wait_for: Sequence[TaskRunFuture] = (),
    ) -> TaskRunFuture:
        """Run one call of `task` as a task run, after the futures among its arguments and in
        `wait_for` finished."""

    @abstractmethod
    def shutdown(self, *, wait: bool) -> None:
        """The flow's code is over. `wait`: it ended cleanly and every task run is done; else
        stop the task runs still pending or running (cancel, timeout, crash)."""


class ThreadTaskRunner(TaskRunner):
    """Runs task runs on up to `max_workers` daemon threads of the flow process (default
    TASK_RUNNER_MAX_WORKERS), each in a copy of the submitter's context (so the code knows its
    flow run). Daemon threads, unlike a ThreadPoolExecutor's, never keep a finished script alive
    while a timed-out task still sleeps. `on_thread_exit` runs in each thread as it ends (to
    close its database connection; default: the flow run's client releases the thread)."""

    name = "ThreadTaskRunner"

    def __init__(self, max_workers: int | None = None, *, on_thread_exit: Callable[[], None] | None = None) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ValueError(
                f"ThreadTaskRunner: max_workers must be a whole number of at least 1, not {max_workers!r}."
            )
        self.max_workers = max_workers
        self.on_thread_exit = on_thread_exit
        self._context: FlowRunContext | None = None
        self._reset()

    def _reset(self) -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._waiting_items = 0
        self._idle_threads = 0

    def duplicate(self) -> ThreadTaskRunner:
        return ThreadTaskRunner(self.max_workers, on_thread_exit=self.on_thread_exit)

    def start(self, flow: FlowRunContext) -> None:
        if self.max_workers is None:
            from django.conf import settings

            self.max_workers = int(settings.TASK_RUNNER_MAX_WORKERS)
        if self.on_thread_exit is None:
            self.on_thread_exit = flow.client.release_thread
        self._context = flow

    def submit(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        dynamic_key: int,
        wait_for: Sequence[TaskRunFuture] = (),
    ) -> TaskRunFuture:
        from orchestrator.sdk.tasks import run_task

        assert self._context is not None, "start() the runner first"
        holder: list[TaskRunFuture] = []

        def created(info: TaskRunInfo) -> None:
            holder[0].task_run_id = info.id

        call = functools.partial(
            run_task, task, self._context, args, kwargs, dynamic_key, wait_for=tuple(wait_for), on_created=created
        )
        future = TaskRunFuture(Future(), task.task_run_name(dynamic_key), client=self._context.client)
        holder.append(future)
        self.submit_call(call, future._future)
        return future

    def submit_call(self, fn: Callable[[], Any], future: Future[Any] | None = None) -> Future[Any]:
        """Run `fn` on one of the threads; its outcome goes to `future` (a new one by default)."""
        future = future if future is not None else Future()
        self._work.put((future, contextvars.copy_context(), fn))
        with self._lock:
            self._waiting_items += 1
            # Start a thread when more items wait than threads are idle, up to the limit.
            if self._waiting_items > self._idle_threads and len(self._threads) < (self.max_workers or 1):
                thread = threading.Thread(target=self._work_loop, name=f"task-runner-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    self._idle_threads += 1
                item = self._work.get()
                with self._lock:
                    self._idle_threads -= 1
                    if item is not None:
                        self._waiting_items -= 1
                if item is None:
                    return
                future, context, fn = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = context.run(fn)
                except BaseException as error:  # the future carries it, Interrupted included
                    future.set_exception(error)
                else:
                    future.set_result(result)
        finally:
            if self.on_thread_exit is not None:
                self.on_thread_exit()

    def shutdown(self, *, wait: bool) -> None:
        """Let the threads end once they are idle; with `wait`, wait for them (a moment: every
        task is done by then). Busy threads of timed-out tasks end when their task does."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join(timeout=5)
