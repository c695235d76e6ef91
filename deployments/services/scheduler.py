"""The scheduler: inserts every active schedule's upcoming runs, idempotently (a unique key per
(deployment, schedule slug, slot) and insert-ignore), so two beats never make a duplicate."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from deployments import schedule_times
from deployments.models import CatchUp, DeploymentSchedule, SchedulerPass
from deployments.services.runs import build_flow_runs
from runs.models import FlowRun
from runs.services import insert_flow_runs
from workpools.models import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """How far ahead the scheduler keeps runs (settings SCHEDULER_*)."""

    min_runs: int
    min_ahead: timedelta
    max_runs: int
    horizon: timedelta

    @classmethod
    def from_settings(cls) -> Window:
        return cls(
            min_runs=settings.SCHEDULER_MIN_RUNS,
            min_ahead=timedelta(seconds=settings.SCHEDULER_MIN_AHEAD_SECONDS),
            max_runs=settings.SCHEDULER_MAX_RUNS,
            horizon=timedelta(days=settings.SCHEDULER_HORIZON_DAYS),
        )


def schedule_deployments(
    *, deployment_ids: Iterable[Any] | None = None, now: datetime | None = None, batch_size: int = 500
) -> int:
    """The scheduler tick: make the upcoming runs of every active schedule of every unpaused
    deployment (or only of `deployment_ids`). Returns how many runs it created.

    Per schedule it keeps the runs of the next fire times (Window: at least 3 and an hour ahead,
    at most 100, within the horizon), and fire times missed since its last pass, by the
    schedule's catch-up policy: skip them, run once (the latest), or run each (the latest
    `catchup_max_runs`, none older than the horizon). A schedule that cannot be expanded (bad
    parameters for the deployment's current schema, say) is logged and skipped.

    Concurrency: safe to run any number of times at once. Each run's row is unique per
    (deployment, schedule slug, fire time) and inserted with insert-ignore, so two ticks never
    make a duplicate. Each batch of schedules is locked with their deployments (PostgreSQL: FOR
    NO KEY UPDATE SKIP LOCKED; SQLite: the write lock) while its runs are inserted, so an edit
    or a pause either waits and then deletes what the tick made, or went first and is seen.
    """
    began = time.monotonic()
    now = now or timezone.now()
    window = Window.from_settings()
    schedules = DeploymentSchedule.objects.filter(active=True, deployment__paused=False)
    if deployment_ids is not None:
        schedules = schedules.filter(deployment_id__in=list(deployment_ids))
    ids = list(schedules.order_by("pk").values_list("pk", flat=True))
    created = 0
    for start in range(0, len(ids), batch_size):
        created += _schedule_batch(ids[start : start + batch_size], now, window)
    if deployment_ids is None:  # a full pass: what /metrics reports as the scheduler's
        SchedulerPass.objects.update_or_create(
            name="scheduler",
            defaults={
                "finished_at": timezone.now(),
                "duration_seconds": time.monotonic() - began,
                "runs_created": created,
            },
        )
    return created


def _schedule_batch(ids: list[Any], now: datetime, window: Window) -> int:

    with transaction.atomic():
        batch = list(
            DeploymentSchedule.objects.filter(pk__in=ids, active=True, deployment__paused=False)
            .select_related("deployment", "deployment__work_queue")
            # Skip what another tick or an edit holds: that tick does it, or the edit's own
            # task follows its commit.
            .select_for_update(skip_locked=True, no_key=True, of=("self", "deployment"))
        )
        pool_ids = {s.deployment.work_pool_id for s in batch if s.deployment.work_pool_id}
        queues = list(WorkQueue.objects.filter(pool_id__in=pool_ids)) if pool_ids else []
        runs: list[FlowRun] = []
        moved: list[DeploymentSchedule] = []
        for schedule in batch:
            try:
                times, through = _fire_times_to_schedule(schedule, now, window)
                runs += _build_runs(schedule, times, queues)
            except Exception:
                log.exception("Cannot schedule %s (schedule %s); skipping it.", schedule.deployment, schedule.slug)
                continue
            if through != schedule.scheduled_through_at:
                schedule.scheduled_through_at = through
                moved.append(schedule)
        created = insert_flow_runs(runs)
        _save_progress(moved)
    return len(created)


def _save_progress(schedules: list[DeploymentSchedule]) -> None:
    """Write each schedule's new progress mark. On PostgreSQL in one UPDATE joined to the
    values: bulk_update's CASE WHEN grows with the square of the batch (10,000 schedules took
    seconds); SQLite, the single-host default, keeps bulk_update."""
    if not schedules:
        return
    if connection.vendor != "postgresql":
        DeploymentSchedule.objects.bulk_update(schedules, ["scheduled_through_at"], batch_size=500)
        return
    table = connection.ops.quote_name(DeploymentSchedule._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS s SET scheduled_through_at = v.through "  # noqa: S608 - names are ours
            "FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(id, through) WHERE s.id = v.id",
            [[s.pk for s in schedules], [s.scheduled_through_at for s in schedules]],
        )


def _build_runs(schedule: DeploymentSchedule, times: list[datetime], queues: list[Any]) -> list[FlowRun]:
    if not times:
        return []
    return build_flow_runs(
        schedule.deployment,
        times,
        parameters=schedule.parameters,
        queues=queues,
        created_by=f"schedule:{schedule.slug}",
        schedule_slug=schedule.slug,
    )


def _fire_times_to_schedule(
    schedule: DeploymentSchedule, now: datetime, window: Window
) -> tuple[list[datetime], datetime]:
    """The fire times to make runs for, and the schedule's new progress mark. Fire times up to
    the mark have runs already (or were skipped), so only later ones are returned; the unique
    constraint makes a stale mark harmless."""
    spec = schedule.spec
    upcoming = schedule_times.upcoming_fire_times(
        spec,
        now,
        min_runs=window.min_runs,
        min_ahead=window.min_ahead,
        max_runs=window.max_runs,
        horizon=window.horizon,
    )
    through = schedule.scheduled_through_at
    missed: list[datetime] = []
    if through is not None and through < now and schedule.catchup != CatchUp.SKIP:
        last = 1 if schedule.catchup == CatchUp.ONCE else schedule.catchup_max_runs
        missed = schedule_times.fire_times_between(spec, max(through, now - window.horizon), now, last=last)
    fresh = [moment for moment in upcoming if through is None or moment > through]
    new_through = max([now, *upcoming[-1:], *([through] if through else [])])
    return missed + fresh, new_through
