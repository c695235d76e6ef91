"""Task runs: creation, their own state machine (a compare-and-swap like set_state's), cached
results, and crashing what an ended flow run left unfinished."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, JSONField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from orchestrator.core.errors import InvalidTransition, NotFound, OrchestratorError, StateConflict
from orchestrator.core.states import (
    TASK_ALLOWED,
    TASK_STATE_NAMES,
    TERMINAL,
    StateType,
)
from runs import hooks
from runs.models import FlowRun, TaskRun, TaskRunState
from runs.services.state import S, _compare_and_swap

_NO_RESULT: Any = object()


def create_task_run(
    flow_run_id: Any,
    *,
    name: str,
    task_key: str,
    dynamic_key: str = "",
    tags: list[str] | None = None,
) -> TaskRun:
    """Record a task run of flow run `flow_run_id`, PENDING, with its first history entry.
    Raises NotFound when the flow run does not exist."""
    now = timezone.now()
    try:
        with transaction.atomic():
            task_run = TaskRun.objects.create(
                flow_run_id=flow_run_id,
                name=name[:200],
                task_key=task_key[:200],
                dynamic_key=dynamic_key[:50],
                tags=list(tags or []),
                state_type=S.PENDING,
                state_name="Pending",
                state_at=now,
            )
            TaskRunState.objects.create(task_run=task_run, type=S.PENDING, name="Pending", timestamp=now)
    except IntegrityError:
        if not FlowRun.objects.filter(pk=flow_run_id).exists():
            raise NotFound(f"Flow run {flow_run_id} does not exist.") from None
        raise
    return task_run


def set_task_run_state(
    task_run: TaskRun,
    to: StateType | str,
    *,
    name: str | None = None,
    message: str = "",
    expected: StateType | str | None = None,
    result: Any = _NO_RESULT,
    cache_key: str = "",
    cache_expires_at: datetime | None = None,
    result_uri: str = "",
) -> TaskRun:
    """Move `task_run` to state `to` along orchestrator.core.states.TASK_ALLOWED (the only writer of task
    run state).

    Like set_state it is a compare-and-swap on `expected` (default: `task_run.state_type`):
    StateConflict when someone moved it first (a flow run that ended crashes its unfinished
    task runs while a thread may still be finishing one), InvalidTransition for a move the
    table forbids. Entering RUNNING counts a run (and sets started_at the first time); a
    terminal state sets ended_at. `result` (any JSON, None included) is stored with it, and
    with a `cache_key` (until `cache_expires_at`, or for ever) find_cached_task_run serves it;
    `result_uri` records where a persisted result is (which a cache hit then reads).
    Appends the history entry in the same transaction. Returns `task_run`, updated in place.
    """
    to = StateType(to)
    expected = StateType(expected or task_run.state_type)
    names = TASK_STATE_NAMES.get(to, ())
    name = name or (names[0] if names else "")
    if name not in names:
        raise OrchestratorError(f"{name!r} is not a task run state name of {to} (use one of: {', '.join(names)}).")
    if to not in TASK_ALLOWED.get(expected, frozenset()):
        raise InvalidTransition(expected, to, subject="A task run")

    now = timezone.now()
    updates: dict[str, Any] = {"state_type": to, "state_name": name, "state_at": now, "state_message": message}
    if to == S.RUNNING:
        updates["run_count"] = F("run_count") + 1
        updates["started_at"] = Coalesce(F("started_at"), now)
    if to in TERMINAL:
        updates["ended_at"] = now
    if result is not _NO_RESULT:
        # None is stored as JSON null, not SQL NULL, so a stored None still counts as a result.
        updates["result"] = Value(None, output_field=JSONField()) if result is None else result
    if result_uri:
        updates["result_uri"] = result_uri[:1000]
    if cache_key:
        updates["cache_key"] = cache_key[:500]
    if cache_expires_at is not None:
        updates["cache_expires_at"] = cache_expires_at

    with transaction.atomic():
        # Another actor may move it first: the flow run ending crashes its unfinished task runs.
        _compare_and_swap(TaskRun, task_run.pk, expected=expected, to=to, updates=updates, noun="task run")
        TaskRunState.objects.create(task_run_id=task_run.pk, type=to, name=name, timestamp=now, message=message)
        task_run.refresh_from_db(
            fields=[
                "state_type",
                "state_name",
                "state_at",
                "state_message",
                "started_at",
                "ended_at",
                "run_count",
                "result",
                "result_uri",
                "cache_expires_at",
            ]
        )
    return task_run


def find_cached_task_run(cache_key: str, *, now: datetime | None = None, pool: Any = None) -> TaskRun | None:
    """The latest COMPLETED task run that stored a result under `cache_key` and whose cache
    has not expired (no expiry: fresh for ever), or None. With `pool`, only task runs of flow
    runs in that work pool count (a worker key sees no other pool's results)."""
    if not cache_key:
        return None
    now = now or timezone.now()
    stored = Q(result__isnull=False) | ~Q(result_uri="")
    found = TaskRun.objects.filter(stored, cache_key=cache_key, state_type=S.COMPLETED)
    if pool is not None:
        found = found.filter(flow_run__work_pool=pool)
    return found.exclude(cache_expires_at__lte=now).order_by("-ended_at").first()


def crash_unfinished_task_runs(flow_run_id: Any, *, message: str) -> int:
    """Mark CRASHED every task run of `flow_run_id` that has not finished: its flow run ended
    (completed, failed, timed out, crashed, cancelled), so nothing will finish it. Returns how
    many it moved; one that finishes meanwhile keeps its own state (compare-and-swap)."""
    moved = 0
    for task_run in TaskRun.objects.filter(flow_run_id=flow_run_id).exclude(state_type__in=TERMINAL):
        try:
            set_task_run_state(task_run, S.CRASHED, message=message)
        except StateConflict:
            continue
        moved += 1
    return moved


@hooks.on_state_change
def _crash_task_runs_of_an_ended_flow_run(run: FlowRun, change: hooks.StateChange) -> None:
    if change.to_type in TERMINAL:
        crash_unfinished_task_runs(run.pk, message=f"Its flow run ended {change.to_name}.")
