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
from django.db.models import F, JSONField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from runs import hooks
from runs.errors import InvalidTransition, NotFound, OrchestratorError, StateConflict, ValidationError
from runs.models import FlowRun, FlowRunState, Log, TaskRun, TaskRunState
from runs.states import (
    RETRY_STATE_NAME,
    STATE_NAMES,
    TASK_ALLOWED,
    TASK_STATE_NAMES,
    TERMINAL,
    StateType,
    default_name,
    is_allowed,
)

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
    The move must be allowed from it by runs.states.ALLOWED, else InvalidTransition names both
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
                "state_type", "state_name", "state_at", "state_message", "next_scheduled_start_at",
                "started_at", "ended_at", "run_count", "worker", "pid", "heartbeat_at", "updated_at",
            ]
        )
        change = hooks.StateChange(run.pk, expected, to, name, message, state_id=state.pk)
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


def _compare_and_swap(
    model: Any, pk: Any, *, expected: StateType, to: StateType, updates: dict[str, Any], noun: str,
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
    alive = FlowRun.objects.filter(pk=run_id, state_type__in=(S.PENDING, S.RUNNING)).update(
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
    the worker that holds it stops the process. Asking again while CANCELLING changes nothing.
    Raises InvalidTransition for a finished run."""
    if run.state_type == S.CANCELLING:
        return run
    if run.state_type in TERMINAL:
        raise InvalidTransition(run.state_type, S.CANCELLING, f"the run already ended as {run.state_name}")
    if run.state_type == S.SCHEDULED:
        return set_state(run, S.CANCELLED, message=f"Cancelled by {by}")
    return set_state(run, S.CANCELLING, message=f"Cancellation requested by {by}")


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
    job_variables: dict[str, Any] | None = None,
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
    if job_variables:
        from workpools.infrastructure.templates import check_for_pool

        # Checked against the pool's template: a run's job variables override the deployment's.
        fields["job_variables"] = check_for_pool(deployment.work_pool, job_variables)
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


def create_local_flow_run(
    deployment: Any, *, parameters: dict[str, Any] | None = None, created_by: str = "cli"
) -> FlowRun:
    """A run of `deployment` to execute right here (`deployment execute`), without a worker.

    It is created and moved to PENDING in one transaction, so a worker polling the deployment's
    pool never sees it SCHEDULED and cannot claim it first. Raises ValidationError for bad
    parameters, like create_flow_run."""
    with transaction.atomic():
        run, _ = create_flow_run(deployment, parameters=parameters, created_by=created_by)
        return set_state(run, S.PENDING, message="Executing locally, without a worker")


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
    # bulk_create returns the rows with their ids on PostgreSQL and SQLite (RETURNING): hooks
    # need the history row's id (automations fire once per history entry).
    states = FlowRunState.objects.bulk_create(
        [FlowRunState(flow_run_id=run.pk, type=S.SCHEDULED, name="Scheduled", timestamp=run.state_at) for run in runs]
    )
    for run, state in zip(runs, states):
        change = hooks.StateChange(run.pk, None, S.SCHEDULED, "Scheduled", "", state_id=state.pk)
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


# --- task runs ------------------------------------------------------------------------------

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
                flow_run_id=flow_run_id, name=name[:200], task_key=task_key[:200], dynamic_key=dynamic_key[:50],
                tags=list(tags or []), state_type=S.PENDING, state_name="Pending", state_at=now,
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
) -> TaskRun:
    """Move `task_run` to state `to` along runs.states.TASK_ALLOWED (the only writer of task
    run state).

    Like set_state it is a compare-and-swap on `expected` (default: `task_run.state_type`):
    StateConflict when someone moved it first (a flow run that ended crashes its unfinished
    task runs while a thread may still be finishing one), InvalidTransition for a move the
    table forbids. Entering RUNNING counts a run (and sets started_at the first time); a
    terminal state sets ended_at. `result` (any JSON, None included) is stored with it, and
    with a `cache_key` (until `cache_expires_at`, or for ever) find_cached_task_run serves it.
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
                "state_type", "state_name", "state_at", "state_message", "started_at", "ended_at", "run_count",
                "result", "cache_expires_at",
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
    found = TaskRun.objects.filter(cache_key=cache_key, state_type=S.COMPLETED, result__isnull=False)
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


# --- logs -----------------------------------------------------------------------------------

LOG_FIELDS = ("flow_run_id", "task_run_id", "level", "logger", "message", "timestamp")


def write_logs(records: list[dict[str, Any]]) -> int:
    """Store a batch of log records (dicts with LOG_FIELDS) in as few INSERTs as the database
    allows. Engines ship their logs in batches through this, never one line per round trip.
    Raises ValidationError for a record without a flow run or a timestamp, or naming a task run
    that is not one of its flow run's (one query checks them all)."""
    for record in records:
        missing = [f for f in ("flow_run_id", "timestamp") if not record.get(f)]
        if missing:
            raise ValidationError(f"A log record needs {' and '.join(missing)}.", {f: ["This field is required."] for f in missing})
    _check_task_runs_of_logs(records)
    rows = [
        Log(
            flow_run_id=record["flow_run_id"],
            task_run_id=record.get("task_run_id"),
            level=int(record.get("level", 20)),
            logger=str(record.get("logger", ""))[:200],
            message=str(record.get("message", "")),
            timestamp=record["timestamp"],
        )
        for record in records
    ]
    Log.objects.bulk_create(rows)
    return len(rows)


def _check_task_runs_of_logs(records: list[dict[str, Any]]) -> None:
    task_run_ids = {str(r["task_run_id"]) for r in records if r.get("task_run_id")}
    if not task_run_ids:
        return
    owners = {
        str(pk): str(flow_run_id)
        for pk, flow_run_id in TaskRun.objects.filter(pk__in=task_run_ids).values_list("pk", "flow_run_id")
    }
    for record in records:
        task_run_id = record.get("task_run_id")
        if task_run_id and owners.get(str(task_run_id)) != str(record["flow_run_id"]):
            raise ValidationError(
                f"Task run {task_run_id} is not a task run of flow run {record['flow_run_id']}.",
                {"task_run": [f"No task run {task_run_id} in this flow run."]},
            )
