"""Inserting flow runs: names, the first state and its history row, in one place for every way a
run is made (one at a time, in bulk with insert-ignore, ad hoc from a script). Runs of a
deployment get their fields (parameters, tags, queue) from deployments.services.runs."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from coolname import generate_slug
from django.db import transaction
from django.utils import timezone

from orchestrator.core.errors import ValidationError
from runs import hooks, wakeups
from runs.models import FlowRun, FlowRunState
from runs.services.state import S


def generate_run_name() -> str:
    """A readable, memorable run name: adjective-animal (e.g. 'certain-cormorant')."""
    return generate_slug(2)


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


def create_adhoc_flow_run(
    flow: Any, *, parameters: dict[str, Any] | None = None, name: str | None = None, created_by: str = "script"
) -> FlowRun:
    """A run of a flow called directly (a script), outside any deployment or pool."""
    with transaction.atomic():
        return insert_flow_run(flow_id=flow.pk, parameters=parameters or {}, name=name, created_by=created_by)


def insert_flow_run(*, flow_id: Any, name: str | None, scheduled_at: datetime | None = None, **fields: Any) -> FlowRun:
    run = new_flow_run(flow_id=flow_id, name=name, scheduled_at=scheduled_at, **fields)
    run.save(force_insert=True)
    _record_first_states([run])
    return run


def new_flow_run(*, flow_id: Any, name: str | None, scheduled_at: datetime | None = None, **fields: Any) -> FlowRun:
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
    wakeups.notify_pools(run.work_pool_id for run in runs)
