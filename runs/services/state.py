"""Flow-run state: `set_state`, the only writer of a run's state, and the small facts kept beside it
(heartbeats, process, retries, cancellation)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import audit
from orchestrator.core.errors import InvalidTransition, NotFound, OrchestratorError, StateConflict, ValidationError
from orchestrator.core.states import (
    ACTIVE,
    RETRY_STATE_NAME,
    STATE_NAMES,
    SUSPENDED_STATE_NAME,
    TERMINAL,
    StateType,
    default_name,
    is_allowed,
)
from runs import hooks, wakeups
from runs.models import FlowRun, FlowRunState

S = StateType


def set_state(
    run: FlowRun,
    to: StateType | str,
    *,
    name: str | None = None,
    message: str = "",
    expected: StateType | str | None = None,
    scheduled_at: datetime | None = None,
    worker: Any = None,
    retry: bool = True,
    only_if: Q | None = None,
) -> FlowRun:
    """Move `run` to state `to` (the only writer of run state).

    `expected` is the state the caller believes the run is in (default: `run.state_type`).
    The move must be allowed from it by orchestrator.core.states.ALLOWED, else InvalidTransition names both
    states. The write is a compare-and-swap (UPDATE ... WHERE id=... AND state_type=expected):
    when two actors race, exactly one wins and the other gets StateConflict naming the state it
    found. In the same transaction it appends the history row and keeps the denormalised fields
    (state, start/end time, run count) in step; hooks fire after commit, once per state entered.

    Entering FAILED or CRASHED on a run with retries left is followed, in the same transaction,
    by SCHEDULED/AwaitingRetry after the run's retry delay (pass retry=False to prevent that).
    `scheduled_at` sets when a SCHEDULED run may be claimed; `worker` records the claimer on
    PENDING. `only_if` adds a condition to the compare-and-swap (the reaper uses it so a
    heartbeat that lands after it looked saves the run); when it fails, StateConflict.
    Returns `run`, updated in place.
    """
    to = StateType(to)
    expected = StateType(expected or run.state_type)
    name = name or default_name(to)
    if name not in STATE_NAMES[to]:
        allowed_names = ", ".join(STATE_NAMES[to])
        raise OrchestratorError(f"{name!r} is not a name of state {to} (use one of: {allowed_names}).")
    if not is_allowed(expected, to):
        raise InvalidTransition(expected, to)
    if to == S.SCHEDULED and expected in (S.FAILED, S.CRASHED):
        if name != RETRY_STATE_NAME:
            raise InvalidTransition(expected, to, f"only {RETRY_STATE_NAME} may follow {expected}")
        if not run.retries_left:
            raise InvalidTransition(expected, to, f"the run has no retries left ({run.retries} allowed)")

    now = timezone.now()
    updates: dict[str, Any] = {
        "state_type": to,
        "state_name": name,
        "state_at": now,
        "state_message": message,
        "updated_at": now,
    }
    if to == S.SCHEDULED:
        if scheduled_at is not None:
            updates["next_scheduled_start_at"] = scheduled_at
        if expected != S.SCHEDULED:  # back for a retry: the next attempt starts afresh
            updates.update(worker=None, pid=None, ended_at=None, heartbeat_at=None)
    elif to == S.PENDING:
        if worker is not None:
            updates["worker"] = worker
        updates["heartbeat_at"] = now
    elif to == S.RUNNING and expected == S.PENDING:
        updates["run_count"] = F("run_count") + 1
        updates["started_at"] = Coalesce(F("started_at"), now)
        updates["heartbeat_at"] = now
    if to in TERMINAL:
        updates["ended_at"] = now

    with transaction.atomic():
        _compare_and_swap(FlowRun, run.pk, expected=expected, to=to, updates=updates, noun="flow run", only_if=only_if)
        state = FlowRunState.objects.create(flow_run_id=run.pk, type=to, name=name, timestamp=now, message=message)
        run.refresh_from_db(
            fields=[
                "state_type",
                "state_name",
                "state_at",
                "state_message",
                "next_scheduled_start_at",
                "started_at",
                "ended_at",
                "run_count",
                "worker",
                "pid",
                "heartbeat_at",
                "updated_at",
            ]
        )
        change = hooks.StateChange(run.pk, expected, to, name, message, state_id=state.pk)
        transaction.on_commit(partial(hooks.fire, run, change))
        if to == S.SCHEDULED or (to in TERMINAL and expected in ACTIVE):
            # A run to claim, or a slot freed for one: wake the pool's idle workers.
            wakeups.notify_pools([run.work_pool_id])

        if retry and to in (S.FAILED, S.CRASHED) and run.retries_left:
            delay = timedelta(seconds=run.retry_delay_seconds)
            attempt = run.run_count
            set_state(
                run,
                S.SCHEDULED,
                name=RETRY_STATE_NAME,
                message=f"Retry {attempt} of {run.retries} after: {message}".strip(),
                expected=to,
                scheduled_at=now + delay,
            )
    return run


def _compare_and_swap(
    model: Any,
    pk: Any,
    *,
    expected: StateType,
    to: StateType,
    updates: dict[str, Any],
    noun: str,
    only_if: Q | None = None,
) -> None:
    """UPDATE ... SET updates WHERE id=pk AND state_type=expected [AND only_if]. Raises
    StateConflict naming the state it found when another actor moved the row first (or the
    extra condition no longer holds), NotFound when it is gone."""
    target = model.objects.filter(pk=pk, state_type=expected)
    if only_if is not None:
        target = target.filter(only_if)
    if target.update(**updates):
        return
    # Nothing got updated: another actor changed the state first (or the row is gone).
    actual = model.objects.filter(pk=pk).values_list("state_type", flat=True).first()
    if actual is None:
        raise NotFound(f"{noun.capitalize()} {pk} no longer exists.")
    raise StateConflict(expected, actual, to, subject=f"A {noun}")


def record_run_heartbeat(run_id: Any) -> bool:
    """The run's process is alive. Returns False when the run is no longer PENDING/RUNNING
    (cancelled, crashed by the reaper, ...), which tells the process to stop."""
    # A Paused run's process waits for its resume: alive too.
    alive = FlowRun.objects.filter(pk=run_id, state_type__in=(S.PENDING, S.RUNNING, S.PAUSED)).update(
        heartbeat_at=timezone.now()
    )
    return bool(alive)


def record_run_process(run: FlowRun, *, pid: int, hostname: str) -> None:
    """Where the run's process lives, so a restarted worker can find it again."""
    FlowRun.objects.filter(pk=run.pk).update(pid=pid, hostname=hostname)
    run.pid, run.hostname = pid, hostname


def set_flow_run_retries(run: FlowRun, *, retries: int, retry_delay_seconds: float) -> FlowRun:
    """Set how often a failed run is tried again and after what delay (the engine applies a
    flow's `@flow(retries=..., retry_delay_seconds=...)` when the run starts). set_state reads
    them when the run fails. Raises ValidationError for negative values."""
    if retries < 0 or retry_delay_seconds < 0:
        raise ValidationError(
            "Retries and the retry delay cannot be negative.",
            {"retries" if retries < 0 else "retry_delay_seconds": ["Must be zero or more."]},
        )
    delay = int(round(retry_delay_seconds))
    FlowRun.objects.filter(pk=run.pk).update(retries=retries, retry_delay_seconds=delay, updated_at=timezone.now())
    run.retries, run.retry_delay_seconds = retries, delay
    return run


def request_cancellation(run: FlowRun, *, by: str) -> FlowRun:
    """Stop a run: SCHEDULED -> CANCELLED at once; PENDING/RUNNING/PAUSED -> CANCELLING, and
    the worker that holds it stops the process; its subflow runs are cancelled too. Asking
    again while CANCELLING changes nothing.
    Raises InvalidTransition for a finished run."""
    if run.state_type == S.CANCELLING:
        return run
    if run.state_type in TERMINAL:
        raise InvalidTransition(run.state_type, S.CANCELLING, f"the run already ended as {run.state_name}")
    before = {"state": run.state_type}
    with transaction.atomic():
        if run.state_type == S.SCHEDULED or (run.state_type == S.PAUSED and run.state_name == SUSPENDED_STATE_NAME):
            set_state(run, S.CANCELLED, message=f"Cancelled by {by}")  # no process to stop
        else:
            set_state(run, S.CANCELLING, message=f"Cancellation requested by {by}")
        audit.record("flow_run.cancel", run, before=before, after={"state": run.state_type})
    _cancel_children(run, by=by)
    return run


def _cancel_children(run: FlowRun, *, by: str) -> None:
    """Cancelling a parent cancels its unfinished subflow runs (and theirs), each through
    request_cancellation; a child that moved meanwhile is left to its own end."""
    for child in FlowRun.objects.filter(parent_flow_run=run).unfinished():
        try:
            request_cancellation(child, by=f"{by} (its parent {run.name!r} was cancelled)")
        except (InvalidTransition, StateConflict):
            continue


def find_flow_run(id_or_name: str) -> FlowRun:
    """A flow run by id, or by name (NotFound; ValidationError when several share the name)."""
    import uuid

    runs = FlowRun.objects.with_related()
    try:
        return runs.get(pk=uuid.UUID(str(id_or_name)))
    except (ValueError, FlowRun.DoesNotExist):
        pass
    named = list(runs.filter(name=id_or_name)[:2])
    if not named:
        raise NotFound(f"No flow run with the id or name {id_or_name!r}.")
    if len(named) > 1:
        raise ValidationError(f"Several flow runs are named {id_or_name!r}; give its id.")
    return named[0]
