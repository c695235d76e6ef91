"""Running one flow run in this process, from PENDING to its end: shared by a flow called from
a script (an ad-hoc run) and by the engine (a deployment's run).

Around the run, a `RunSession` ships its logs, heartbeats it while it is PENDING or RUNNING,
and holds a scope the heartbeat interrupts when the run is no longer the engine's to run
(cancelled, crashed by the reaper): the flow's code is stopped and the session ends quietly,
finishing a cancellation itself only when no worker holds the run.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.client import FlowRunInfo, OrchestratorClient, get_client
from orchestrator.core.errors import StateConflict, ValidationError
from orchestrator.core.parameters import call_arguments, jsonable_parameters, validate_call_parameters
from orchestrator.core.results import ResultError, persist_by_default, write_result
from orchestrator.core.states import SUSPENDED_STATE_NAME, TERMINAL, StateType
from orchestrator.sdk import logs
from orchestrator.sdk.context import FlowRunContext, flow_run_context
from orchestrator.sdk.flows import Flow
from orchestrator.sdk.interrupts import Interrupted, Scope, deferred
from orchestrator.sdk.pausing import FlowRunSuspended
from orchestrator.sdk.runner import ThreadTaskRunner
from orchestrator.sdk.states import FlowRunStopped as FlowRunStopped  # re-exported: where it used to live
from orchestrator.sdk.states import State
from orchestrator.sdk.tasks import exception_text, seconds_text, state_text, traceback_text

S = StateType
PENDING, RUNNING, SCHEDULED = S.PENDING, S.RUNNING, S.SCHEDULED
COMPLETED, FAILED, CRASHED = S.COMPLETED, S.FAILED, S.CRASHED
CANCELLING, CANCELLED = S.CANCELLING, S.CANCELLED
ALL_COMPLETED = "All states completed."


@dataclass
class Outcome:
    """How a flow run ended here. `stopped`: it was taken away (cancelled, crashed by someone
    else) and this process stopped without recording an outcome of its own."""

    state_type: str
    state_name: str
    message: str = ""
    result: Any = None
    error: BaseException | None = None
    stopped: bool = False
    retry: bool = True  # a failure may go on to AwaitingRetry (not after Ctrl-C)

    @property
    def exit_code(self) -> int:
        """The engine's exit code: 0 completed (or stopped quietly: the run's state tells the
        rest), 1 ended FAILED (or CRASHED) as recorded by the engine."""
        return 0 if self.state_type == COMPLETED or self.stopped else 1


class _DeferringClient:
    """The client, with interrupts held back during each call: a database query stopped
    halfway would leave the connection unusable (see interrupts.deferred)."""

    def __init__(self, client: OrchestratorClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with deferred():
                return method(*args, **kwargs)

        return call


class Heartbeat:
    """Heartbeats a run every `interval` seconds from a thread; calls `on_lost` (and stops)
    when the orchestrator answers that the run is no longer PENDING/RUNNING."""

    def __init__(self, client: OrchestratorClient, run_id: str, *, interval: float, on_lost: Callable[[], Any]) -> None:
        self.client = client
        self.run_id = run_id
        self.interval = interval
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    alive = self.client.heartbeat_flow_run(self.run_id)
                except Exception:  # a database hiccup: the next beat may get through
                    continue
                if not alive and not self._stop.is_set():
                    self.on_lost()
                    return
        finally:
            self.client.release_thread()

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)


class RunSession:
    """One flow run being run by this process: its client, loggers, log shipping, heartbeat."""

    def __init__(self, client: OrchestratorClient, run: FlowRunInfo, *, finish_cancel: bool) -> None:
        self.raw_client = client
        self.client: OrchestratorClient = _DeferringClient(client)  # type: ignore[assignment]  # a proxy with the client's methods, not a subclass
        self.run = run
        self.finish_cancel = finish_cancel  # no worker holds the run: finish a cancel here
        self.scope = Scope()
        self.engine_logger = logs.RunLogger(logs.ENGINE_LOGGER, label="orchestrator.engine", flow_run_id=run.id)
        self.logger = logs.RunLogger(logs.FLOW_RUN_LOGGER, label=f"Flow run '{run.name}'", flow_run_id=run.id)
        self._heartbeat: Heartbeat | None = None
        self._shipper: logs.LogShipper | None = None

    def run_guarded(self, body: Callable[[RunSession], Outcome]) -> Outcome:
        """Run `body` with logs shipped and the run heartbeated. When the run is taken away
        meanwhile (the heartbeat's interrupt, or a compare-and-swap lost to another actor),
        the body is stopped and the outcome says so."""
        outcome: Outcome | None = None
        reason = ""
        with logs.shipping(self.raw_client, self.run.id) as shipper:
            self._shipper = shipper
            try:
                with self.scope:
                    self._keep_heartbeat()
                    try:
                        outcome = body(self)
                    finally:
                        with deferred():
                            self._stop_heartbeat()
            except (Interrupted, StateConflict) as stop:
                # Once body returned, its outcome stands: an interrupt arriving this late is stale.
                reason = str(stop)
            except Exception as error:
                # The engine's own failure (or the orchestrator's): record it rather than leave
                # the run PENDING/RUNNING, then let it surface as a crash.
                if outcome is None:
                    self._record_crash(error)
                raise
            if outcome is None:
                outcome = self.stopped(reason)
        return outcome

    def set_state(
        self, state_type: str, *, expected: str, name: str | None = None, message: str = "", retry: bool = True
    ) -> FlowRunInfo:
        """Move the run (StateConflict when someone else moved it first). The heartbeat runs
        exactly while the run is PENDING or RUNNING: it stops before any other move, so its
        "no longer running" can only mean someone else's move. A final state is recorded only
        once the run's logs are stored, so whoever sees the run ended sees all of its logs."""
        if state_type in TERMINAL:
            self.flush_logs()
        if state_type not in (PENDING, RUNNING):
            self._stop_heartbeat()
        self.run = self.client.set_flow_run_state(
            self.run.id, state_type, expected=expected, name=name, message=message, retry=retry
        )
        self._keep_heartbeat()
        return self.run

    def flush_logs(self) -> None:
        """Wait until the lines logged so far are stored (up to logs.FINAL_FLUSH_SECONDS)."""
        if self._shipper is not None:
            with deferred():
                self._shipper.flush(logs.FINAL_FLUSH_SECONDS)

    def fail_before_start(
        self, message: str, error: BaseException | None = None, *, show_traceback: bool = False
    ) -> Outcome:
        """The run cannot start (pull step, import, parameters): PENDING -> FAILED."""
        if show_traceback and error is not None:
            self.engine_logger.error("%s\n%s", message, traceback_text(error))
        else:
            self.engine_logger.error("%s", message)
        self.logger.info("Finished in state %s", state_text("Failed", message))
        self.set_state(FAILED, expected=PENDING, message=message)
        return Outcome(self.run.state_type, self.run.state_name, message, error=error)

    def _keep_heartbeat(self) -> None:
        if self.run.state_type in (PENDING, RUNNING) and self._heartbeat is None:
            from django.conf import settings

            self._heartbeat = Heartbeat(
                self.raw_client, self.run.id, interval=settings.RUN_HEARTBEAT_SECONDS, on_lost=self._lost
            )

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def _lost(self) -> None:
        self.scope.interrupt("The flow run is no longer running.")

    def stopped(self, reason: str = "") -> Outcome:
        """The run was taken away: finish a cancellation when no worker holds the run, and
        report how it stands. A run still PENDING/RUNNING was stopped for `reason`: FAILED."""
        with deferred():
            self._stop_heartbeat()
            run = self.client.read_flow_run(self.run.id)
            if run.state_type in (PENDING, RUNNING):
                # Stopped for a reason of its own (a task run ended under it): a failure.
                self.run = run
                return self.fail_before_start(reason) if run.state_type == PENDING else self._fail_running(reason)
            if run.state_type == CANCELLING and self.finish_cancel:
                try:
                    run = self.client.set_flow_run_state(run.id, CANCELLED, expected=CANCELLING, message="Cancelled.")
                except StateConflict:
                    run = self.client.read_flow_run(self.run.id)
            self.run = run
            self.logger.warning("Stopped: the flow run is now %s.", state_text(run.state_name, run.state_message))
            return Outcome(run.state_type, run.state_name, run.state_message, stopped=True)

    def _record_crash(self, error: Exception) -> None:
        message = f"The engine failed: {exception_text(error)}"
        self.engine_logger.error("%s\n%s", message, traceback_text(error))
        try:
            with deferred():
                self._stop_heartbeat()
                run = self.client.read_flow_run(self.run.id)
                if run.state_type in (PENDING, RUNNING):
                    self.client.set_flow_run_state(
                        run.id, FAILED, expected=run.state_type, message=message, retry=False
                    )
        except Exception:  # the orchestrator is unreachable: the worker or the reaper will see to it
            pass

    def _fail_running(self, message: str) -> Outcome:
        self.logger.info("Finished in state %s", state_text("Failed", message))
        self.set_state(FAILED, expected=RUNNING, message=message, retry=False)
        return Outcome(self.run.state_type, self.run.state_name, message)


# --- attempts ---------------------------------------------------------------------------------


def run_attempts(
    session: RunSession, flow: Flow[..., Any], values: dict[str, Any], *, retry_in_process: bool
) -> Outcome:
    """Run a PENDING run's flow until it ends. A failure with retries left comes back as
    AwaitingRetry: with `retry_in_process` (scripts, `deployment execute`) it waits for the
    delay and runs again here; otherwise (a worker's run) it returns, and a worker claims
    the run again once the delay has passed."""
    if flow.retries is not None:
        session.client.set_flow_run_retries(
            session.run.id, retries=flow.retries, retry_delay_seconds=flow.retry_delay_seconds
        )
    while True:
        session.set_state(RUNNING, expected=PENDING, name="Retrying" if session.run.run_count else "Running")
        outcome = _persisted(session, flow, _run_body(session, flow, values))
        if outcome.stopped:  # suspended: the state is recorded, a worker runs it again once resumed
            return outcome
        # Its last line first: the final state is recorded once the logs are stored.
        session.logger.info("Finished in state %s", state_text(outcome.state_name, outcome.message))
        run = session.set_state(outcome.state_type, expected=RUNNING, message=outcome.message, retry=outcome.retry)
        if not (run.state_type == SCHEDULED and outcome.retry):
            outcome.state_type, outcome.state_name = run.state_type, run.state_name
            return outcome
        wait = max(0.0, ((run.next_scheduled_start_at or _now()) - _now()).total_seconds())
        attempt = f"retry {run.run_count} of {run.retries}"
        if not retry_in_process:
            session.logger.info("AwaitingRetry: a worker runs it again (%s) in %s.", attempt, seconds_text(wait))
            outcome.state_type, outcome.state_name = run.state_type, run.state_name
            return outcome
        session.logger.info("AwaitingRetry: running it again (%s) in %s.", attempt, seconds_text(wait))
        time.sleep(wait)
        session.set_state(PENDING, expected=SCHEDULED)


def _persisted(session: RunSession, flow: Flow[..., Any], outcome: Outcome) -> Outcome:
    """A completed run's result written to result storage (when the flow persists results),
    and its URL recorded on the run before the run is COMPLETED. A result that cannot be stored
    fails the run, saying why."""
    persist = flow.persist_result if flow.persist_result is not None else persist_by_default()
    if outcome.state_type != COMPLETED or not persist:
        return outcome
    try:
        uri = write_result(outcome.result, storage=flow.result_storage, name=f"flow-run-{session.run.id}")
    except ResultError as error:
        session.logger.error("%s", error)
        return Outcome(FAILED, "Failed", str(error), error=error, retry=False)
    session.client.record_flow_run_result(session.run.id, result_uri=uri)
    session.logger.info("Result persisted to %s", uri)
    return outcome


def _now() -> datetime:
    return datetime.now(UTC)


def _run_body(session: RunSession, flow: Flow[..., Any], values: dict[str, Any]) -> Outcome:
    """Call the flow function once, in a flow run context with its own task runner and its
    timeout, and wait for the task runs it submitted. The outcome to record: COMPLETED,
    FAILED with the exception, or CRASHED on Ctrl-C."""
    runner = (flow.task_runner or ThreadTaskRunner()).duplicate()
    context = FlowRunContext(
        flow=flow,
        run=session.run,
        client=session.client,
        logger=session.logger,
        runner=runner,
        log_prints=flow.log_prints,
    )
    session.logger.info("Using task runner '%s'", runner.name)
    token = flow_run_context.set(context)
    ended_cleanly = False
    try:
        runner.start(context)
        with (
            logs.prints_logged_to(session.logger if flow.log_prints else None),
            Scope(
                timeout=flow.timeout_seconds,
                timeout_message=f"Flow run exceeded its timeout of {seconds_text(flow.timeout_seconds or 0)}",
            ),
        ):
            args, kwargs = call_arguments(flow.fn, values)
            result = flow.fn(*args, **kwargs)
            waited = 0
            while waited < len(context.futures):  # tasks may submit more tasks meanwhile
                context.futures[waited].wait()
                waited += 1
        ended_cleanly = True
    except Exception as error:
        session.logger.error("Encountered exception during execution:\n%s", traceback_text(error))
        return Outcome(FAILED, "Failed", exception_text(error), error=error)
    except FlowRunSuspended as suspended:
        # The run is PAUSED/Suspended already; its process ends here, recording nothing more.
        return Outcome(S.PAUSED, SUSPENDED_STATE_NAME, str(suspended), stopped=True)
    except SystemExit as error:
        # sys.exit(3) in the flow: the flow's own way to fail, like an exception (FAILED,
        # retried as one), not a crash of what runs it.
        session.logger.error("The flow called sys.exit(%s)", error.code)
        return Outcome(FAILED, "Failed", exception_text(error), error=error)
    except KeyboardInterrupt as error:
        return Outcome(CRASHED, "Crashed", f"Interrupted: {exception_text(error)}", error=error, retry=False)
    finally:
        flow_run_context.reset(token)
        if not ended_cleanly:
            for scope in list(context.task_scopes):  # stop the task runs still running
                scope.interrupt("The flow run stopped.")
        runner.shutdown(wait=ended_cleanly)

    # A submitted task run that failed, and whose result nobody asked for, fails the flow run.
    failed = [f for f in context.futures if not f.retrieved and f.exception() is not None]
    if failed:
        names = ", ".join(f"'{f.task_run_name}'" for f in failed)
        message = f"{len(failed)} of {len(context.futures)} submitted task runs failed: {names}"
        return Outcome(FAILED, "Failed", message, error=failed[0].exception())
    return Outcome(COMPLETED, "Completed", ALL_COMPLETED, result=result)


# --- a flow called as a function --------------------------------------------------------------


def _call_values(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a call, by name (TypeError for a call that does not fit, as for any
    function). Extra keyword arguments of a **kwargs flow are parameters of their own."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    values: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if bound.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        else:
            values[name] = value
    return values


def run_flow_from_call(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, return_state: bool = False
) -> Any:
    """A flow called as a function: an ad-hoc flow run, run here (inside a flow run: a subflow
    run, see `_run_subflow`). Returns the flow's result; raises its exception (or
    ValidationError for bad parameters) once the run is recorded, or FlowRunStopped when the run
    was cancelled meanwhile. With `return_state` returns the final State and raises nothing."""
    values = _call_values(flow.fn, args, kwargs)
    parent = flow_run_context.get()
    if parent is not None:
        return _run_subflow(flow, values, parent, return_state=return_state)
    client = get_client()
    run = client.create_adhoc_flow_run(flow.name, description=flow.description, parameters=jsonable_parameters(values))
    session = RunSession(client, run, finish_cancel=True)
    created = f"Created flow run '{run.name}' for flow '{flow.name}'"
    outcome = session.run_guarded(lambda s: _start_and_run(s, flow, values, created))
    return _answer(session, outcome, return_state=return_state)


def _start_and_run(session: RunSession, flow: Flow[..., Any], values: dict[str, Any], created: str) -> Outcome:
    """PENDING, the parameters checked against the function, then the attempts."""
    session.engine_logger.info("%s", created)
    session.set_state(PENDING, expected=SCHEDULED)
    try:
        call_values = validate_call_parameters(flow.fn, values)
    except ValidationError as invalid:
        return session.fail_before_start(f"Invalid parameters: {invalid}", invalid)
    return run_attempts(session, flow, call_values, retry_in_process=True)


def _answer(session: RunSession, outcome: Outcome, *, return_state: bool) -> Any:
    """What the call of a flow gives back: its State, or its result (raising its failure)."""
    run = session.run
    state = State(
        type=outcome.state_type,
        name=outcome.state_name,
        message=outcome.message,
        flow_run_id=run.id,
        flow_run_name=run.name,
        result_uri=run.result_uri,
        _value=outcome.result,
        _error=outcome.error,
    )
    if return_state:
        return state
    return state.result()


# Placeholder task runs end as their subflow run ended.
_PLACEHOLDER_END: dict[str, str] = {
    COMPLETED: COMPLETED,
    FAILED: FAILED,
    CRASHED: CRASHED,
    CANCELLED: CANCELLED,
    CANCELLING: CANCELLED,
}


def _run_subflow(flow: Flow[..., Any], values: dict[str, Any], parent: FlowRunContext, *, return_state: bool) -> Any:
    """A flow called inside a flow run: a child run of the parent's run, with a task run in the
    parent standing for the call (RUNNING while the child runs, then ending as it ended). The
    child is run here, in this process, like an ad-hoc run; its final state decides the call."""
    client = parent.client
    key = parent.next_dynamic_key(f"subflow:{flow.name}")
    child = client.create_subflow_run(
        parent.run.id,
        flow.name,
        description=flow.description,
        parameters=jsonable_parameters(values),
        task_key=f"subflow.{flow.name}",
        dynamic_key=str(key),
    )
    parent.logger.info("Created subflow run '%s' for flow '%s'", child.name, flow.name)
    placeholder = _Placeholder(client, child.parent_task_run_id)
    session = RunSession(client, child, finish_cancel=True)

    def body(session: RunSession) -> Outcome:
        placeholder.move(RUNNING)
        return _start_and_run(session, flow, values, f"Running subflow run '{child.name}' of '{parent.run.name}'")

    try:
        outcome = session.run_guarded(body)
    finally:
        end = _PLACEHOLDER_END.get(session.run.state_type, FAILED)
        placeholder.move(end, message=session.run.state_message, result_uri=session.run.result_uri)
    return _answer(session, outcome, return_state=return_state)


class _Placeholder:
    """The task run standing for a subflow call in its parent."""

    def __init__(self, client: OrchestratorClient, task_run_id: str | None) -> None:
        self.client, self.id, self.state_type = client, task_run_id, str(PENDING)

    def move(self, to: str, *, message: str = "", result_uri: str = "") -> None:
        if self.id is None or self.state_type == to:
            return
        try:
            info = self.client.set_task_run_state(
                self.id, to, expected=self.state_type, message=message, result_uri=result_uri
            )
        except StateConflict:  # the parent ended meanwhile and crashed it
            return
        self.state_type = info.state_type
