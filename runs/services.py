"""The business rules of flow runs. Every surface (API, dashboard, admin, commands, worker,
engine, Celery tasks) calls these functions; none of them writes run state on its own."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from coolname import generate_slug
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from runs import hooks
from runs.errors import InvalidTransition, OrchestratorError, StateConflict, ValidationError
from runs.models import FlowRun, FlowRunState, Log
from runs.states import RETRY_STATE_NAME, STATE_NAMES, TERMINAL, StateType, default_name, is_allowed

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
) -> FlowRun:
    """Move `run` to state `to` (the only writer of run state).

    `expected` is the state the caller believes the run is in (default: `run.state_type`).
    The move must be allowed from it by runs.states.ALLOWED, else InvalidTransition names both
    states. The write is a compare-and-swap (UPDATE ... WHERE id=... AND state_type=expected):
    when two actors race, exactly one wins and the other gets StateConflict naming the state it
    found. In the same transaction it appends the history row and keeps the denormalised fields
    (state, start/end time, run count) in step; hooks fire after commit, once per state entered.

    Entering FAILED or CRASHED on a run with retries left is followed, in the same transaction,
    by SCHEDULED/AwaitingRetry after the run's retry delay (pass retry=False to prevent that).
    `scheduled_at` sets when a SCHEDULED run may be claimed; `worker` records the claimer on
    PENDING. Returns `run`, updated in place.
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
        moved = FlowRun.objects.filter(pk=run.pk, state_type=expected).update(**updates)
        if not moved:
            # Nothing got updated: another actor changed the state first (or the run is gone).
            actual = FlowRun.objects.filter(pk=run.pk).values_list("state_type", flat=True).first()
            if actual is None:
                raise OrchestratorError(f"Flow run {run.pk} no longer exists.")
            raise StateConflict(expected, actual, to)
        FlowRunState.objects.create(flow_run_id=run.pk, type=to, name=name, timestamp=now, message=message)
        run.refresh_from_db(
            fields=[
                "state_type", "state_name", "state_at", "state_message", "next_scheduled_start_at",
                "started_at", "ended_at", "run_count", "worker", "pid", "heartbeat_at", "updated_at",
            ]
        )
        change = hooks.StateChange(run.pk, expected, to, name, message)
        transaction.on_commit(partial(hooks.fire, run, change))

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


def record_run_heartbeat(run_id: Any) -> bool:
    """The run's process is alive. Returns False when the run is no longer PENDING/RUNNING
    (cancelled, crashed by the reaper, ...), which tells the process to stop."""
    alive = FlowRun.objects.filter(pk=run_id, state_type__in=(S.PENDING, S.RUNNING)).update(
        heartbeat_at=timezone.now()
    )
    return bool(alive)


def request_cancellation(run: FlowRun, *, by: str) -> FlowRun:
    """Stop a run: SCHEDULED -> CANCELLED at once; PENDING/RUNNING/PAUSED -> CANCELLING, and
    the worker that holds it stops the process. Asking again while CANCELLING changes nothing.
    Raises InvalidTransition for a finished run."""
    if run.state_type == S.CANCELLING:
        return run
    if run.state_type in TERMINAL:
        raise InvalidTransition(run.state_type, S.CANCELLING, f"the run already ended as {run.state_name}")
    if run.state_type == S.SCHEDULED:
        return set_state(run, S.CANCELLED, message=f"Cancelled by {by}")
    return set_state(run, S.CANCELLING, message=f"Cancellation requested by {by}")


def generate_run_name() -> str:
    """A readable, memorable run name: adjective-animal (e.g. 'certain-cormorant')."""
    return generate_slug(2)


def create_flow_run(
    deployment: Any,
    *,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    scheduled_at: datetime | None = None,
    idempotency_key: str | None = None,
    created_by: str = "",
) -> tuple[FlowRun, bool]:
    """Create a SCHEDULED run of `deployment`. Returns (run, created).

    Parameters are the deployment's defaults overlaid with the caller's and checked against the
    deployment's parameter schema (ValidationError with a message per parameter). The run is
    routed to the deployment's queue, else the best-matching queue of its pool. With an
    idempotency key, a repeat returns the existing run and created=False, also when two callers
    race: the database's unique (deployment, idempotency_key) constraint decides.
    """
    if idempotency_key:
        existing = FlowRun.objects.filter(deployment=deployment, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    fields = _deployment_run_fields(deployment, parameters=parameters, tags=tags)
    try:
        with transaction.atomic():
            run = _insert_run(
                name=name,
                scheduled_at=scheduled_at,
                idempotency_key=idempotency_key or None,
                created_by=created_by,
                **fields,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # Lost a race with a caller using the same key: theirs is the run.
        return FlowRun.objects.get(deployment=deployment, idempotency_key=idempotency_key), False
    return run, True


def build_flow_runs(
    deployment: Any,
    starts: Iterable[datetime],
    *,
    parameters: dict[str, Any] | None = None,
    queues: Iterable[Any] | None = None,
    created_by: str = "",
    **fields: Any,
) -> list[FlowRun]:
    """Unsaved SCHEDULED runs of `deployment`, one per start time, under the rules of
    create_flow_run applied once for all of them: parameters merged and checked against the
    schema (ValidationError), tags, routing (`queues`: the pool's queues when the caller has
    loaded them already). `fields` sets further columns (schedule_slug, ...). Save them with
    insert_flow_runs."""
    common = _deployment_run_fields(deployment, parameters=parameters, queues=queues)
    return [
        _new_run(name=None, scheduled_at=start, created_by=created_by, **common, **fields) for start in starts
    ]


def insert_flow_runs(runs: list[FlowRun]) -> list[FlowRun]:
    """Insert unsaved runs (from build_flow_runs) in bulk, skipping each one that a unique
    constraint says exists already (the same schedule slot, the same idempotency key), also when
    another process inserts it at the same moment: the database decides (PostgreSQL: ON CONFLICT
    DO NOTHING, waiting for the other transaction's outcome; SQLite: INSERT OR IGNORE under the
    write lock). Returns the runs inserted, each with its first history row written in the same
    transaction and its state hook queued for after commit, as create_flow_run does."""
    if not runs:
        return []
    with transaction.atomic():
        # SQLite's OR IGNORE would also swallow a NOT NULL or CHECK failure: build_flow_runs
        # makes complete rows, and PostgreSQL (ON CONFLICT DO NOTHING) would raise for them.
        FlowRun.objects.bulk_create(runs, ignore_conflicts=True)
        # Ids are made here (uuid4), so an id that is in the table now is a row we inserted.
        wanted = [run.pk for run in runs]
        inserted: set[Any] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            inserted.update(FlowRun.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        created = [run for run in runs if run.pk in inserted]
        _record_first_states(created)
    return created


def _deployment_run_fields(
    deployment: Any,
    *,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    queues: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """What every run of `deployment` takes from it: merged, schema-checked parameters, tags
    and the work queue it is routed to."""
    from deployments.services import resolve_parameters
    from workpools.services import route_to_queue

    return {
        "flow_id": deployment.flow_id,
        "deployment": deployment,
        "work_pool_id": deployment.work_pool_id,
        "work_queue": route_to_queue(deployment, queues=queues) if deployment.work_pool_id else None,
        "parameters": resolve_parameters(deployment, parameters or {}),
        "tags": list(dict.fromkeys([*(deployment.tags or []), *(tags or [])])),
    }


def create_adhoc_flow_run(
    flow: Any, *, parameters: dict[str, Any] | None = None, name: str | None = None, created_by: str = "script"
) -> FlowRun:
    """A run of a flow called directly (a script), outside any deployment or pool."""
    with transaction.atomic():
        return _insert_run(flow_id=flow.pk, parameters=parameters or {}, name=name, created_by=created_by)


def _insert_run(*, flow_id: Any, name: str | None, scheduled_at: datetime | None = None, **fields: Any) -> FlowRun:
    run = _new_run(flow_id=flow_id, name=name, scheduled_at=scheduled_at, **fields)
    run.save(force_insert=True)
    _record_first_states([run])
    return run


def _new_run(*, flow_id: Any, name: str | None, scheduled_at: datetime | None = None, **fields: Any) -> FlowRun:
    """An unsaved run in its first state, SCHEDULED."""
    if name is not None and not name.strip():
        raise ValidationError("A run name cannot be blank.", {"name": ["This field may not be blank."]})
    now = timezone.now()
    start = scheduled_at or now
    return FlowRun(
        flow_id=flow_id,
        name=name or generate_run_name(),
        state_type=S.SCHEDULED,
        state_name="Scheduled",
        state_at=now,
        expected_start_at=start,
        next_scheduled_start_at=start,
        **fields,
    )


def _record_first_states(runs: list[FlowRun]) -> None:
    """The history row of each new run's first state, and its hook after commit."""
    FlowRunState.objects.bulk_create(
        FlowRunState(flow_run_id=run.pk, type=S.SCHEDULED, name="Scheduled", timestamp=run.state_at) for run in runs
    )
    for run in runs:
        change = hooks.StateChange(run.pk, None, S.SCHEDULED, "Scheduled", "")
        transaction.on_commit(partial(hooks.fire, run, change))


def mark_late_runs(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Rename runs still SCHEDULED more than LATE_RUN_SECONDS past their start time to Late,
    through set_state (SCHEDULED -> SCHEDULED, name Late). Returns how many were renamed.

    Runs waiting for a retry keep their AwaitingRetry name. Concurrency: each batch locks its
    runs (SKIP LOCKED), so two passes never rename one run twice and a run a worker is claiming
    right now is left to the worker; set_state's compare-and-swap settles the rest."""
    now = now or timezone.now()
    threshold = float(settings.LATE_RUN_SECONDS)
    cutoff = now - timedelta(seconds=threshold)
    marked = 0
    while True:
        with transaction.atomic():
            late = list(
                FlowRun.objects.filter(
                    state_type=S.SCHEDULED, state_name="Scheduled", next_scheduled_start_at__lt=cutoff
                )
                .order_by("next_scheduled_start_at")
                .select_for_update(skip_locked=True)[:batch_size]
            )
            for run in late:
                try:
                    set_state(
                        run, S.SCHEDULED, name="Late", expected=S.SCHEDULED,
                        message=f"Not started {threshold:g} s after its scheduled time.",
                    )
                except StateConflict:
                    continue  # claimed meanwhile: it is not late any more
                marked += 1
        if len(late) < batch_size:
            return marked


def delete_old_runs(
    *, older_than: timedelta | None = None, now: datetime | None = None, batch_size: int = 1000
) -> int:
    """Delete finished runs that ended more than `older_than` ago (default: RUN_RETENTION_DAYS;
    0 keeps everything, the default), with their state history, task runs and logs. Returns
    how many runs were deleted.

    Works in batches, each its own short transaction, so a large backlog never holds long locks.
    Concurrency: a finished run changes state only by being retried as it fails, in the same
    transaction; candidates are locked (SKIP LOCKED) and re-read under the lock, so a run that
    left its finished state is never deleted."""
    if older_than is None:
        if not settings.RUN_RETENTION_DAYS:
            return 0
        older_than = timedelta(days=settings.RUN_RETENTION_DAYS)
    cutoff = (now or timezone.now()) - older_than
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                # expected_start_at narrows the scan through the (state, time) index: a run that
                # ended before the cutoff was due before it too (give or take a worker's prefetch).
                FlowRun.objects.filter(state_type__in=TERMINAL, ended_at__lt=cutoff, expected_start_at__lt=cutoff)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            # Logs first, in one statement: the biggest table, with nothing hanging off it.
            Log.objects.filter(flow_run_id__in=ids).delete()
            FlowRun.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
