"""What runs on a cluster worker (Dask, Ray) for one task run: `run_remote(call, *upstream)`.

The flow process records the task run (PENDING) and ships a `RemoteCall`: how to reach the
orchestrator (`Connection`), the pickled task and arguments, and the outcomes of the task runs
it waits for (the cluster resolves those before calling). Here, on the worker, the task run
reports its own states, logs and result through a client of this process: nothing is relayed
by the flow process. The task's code runs through `execute_task_run`, the same code path as on
the thread runner, so retries, retry delays, timeouts and the cache behave the same.

`run_remote` never raises: it returns an `Envelope` with the value or the exception, so that a
downstream task still runs (and fails as "an upstream task run failed", as on threads) instead
of the cluster skipping it. When the cluster runs a task run again because the worker running
it died, the record shows the earlier attempt (RUNNING or AwaitingRetry): that attempt
crashed, and the task run is retried if it has retries left, else it ends CRASHED.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from orchestrator.client.base import FlowRunInfo, OrchestratorClient, Refused, TaskRunInfo, Unreachable
from orchestrator.sdk import logs
from orchestrator.sdk.interrupts import Interrupted, Scope

RUNNING, SCHEDULED = "RUNNING", "SCHEDULED"
FINISHED = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class TaskRunCrashed(RuntimeError):
    """The task run ended CRASHED: the cluster worker running it died (or the cluster lost it)."""


class CouldNotStart(RuntimeError):
    """The task run could not start on the cluster worker (the orchestrator is out of its reach,
    the task's code cannot be imported there): the flow process records it FAILED with this
    message, as the worker could not."""


class TaskRunCancelled(RuntimeError):
    """The task run was stopped with its flow run (cancelled, timed out, crashed)."""


@dataclass(frozen=True)
class Connection:
    """How task code on a cluster worker reaches the orchestrator. Either the HTTP API with a
    credential (`api_url`, `api_key`), or the database itself (`environment`: the settings module,
    ORCHESTRATOR_HOME and DATABASE_URL the direct transport sets Django up from)."""

    api_url: str = ""
    api_key: str = ""
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.api_url, self.api_key, *sorted(f"{k}={v}" for k, v in self.environment.items()))


@dataclass(frozen=True)
class Envelope:
    """A task run's outcome as it travels back: `value` when ok, else `error`."""

    ok: bool
    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if not self.ok:
            assert self.error is not None
            raise self.error
        return self.value


@dataclass(frozen=True)
class Upstream:
    """Stands, inside a call's arguments, for the result of upstream task run number `index`."""

    index: int


@dataclass(frozen=True)
class RemoteCall:
    """Everything a cluster worker needs to execute one recorded task run. `arguments` and
    `task` are cloudpickled in the flow process (one task's bytes are shared by all its calls);
    `argument_upstreams` says which of the upstream outcomes feed arguments (the others only
    order: wait_for)."""

    connection: Connection
    flow_run: FlowRunInfo
    task_run: TaskRunInfo
    task: bytes
    arguments: bytes
    log_prints: bool
    upstream_names: tuple[str, ...] = ()
    argument_upstreams: frozenset[int] = frozenset()


# --- this worker process's side ------------------------------------------------------------------

_lock = threading.Lock()
_clients: dict[tuple[str, ...], OrchestratorClient] = {}
_scopes: dict[str, set[Scope]] = {}  # flow run id -> scopes of its task runs running here now
_stopped: set[str] = set()  # flow runs whose task runs must not start here any more


def client_for(connection: Connection) -> OrchestratorClient:
    """This process's client for `connection` (one per connection, made on first use)."""
    with _lock:
        client = _clients.get(connection.key)
        if client is not None:
            return client
        if connection.api_url:
            from orchestrator.client.http import HttpClient

            made: OrchestratorClient = HttpClient(connection.api_url, connection.api_key)
        else:
            from django.apps import apps

            if not apps.ready:
                # A fresh worker process: Django is set up from what the flow process uses.
                os.environ.update(connection.environment)
            from orchestrator.client import direct_client

            made = direct_client()
        from orchestrator.sdk.execution import _DeferringClient

        # Interrupts wait until a call to the orchestrator is over (Ray runs tasks in the main thread).
        wrapped: OrchestratorClient = _DeferringClient(made)  # type: ignore[assignment]  # a proxy with the client's methods, not a subclass
        _clients[connection.key] = wrapped
        return wrapped


def stop_flow_run(flow_run_id: str, reason: str) -> int:
    """Stop the task runs of `flow_run_id` running in this process, and refuse to start more.
    Returns how many it interrupted. (The Dask runner calls it on every worker on cancel.)"""
    with _lock:
        _stopped.add(flow_run_id)
        scopes = list(_scopes.get(flow_run_id, ()))
    return sum(1 for scope in scopes if scope.interrupt(reason))


def run_remote(call: RemoteCall, *upstream: Envelope) -> Envelope:
    """Execute the task run `call` here; never raises (see the module docstring)."""
    from orchestrator.sdk.tasks import _TaskRun

    try:
        client = client_for(call.connection)
    except Exception as error:
        return Envelope(False, error=_could_not_start(call, error))
    try:
        task = cloudpickle.loads(call.task)
    except Exception as error:
        from orchestrator.sdk.tasks import exception_text

        return Envelope(
            False,
            error=CouldNotStart(
                f"The cluster worker could not load the task of '{call.task_run.name}' (is its code importable there?): "
                f"{exception_text(error)}"
            ),
        )
    shipper = logs.shipper_for(client, call.flow_run.id)
    run = _TaskRun(task, client, call.flow_run, call.task_run)
    try:
        return _execute(run, call, upstream)
    finally:
        shipper.flush()


def _execute(run: Any, call: RemoteCall, upstream: tuple[Envelope, ...]) -> Envelope:
    from orchestrator.sdk.tasks import (
        TaskRunTakenAway,
        exception_text,
        execute_task_run,
    )

    if call.flow_run.id in _stopped:
        return _stopped_envelope(run, "Its flow run stopped before it started.")
    try:
        args, kwargs = _arguments(call, upstream)
    except Exception as failed:
        message = f"An upstream task run failed: {exception_text(failed)}"
        return _failed_before_start(run, message, failed)

    with _lock:
        scopes = _scopes.setdefault(call.flow_run.id, set())
    attempts_made = 0
    while True:
        try:
            value = execute_task_run(
                run, args, kwargs, log_prints=call.log_prints, scopes=scopes, attempts_made=attempts_made
            )
        except TaskRunTakenAway as taken:
            if run.moves == 0 and taken.actual in (RUNNING, SCHEDULED):
                # An earlier execution of this task run started and its worker died.
                crashed, attempts_made = _after_lost_attempt(run)
                if crashed is None:
                    continue
                return crashed
            if run.moves == 0 and taken.actual in FINISHED:
                return Envelope(
                    False,
                    error=TaskRunCrashed(
                        f"Task run '{run.name}' ended {taken.actual} on a cluster worker that was lost before its "
                        "result reached the flow run."
                    ),
                )
            return Envelope(False, error=TaskRunCancelled(taken.reason))
        except (Interrupted, KeyboardInterrupt) as stop:
            # Stopped from outside: the flow run was cancelled or ended (Dask: stop_flow_run;
            # Ray: ray.cancel raises KeyboardInterrupt in the task).
            reason = getattr(stop, "reason", "") or "Cancelled with its flow run."
            return _stopped_envelope(run, reason)
        except (Unreachable, Refused) as error:
            if run.moves == 0:  # it could not even say it started
                return Envelope(False, error=_could_not_start(call, error))
            return Envelope(False, error=_sendable(error))
        except Exception as error:
            return Envelope(False, error=_sendable(error))
        return Envelope(True, value=value)


def _could_not_start(call: RemoteCall, error: BaseException) -> CouldNotStart:
    from orchestrator.sdk.tasks import exception_text

    where = f"at {call.connection.api_url}" if call.connection.api_url else "through its database"
    return CouldNotStart(f"The cluster worker could not reach the orchestrator {where}: {exception_text(error)}")


def _arguments(call: RemoteCall, upstream: tuple[Envelope, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with each Upstream replaced by its result. Raises the upstream's
    own exception for a failed argument, UpstreamFailed for a failed wait_for."""
    from orchestrator.sdk.tasks import UpstreamFailed

    for index, envelope in enumerate(upstream):
        if not envelope.ok and index not in call.argument_upstreams:
            raise UpstreamFailed(f"Task run '{call.upstream_names[index]}' did not complete")
    args, kwargs = cloudpickle.loads(call.arguments)

    def resolve(value: Any) -> Any:
        if isinstance(value, Upstream):
            return upstream[value.index].unwrap()
        if isinstance(value, (list, tuple, set)):
            return type(value)(resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    return resolve(args), resolve(kwargs)


def _after_lost_attempt(run: Any) -> tuple[Envelope | None, int]:
    """The record shows an attempt of an execution that died with its worker. With retries
    left: AwaitingRetry and its delay, then (None, attempts made) to go on. Else: CRASHED."""
    from orchestrator.sdk.tasks import retry_later

    run.info = run.client.read_task_run(run.info.id)
    attempts = run.info.run_count
    reason = "The cluster worker running it died"
    if attempts <= run.task.retries:
        retry_later(run, attempts, reason)
        return None, attempts
    message = f"{reason} (attempt {attempts})."
    run.logger.error("%s", message)
    run.move("CRASHED", message=message)
    run.finished(message)
    return Envelope(False, error=TaskRunCrashed(f"Task run '{run.name}' crashed: {message}")), attempts


def _failed_before_start(run: Any, message: str, error: BaseException) -> Envelope:
    from orchestrator.sdk.tasks import TaskRunTakenAway

    try:
        run.fail(message)
    except TaskRunTakenAway:
        pass
    return Envelope(False, error=_sendable(error))


def _stopped_envelope(run: Any, reason: str) -> Envelope:
    from orchestrator.sdk.tasks import TaskRunTakenAway

    try:
        if run.info.state_type not in FINISHED:
            run.move("CANCELLED", message=reason)
            run.finished(reason)
    except (TaskRunTakenAway, Exception):
        pass  # its flow run ended it meanwhile: that state stands
    return Envelope(False, error=TaskRunCancelled(f"Task run '{run.name}' was stopped: {reason}"))


def _sendable(error: BaseException) -> BaseException:
    """`error` if it can cross the wire; else without its chain (Dask pickles __context__ and
    tracebacks through tblib, and a timeout's context is the interrupt, which holds a timer);
    else a RuntimeError with its text. Its traceback is in the task run's logs either way."""
    from orchestrator.sdk.tasks import exception_text

    for _ in range(2):
        try:
            cloudpickle.dumps(error)
        except Exception:
            error.__context__ = error.__cause__ = None
            error.__traceback__ = None
            continue
        return error
    return RuntimeError(exception_text(error))
