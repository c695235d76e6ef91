"""Pausing a flow run for a person's input (Prefect: `pause_flow_run`, `suspend_flow_run`).

    class Approval(pydantic.BaseModel):
        approved: bool
        reviewer: str

    answer = pause_flow_run(wait_for_input=Approval, timeout=600)   # the process waits
    answer = suspend_flow_run(wait_for_input=Approval, timeout=86400)  # the process exits

The run page shows a form generated from the model; the API takes the input at
POST /api/flow-runs/<id>/resume/ {"input": {...}}. Both return the model built from the input
(None without `wait_for_input`). A pause that times out fails the run with a message.

A suspended run has no process: resuming it makes it SCHEDULED, a worker runs the flow again
from its start, and the same `suspend_flow_run` call (the n-th pause of the flow, or the same
`key`) returns the input at once. Work before it runs again, so put it in cached tasks.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.client import RunInputInfo
from orchestrator.core.errors import StateConflict
from orchestrator.core.states import StateType
from orchestrator.sdk.context import FlowRunContext, MissingContextError, flow_run_context, task_run_context

S = StateType
DEFAULT_TIMEOUT_SECONDS = 3600


class FlowRunSuspended(BaseException):
    """The flow run was suspended: its process stops here (a BaseException, so `except
    Exception` in the flow does not swallow it)."""


class PauseTimeout(TimeoutError):
    """Nobody resumed the paused run in time."""


def _context(what: str) -> FlowRunContext:
    context = flow_run_context.get()
    if context is None or task_run_context.get() is not None:
        raise MissingContextError(f"{what}() works only in a flow's own code (not in a task).")
    return context


def _typed(model: Any, info: RunInputInfo) -> Any:
    if model is None:
        return None
    return model.model_validate(info.value)


def _pause(
    what: str, model: Any, timeout: float, key: str | None, *, suspend: bool
) -> tuple[FlowRunContext, RunInputInfo]:
    context = _context(what)
    key = key or f"pause-{context.next_dynamic_key('__pause__')}"
    schema = model.model_json_schema() if model is not None else None
    info = context.client.pause_flow_run(
        context.run.id,
        key=key,
        schema=schema,
        timeout_seconds=timeout,
        suspend=suspend,
        description=(model.__doc__ or "").strip() if model is not None else "",
    )
    return context, info


def pause_flow_run(
    wait_for_input: Any = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    key: str | None = None,
    poll_interval: float = 1.0,
) -> Any:
    """Pause this flow run (PAUSED) until someone resumes it, with input when `wait_for_input`
    (a pydantic model class) is given; returns that input as the model. Raises PauseTimeout
    (failing the run) when `timeout` seconds pass first."""
    context, info = _pause("pause_flow_run", wait_for_input, timeout, key, suspend=False)
    if info.provided:
        return _typed(wait_for_input, info)
    what = f"input ({wait_for_input.__name__})" if wait_for_input is not None else "a resume"
    context.logger.info("Paused: waiting up to %g s for %s.", timeout, what)
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())) or 0.01)
        info = context.client.read_flow_run_input(context.run.id, key=info.key)
        if info.provided and info.state_type == S.RUNNING:
            context.logger.info("Resumed.")
            return _typed(wait_for_input, info)
        if info.state_type != S.PAUSED:  # failed by the orchestrator's timeout sweep, cancelled
            raise PauseTimeout(f"The flow run stopped waiting: it is {info.state_name}.")
        if time.monotonic() >= deadline:
            try:
                context.client.set_flow_run_state(
                    context.run.id, S.RUNNING, expected=S.PAUSED, message="Its pause timed out."
                )
            except StateConflict:
                continue  # resumed (or cancelled) at the last moment: look again
            raise PauseTimeout(f"The flow run was paused for {timeout:g} s without {what}.")


def suspend_flow_run(
    wait_for_input: Any = None, timeout: float = DEFAULT_TIMEOUT_SECONDS, key: str | None = None
) -> Any:
    """Suspend this deployment run (PAUSED/Suspended) and stop its process; once resumed (with
    input when `wait_for_input` is given) a worker runs the flow again, and this call then
    returns the input as the model. A suspension nobody resumes within `timeout` fails the run."""
    context, info = _pause("suspend_flow_run", wait_for_input, timeout, key, suspend=True)
    if info.provided:
        return _typed(wait_for_input, info)
    what = f"input ({wait_for_input.__name__})" if wait_for_input is not None else "a resume"
    context.logger.info(
        "Suspended: waiting up to %g s for %s; a worker runs the flow again once resumed.", timeout, what
    )
    raise FlowRunSuspended(f"Suspended, waiting for {what}.")
