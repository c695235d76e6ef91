"""The flow process's side of a cluster task runner (shared by Dask and Ray).

For each submitted call it records the task run (PENDING, as the thread runner does), pickles
the task and its arguments with cloudpickle (an argument that cannot be pickled fails that task
run, naming the argument), and hands the cluster `run_remote(call, *upstream)`: the futures
among the arguments and in `wait_for` become the cluster's own references (a Dask future, a Ray
ObjectRef), so the cluster holds the task back until they finished; the flow process never
blocks on them. What the task run does from then on it reports itself (see remote.py). The flow
process only hears how it ended, to settle its future, and records CRASHED when the cluster
itself gave up on it (a worker killed more often than the cluster retries, say).
"""

from __future__ import annotations

import inspect
import sys
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import cloudpickle

from orchestrator.client.base import OrchestratorClient
from orchestrator.core.states import StateType
from orchestrator.sdk.logs import TASK_RUN_LOGGER, RunLogger
from orchestrator.sdk.runner import TaskRunFuture, TaskRunner
from orchestrator.sdk.task_runners.remote import (
    FINISHED,
    Connection,
    CouldNotStart,
    Envelope,
    RemoteCall,
    TaskRunCancelled,
    TaskRunCrashed,
    Upstream,
)

if TYPE_CHECKING:
    from orchestrator.sdk.context import FlowRunContext
    from orchestrator.sdk.tasks import Task, _TaskRun

# The engine imports a deployment's flow file under a module name of its own (see
# orchestrator.engine.load_module), which no cluster worker can import: such modules travel by
# value, like a script's __main__.
ENGINE_MODULE_PREFIX = "__orchestrator_flow_"


class CannotShip(TypeError):
    """A task or one of its arguments cannot be pickled to go to the cluster."""


def connection_for(client: OrchestratorClient) -> Connection:
    """How task runs on cluster workers reach the orchestrator, from the flow process's client:
    the one place that decides which credential they hold. Over HTTP: the URL and the key this
    flow process holds (ORCHESTRATOR_API_URL / ORCHESTRATOR_API_KEY, which its worker passed).
    Directly: the settings, data directory and database this process uses."""
    environment = dict(client.environment())
    if client.name == "http":
        from orchestrator.client.http import KEY_VARIABLE, URL_VARIABLE

        return Connection(api_url=environment[URL_VARIABLE], api_key=environment[KEY_VARIABLE])
    environment["DATABASE_URL"] = database_url()
    return Connection(environment=environment)


def database_url() -> str:
    """The URL of the database this process is connected to (the test database in tests)."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(str(db.get("USER") or ""), safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class ClusterTaskRunFuture(TaskRunFuture):
    """A task run on a cluster: `cluster_ref` while it runs, `envelope` once it ended."""

    envelope: Envelope | None = None


class ClusterTaskRunner(TaskRunner):
    """What the Dask and Ray runners share; each supplies how to reach its cluster, submit a
    call, hear of its end, cancel and close."""

    def __init__(self) -> None:
        self._flow: FlowRunContext | None = None
        self._connection = Connection()
        self._pickled_tasks: dict[int, bytes] = {}
        self._pending: dict[str, ClusterTaskRunFuture] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._started = False

    # --- for each runner ---
    @abstractmethod
    def _open(self, flow: FlowRunContext) -> None:
        """Reach (or start) the cluster; log where it is."""

    @abstractmethod
    def _submit_call(self, call: RemoteCall, upstream: list[Any], key: str) -> Any:
        """Ask the cluster to run run_remote(call, *upstream); returns its reference."""

    @abstractmethod
    def _when_done(self, ref: Any, settle: Callable[[Callable[[], Envelope]], None]) -> None:
        """Arrange for settle(get) to be called once `ref` ended; get() returns its Envelope
        or raises the cluster's error."""

    @abstractmethod
    def _cancel(self, refs: list[Any]) -> None:
        """Cancel these calls on the cluster, pending or running."""

    @abstractmethod
    def _close(self) -> None:
        """Let go of the cluster (and stop it when this runner started it)."""

    # --- the TaskRunner interface ---
    def start(self, flow: FlowRunContext) -> None:
        self._flow = flow
        self._connection = connection_for(flow.client)
        module = sys.modules.get(flow.flow.fn.__module__)
        if module is not None and module.__name__.startswith(ENGINE_MODULE_PREFIX):
            cloudpickle.register_pickle_by_value(module)
        self._open(flow)
        self._started = True

    def submit(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        dynamic_key: int,
        wait_for: Sequence[TaskRunFuture] = (),
    ) -> TaskRunFuture:
        from orchestrator.sdk.tasks import _TaskRun, exception_text

        flow = self._flow
        assert flow is not None, "start() the runner first"
        run = _TaskRun.create(task, flow, dynamic_key)
        future = ClusterTaskRunFuture(Future(), run.name, client=flow.client, task_run_id=run.info.id)
        try:
            call, upstream = self._remote_call(task, run, args, kwargs, wait_for)
        except CannotShip as error:
            run.fail(str(error))
            self._settle(future, Envelope(False, error=error))
            return future
        with self._lock:
            self._pending[run.info.id] = future
        try:
            future.cluster_ref = self._submit_call(call, upstream, key=f"{run.name}-{run.info.id}")
        except Exception as error:  # the cluster went away, say
            message = f"The cluster did not take it: {exception_text(error)}"
            run.fail(message)
            self._settle(future, Envelope(False, error=TaskRunCrashed(message)))
            return future
        self._when_done(future.cluster_ref, lambda get: self._settle_from(future, get))
        return future

    def shutdown(self, *, wait: bool) -> None:
        if not self._started:
            return
        try:
            if not wait:
                self._stopping = True
                with self._lock:
                    refs = [f.cluster_ref for f in self._pending.values() if f.cluster_ref is not None]
                if refs:
                    self._cancel(refs)
        finally:
            self._started = False
            self._close()

    # --- shipping a call ---
    def _remote_call(
        self,
        task: Task[..., Any],
        run: _TaskRun,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        wait_for: Sequence[TaskRunFuture],
    ) -> tuple[RemoteCall, list[Any]]:
        assert self._flow is not None
        upstream: list[Any] = []
        names: list[str] = []
        seen: dict[int, int] = {}

        def index_of(future: TaskRunFuture) -> int:
            if id(future) not in seen:
                seen[id(future)] = len(upstream)
                upstream.append(self._upstream_ref(future))
                names.append(future.task_run_name)
            return seen[id(future)]

        def swap(value: Any) -> Any:
            if isinstance(value, TaskRunFuture):
                return Upstream(index_of(value))
            if isinstance(value, (list, tuple, set)):
                return type(value)(swap(v) for v in value)
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            return value

        shipped_args, shipped_kwargs = swap(args), swap(kwargs)
        argument_upstreams = frozenset(range(len(upstream)))
        for future in wait_for:
            index_of(future)
        call = RemoteCall(
            connection=self._connection,
            flow_run=self._flow.run,
            task_run=run.info,
            task=self._pickled_task(task),
            arguments=_pickled_arguments(task, run.name, shipped_args, shipped_kwargs),
            log_prints=self._flow.log_prints,
            upstream_names=tuple(names),
            argument_upstreams=argument_upstreams,
        )
        return call, upstream

    def _upstream_ref(self, future: TaskRunFuture) -> Any:
        """What the cluster gets for an upstream future: its outcome when known, else its
        cluster reference (resolved on the cluster). A future of another runner is waited for."""
        if isinstance(future, ClusterTaskRunFuture):
            envelope, ref = future.envelope, future.cluster_ref
            if envelope is not None:
                return envelope
            if ref is not None:
                return ref
            future.wait()
            assert future.envelope is not None
            return future.envelope
        future.wait()
        error = future.exception()
        return Envelope(True, value=future.result()) if error is None else Envelope(False, error=error)

    def _pickled_task(self, task: Task[..., Any]) -> bytes:
        from orchestrator.sdk.tasks import exception_text

        pickled = self._pickled_tasks.get(id(task))
        if pickled is None:
            try:
                pickled = cloudpickle.dumps(task)
            except Exception as error:
                raise CannotShip(
                    f"Task '{task.name}' cannot be sent to the cluster: {exception_text(error)}"
                ) from error
            self._pickled_tasks[id(task)] = pickled
        return pickled

    # --- hearing back ---
    def _settle_from(self, future: ClusterTaskRunFuture, get: Callable[[], Envelope]) -> None:
        try:
            envelope = get()
        except BaseException as error:  # the cluster gave up on it (or it was cancelled)
            envelope = self._lost(future, error)
        if isinstance(envelope.error, CouldNotStart):
            self._record_end(future, StateType.FAILED, str(envelope.error))
        self._settle(future, envelope)

    def _settle(self, future: ClusterTaskRunFuture, envelope: Envelope) -> None:
        future.envelope = envelope
        future.cluster_ref = None  # the outcome is here now: the cluster may forget it
        with self._lock:
            self._pending.pop(future.task_run_id or "", None)
        if envelope.ok:
            future._future.set_result(envelope.value)
        else:
            assert envelope.error is not None
            future._future.set_exception(envelope.error)

    def _lost(self, future: ClusterTaskRunFuture, error: BaseException) -> Envelope:
        """The cluster reported an error of its own instead of an outcome: cancelled by us, or
        lost (a worker died more often than the cluster retries). Records CRASHED unless the
        task run already ended (or we are stopping: its flow run ending settles it)."""
        from orchestrator.sdk.tasks import exception_text

        if self._stopping:
            return Envelope(
                False, error=TaskRunCancelled(f"Task run '{future.task_run_name}' was stopped with its flow run.")
            )
        message = f"The cluster lost it: {exception_text(error)}"
        self._record_end(future, StateType.CRASHED, message)
        return Envelope(False, error=TaskRunCrashed(f"Task run '{future.task_run_name}' crashed: {message}"))

    def _record_end(self, future: ClusterTaskRunFuture, state_type: StateType, message: str) -> None:
        """Record, from the flow process, the end of a task run that could not report it itself
        (unless it ended meanwhile)."""
        assert self._flow is not None
        client = self._flow.client
        try:
            info = client.read_task_run(future.task_run_id or "")
            if info.state_type not in FINISHED:
                RunLogger(
                    TASK_RUN_LOGGER,
                    label=f"Task run '{future.task_run_name}'",
                    flow_run_id=self._flow.run.id,
                    task_run_id=info.id,
                ).error("%s", message)
                client.set_task_run_state(info.id, state_type, expected=info.state_type, message=message)
        except Exception:  # it moved meanwhile, or the orchestrator is unreachable: the flow run's end settles it
            pass
        finally:
            client.release_thread()


def _pickled_arguments(task: Task[..., Any], run_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """cloudpickle of (args, kwargs); CannotShip naming the first argument that cannot be."""
    from orchestrator.sdk.tasks import exception_text

    try:
        return cloudpickle.dumps((args, kwargs))
    except Exception as error:
        try:
            named = dict(inspect.signature(task.fn).bind_partial(*args, **kwargs).arguments)
        except TypeError:
            named = {**{f"#{i}": a for i, a in enumerate(args)}, **kwargs}
        for name, value in named.items():
            try:
                cloudpickle.dumps(value)
            except Exception as culprit:
                raise CannotShip(
                    f"Argument {name!r} of task run '{run_name}' cannot be sent to the cluster: {exception_text(culprit)}"
                ) from culprit
        raise CannotShip(
            f"The arguments of task run '{run_name}' cannot be sent to the cluster: {exception_text(error)}"
        ) from error
