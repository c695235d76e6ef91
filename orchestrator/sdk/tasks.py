"""`@task`: a function whose calls inside a flow run are recorded as task runs, with retries,
timeouts and a result cache."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from orchestrator.client.base import FlowRunInfo, OrchestratorClient, TaskRunInfo
from orchestrator.core.errors import NotFound, StateConflict
from orchestrator.core.parameters import jsonable_parameters
from orchestrator.core.results import ResultError, persist_by_default, read_result, write_result
from orchestrator.core.states import StateType
from orchestrator.sdk.context import (
    FlowRunContext,
    MissingContextError,
    TaskRunContext,
    flow_run_context,
    task_run_context,
)
from orchestrator.sdk.interrupts import Interrupted, Scope
from orchestrator.sdk.logs import TASK_RUN_LOGGER, RunLogger, prints_logged_to
from orchestrator.sdk.runner import TaskRunFuture

P = ParamSpec("P")
R = TypeVar("R")

# Results up to this size (as JSON) are stored with the task run, which is what a cache hit
# returns; a bigger result, or one with no JSON form, is not stored and so never cached.
MAX_STORED_RESULT_BYTES = 256 * 1024


def decorate(cls: type, fn: Callable[..., Any] | None, options: dict[str, Any]) -> Any:
    """`@flow`/`@task` with or without options: `cls(fn, **options)`, now or once given fn."""
    if fn is None:
        return lambda f: cls(f, **options)
    return cls(fn, **options)


def check_plain_function(kind: str, fn: Any) -> None:
    """Flows and tasks are plain functions: an async one would only hand back a coroutine."""
    if not callable(fn):
        raise TypeError(f"@{kind} decorates a function, not {fn!r}.")
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"@{kind} takes a plain function; async def {fn.__name__} is not supported yet.")


def check_non_negative(owner: str, **values: float | None) -> None:
    """Decorator options are checked when the decorator runs, not at the first call."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{owner}: {name} must be a number of at least 0, not {value!r}.")


def exception_text(error: BaseException) -> str:
    """'ValueError: boom', or the type alone when the exception has no message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def traceback_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()


def state_text(name: str, message: str = "") -> str:
    """How a state is shown on the console: Completed() or Failed('ValueError: boom')."""
    return f"{name}({message!r})" if message else f"{name}()"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"


def task_input_hash(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """A cache key for `cache_key_fn`: the same task called with the same parameters."""
    payload = json.dumps({"task": context.task.task_key, "parameters": jsonable_parameters(parameters)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class Task(Generic[P, R]):
    """A task: call it inside a flow to run it as a task run; `submit()` runs it concurrently
    and returns a future; `map()` submits it once per item. Called outside a flow it is just the
    function."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_delay_seconds: float | list[float] = 0,
        timeout_seconds: float | None = None,
        cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
        cache_expiration: timedelta | None = None,
        tags: Iterable[str] | None = None,
        persist_result: bool | None = None,
        result_storage: str | None = None,
    ) -> None:
        check_plain_function("task", fn)
        self.fn = fn
        self.name = name or fn.__name__
        delays = retry_delay_seconds if isinstance(retry_delay_seconds, (list, tuple)) else [retry_delay_seconds]
        check_non_negative(f"task {self.name!r}", retries=retries, timeout_seconds=timeout_seconds)
        check_non_negative(f"task {self.name!r}", **{f"retry_delay_seconds[{i}]": d for i, d in enumerate(delays)})
        if cache_expiration is not None and not isinstance(cache_expiration, timedelta):
            raise ValueError(f"task {self.name!r}: cache_expiration must be a timedelta, not {cache_expiration!r}.")
        if cache_key_fn is not None and not callable(cache_key_fn):
            raise ValueError(f"task {self.name!r}: cache_key_fn must be callable.")
        self.retries = int(retries)
        self.retry_delays = [float(d) for d in delays] or [0.0]
        self.timeout_seconds = timeout_seconds
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.tags = list(tags or [])
        self.persist_result = persist_result  # None: PERSIST_RESULTS decides
        self.result_storage = result_storage
        self.task_key = f"{fn.__module__}.{fn.__qualname__}"
        self.key_hash = hashlib.sha256(self.task_key.encode()).hexdigest()[:8]
        functools.update_wrapper(self, fn)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based); a list gives one delay per
        retry, its last repeating."""
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        context = flow_run_context.get()
        if context is None:
            return self.fn(*args, **kwargs)
        return run_task(self, context, args, kwargs, context.next_dynamic_key(self.task_key))

    def submit(self, *args: Any, wait_for: Iterable[TaskRunFuture] | None = None, **kwargs: Any) -> TaskRunFuture:
        """Run the task concurrently on the flow run's task runner, once the futures among its
        arguments (whose results it gets) and those in `wait_for` (ordering only) finished."""
        context = self._flow_run_context("submit")
        key = context.next_dynamic_key(self.task_key)
        upstream = _check_futures(self.name, wait_for)
        future = context.runner.submit(self, args, kwargs, dynamic_key=key, wait_for=upstream)
        context.futures.append(future)
        return future

    def map(
        self, *iterables: Iterable[Any], wait_for: Iterable[TaskRunFuture] | None = None, **kwargs: Any
    ) -> list[TaskRunFuture]:
        """Submit the task once per item: positional arguments are iterables zipped together
        (all of one length); keyword arguments are passed unchanged to every call."""
        self._flow_run_context("map")
        columns = [list(items) for items in iterables]
        if len({len(column) for column in columns}) > 1:
            raise ValueError(f"{self.name}.map() takes iterables of one length, not {[len(c) for c in columns]}.")
        upstream = _check_futures(self.name, wait_for)
        return [self.submit(*row, wait_for=upstream, **kwargs) for row in zip(*columns)]

    def task_run_name(self, dynamic_key: int) -> str:
        return f"{self.name}-{self.key_hash}-{dynamic_key}"

    def _flow_run_context(self, method: str) -> FlowRunContext:
        context = flow_run_context.get()
        if context is None:
            raise MissingContextError(f"{self.name}.{method}() works only inside a flow run.")
        return context

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay_seconds: float | list[float] = 0,
    timeout_seconds: float | None = None,
    cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
    cache_expiration: timedelta | None = None,
    tags: Iterable[str] | None = None,
    persist_result: bool | None = None,
    result_storage: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a task: `@task` or `@task(name=..., retries=..., retry_delay_seconds=...,
    timeout_seconds=..., cache_key_fn=..., cache_expiration=..., tags=..., persist_result=...,
    result_storage=...)`."""
    return decorate(Task, fn, options)


# --- running one task run ---------------------------------------------------------------------


def _resolve_futures(value: Any) -> Any:
    """Arguments may be futures of other task runs (and lists, tuples, dicts of them): wait for
    each and pass its result, as if it had been called directly."""
    if isinstance(value, TaskRunFuture):
        return value.result()
    if isinstance(value, (list, tuple, set)):
        return type(value)(_resolve_futures(v) for v in value)
    if isinstance(value, dict):
        return {k: _resolve_futures(v) for k, v in value.items()}
    return value


def _storable(value: Any) -> tuple[bool, Any]:
    """(True, value) when `value` can be stored with the task run as JSON, else (False, None)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return False, None
    return len(text) <= MAX_STORED_RESULT_BYTES, value


def _check_futures(task_name: str, wait_for: Iterable[TaskRunFuture] | None) -> list[TaskRunFuture]:
    futures = list(wait_for or [])
    for future in futures:
        if not isinstance(future, TaskRunFuture):
            raise TypeError(f"{task_name}: wait_for takes futures of submitted tasks, not {future!r}.")
    return futures


class UpstreamFailed(RuntimeError):
    """A task run this one waited for (an argument's or one in `wait_for`) did not complete."""


class TaskRunTakenAway(Interrupted):
    """Someone else moved the task run first (its flow run ended, or, on a cluster, an earlier
    execution of it that the cluster lost). `actual`: the state it is in."""

    actual: str = ""

    def __init__(self, reason: str | None = None, actual: str = "") -> None:
        super().__init__(reason)
        self.actual = actual


class _TaskRun:
    """One task run's record and its moves, as its executor sees them (in the flow process, or
    on a cluster worker)."""

    def __init__(
        self, task: Task[..., Any], client: OrchestratorClient, flow_run: FlowRunInfo, info: TaskRunInfo
    ) -> None:
        self.task = task
        self.client = client
        self.flow_run = flow_run
        self.info = info
        self.name = info.name
        self.moves = 0  # moves made by this executor
        self.logger = RunLogger(
            TASK_RUN_LOGGER, label=f"Task run '{self.name}'", flow_run_id=flow_run.id, task_run_id=info.id
        )

    @classmethod
    def create(cls, task: Task[..., Any], flow: FlowRunContext, dynamic_key: int) -> _TaskRun:
        """Record a PENDING task run for the call number `dynamic_key` of `task`."""
        name = task.task_run_name(dynamic_key)
        flow.logger.info("Created task run '%s' for task '%s'", name, task.name)
        info = flow.client.create_task_run(
            flow.run.id,
            name=name,
            task_key=task.task_key,
            dynamic_key=str(dynamic_key),
            tags=task.tags,
        )
        return cls(task, flow.client, flow.run, info)

    def move(self, state_type: str, name: str | None = None, message: str = "", **extra: Any) -> None:
        # The flow run ending marks unfinished task runs CRASHED; a thread still finishing one
        # then loses the compare-and-swap, and the task run stops here.
        try:
            self.info = self.client.set_task_run_state(
                self.info.id, state_type, expected=self.info.state_type, name=name, message=message, **extra
            )
        except StateConflict as conflict:
            raise TaskRunTakenAway(
                f"Task run '{self.name}' was ended by its flow run ({conflict.actual}).", actual=conflict.actual
            ) from None
        self.moves += 1

    def finished(self, message: str = "") -> None:
        self.logger.info("Finished in state %s", state_text(self.info.state_name, message))

    def fail(self, message: str, error: BaseException | None = None) -> None:
        if error is not None:
            self.logger.error("Encountered exception during execution:\n%s", traceback_text(error))
        self.move(StateType.FAILED, message=message)
        self.finished(message)


def run_task(
    task: Task[..., R],
    flow: FlowRunContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dynamic_key: int,
    *,
    wait_for: tuple[TaskRunFuture, ...] = (),
    on_created: Callable[[TaskRunInfo], None] | None = None,
) -> R:
    """Run one call of `task` in flow run `flow` as a task run, here: once the futures it waits
    for finished, a cached result, or attempts with retries and a timeout. Returns its result
    or raises its last exception."""
    run = _TaskRun.create(task, flow, dynamic_key)
    if on_created is not None:
        on_created(run.info)
    try:
        for future in wait_for:
            future.wait()
        failed = [f for f in wait_for if f.exception() is not None]
        if failed:
            raise UpstreamFailed(f"Task run '{failed[0].task_run_name}' did not complete")
        args, kwargs = _resolve_futures(args), _resolve_futures(kwargs)
    except Exception as upstream:
        run.fail(f"An upstream task run failed: {exception_text(upstream)}")
        raise
    return execute_task_run(run, args, kwargs, log_prints=flow.log_prints, scopes=flow.task_scopes)


def execute_task_run(
    run: _TaskRun,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    log_prints: bool,
    scopes: set[Scope],
    attempts_made: int = 0,
) -> Any:
    """Execute a recorded task run whose arguments are ready: the one code path of every task
    runner, wherever it runs (a thread of the flow process, a cluster worker). A cached result,
    or attempts with retries, retry delays and a timeout (`scopes` holds each attempt's scope
    while it runs, for whoever must stop it). `attempts_made`: attempts an earlier execution
    used up (a cluster re-running a task run whose worker died). Returns the result or raises
    the last exception."""
    task = run.task
    bound = inspect.signature(task.fn).bind_partial(*args, **kwargs)
    context = TaskRunContext(
        task=task,
        task_run=run.info,
        flow_run=run.flow_run,
        parameters=dict(bound.arguments),
        logger=run.logger,
        client=run.client,
    )

    cache_key = ""
    if task.cache_key_fn is not None:
        try:
            cache_key = task.cache_key_fn(context, context.parameters) or ""
        except Exception as error:
            run.fail(f"Its cache_key_fn failed: {exception_text(error)}", error)
            raise
        cached = run.client.read_cached_result(cache_key) if cache_key and not attempts_made else None
        value: Any = cached.value if cached is not None else None
        if cached is not None and cached.result_uri:
            # A persisted result is read back from result storage (gone: run the task again).
            try:
                value = read_result(cached.result_uri)[1]
            except (NotFound, ResultError) as error:
                run.logger.warning("The cached result cannot be read (%s); running the task.", error)
                cached = None
        if cached is not None:
            run.move(
                StateType.COMPLETED,
                "Cached",
                f"Cached result of task run '{cached.task_run_name}'",
                result=cached.value,
                store_result=not cached.result_uri,
                result_uri=cached.result_uri,
            )
            run.finished()
            return value

    token = task_run_context.set(context)
    try:
        with prints_logged_to(run.logger if log_prints else None):
            return _attempts(run, context, args, kwargs, cache_key, scopes, attempts_made)
    finally:
        task_run_context.reset(token)


def _attempts(
    run: _TaskRun,
    context: TaskRunContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cache_key: str,
    scopes: set[Scope],
    attempts_made: int,
) -> Any:
    task = run.task
    attempt = attempts_made
    while True:
        run.move(StateType.RUNNING, "Retrying" if attempt else "Running")
        scope = Scope(
            timeout=task.timeout_seconds,
            timeout_message=f"Task run exceeded its timeout of {seconds_text(task.timeout_seconds or 0)}",
        )
        scopes.add(scope)
        try:
            with scope:
                value = task.fn(*args, **kwargs)
        except Exception as error:
            attempt += 1
            if attempt <= task.retries:
                retry_later(run, attempt, exception_text(error))
                continue
            run.fail(exception_text(error), error)
            raise
        finally:
            scopes.discard(scope)
        store, result = _storable(value)
        uri = ""
        if task.persist_result if task.persist_result is not None else persist_by_default():
            try:
                uri = write_result(value, storage=task.result_storage, name=f"task-run-{run.info.id}")
            except ResultError as error:
                run.fail(str(error))
                raise
            store, result = False, None  # in storage, not in the database
        expires = datetime.now(UTC) + task.cache_expiration if cache_key and task.cache_expiration else None
        run.move(
            StateType.COMPLETED,
            result=result,
            store_result=store,
            cache_key=cache_key if store or uri else "",
            cache_expires_at=expires,
            result_uri=uri,
        )
        run.finished()
        return value


def retry_later(run: _TaskRun, attempt: int, reason: str) -> None:
    """Attempt number `attempt` failed for `reason` and the task has retries left: AwaitingRetry,
    then wait for the retry delay."""
    task = run.task
    delay = task.retry_delay(attempt)
    message = f"Retry {attempt} of {task.retries} in {seconds_text(delay)} after: {reason}"
    run.logger.warning("%s", message)
    if run.info.state_type != StateType.SCHEDULED:
        run.move(StateType.SCHEDULED, "AwaitingRetry", message)
    time.sleep(delay)
