"""Backfill: the runs a deployment's schedules would have made in a past window, made now.

Each run carries the schedule's own key (deployment, schedule slug, fire time), the key the
scheduler inserts with, so a second backfill of the same window, or the scheduler reaching
a fire time that a backfill made already, adds no duplicate: the database refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts import audit
from deployments import schedule_times
from deployments.models import Deployment, DeploymentSchedule
from deployments.services.runs import build_flow_runs
from orchestrator.core.errors import ValidationError
from runs.models import FlowRun
from runs.services import insert_flow_runs

# The default cap on the runs one backfill may make; a caller may raise it (--max).
DEFAULT_BACKFILL_MAX = 100
_MICROSECOND = timedelta(microseconds=1)
# Never more than this, whatever the caller asks: a typo in a window must not insert a million runs.
BACKFILL_HARD_MAX = 10_000


@dataclass(frozen=True)
class BackfillSlot:
    """One fire time of one schedule in the window, and whether a run for it exists already."""

    schedule_slug: str
    fire_at: datetime
    exists: bool


@dataclass
class BackfillResult:
    slots: list[BackfillSlot] = field(default_factory=list)
    created: list[FlowRun] = field(default_factory=list)
    dry_run: bool = False

    @property
    def missing(self) -> list[BackfillSlot]:
        return [slot for slot in self.slots if not slot.exists]


def backfill_deployment(
    deployment: Deployment,
    *,
    start: datetime,
    end: datetime,
    dry_run: bool = False,
    max_runs: int = DEFAULT_BACKFILL_MAX,
    schedule_slugs: list[str] | None = None,
    created_by: str = "backfill",
) -> BackfillResult:
    """Make the runs `deployment`'s active schedules (or only `schedule_slugs`) would have made
    for fire times in [start, end]. Each run is due at once (it may start now; the lateness
    policy does not cancel it) and keeps its fire time as expected start. `dry_run` lists the
    fire times and which exist already, and makes nothing.

    Raises ValidationError (nothing made) when the window is reversed, names a schedule
    the deployment lacks, the deployment has no active schedule, or the window holds more than
    `max_runs` runs to make (at most BACKFILL_HARD_MAX).

    Concurrency: idempotent. Runs are inserted with insert-ignore against the unique schedule
    slot, so two backfills at once, or a backfill racing the scheduler, make each run once.
    """
    errors: dict[str, list[str]] = {}
    if start.tzinfo is None or end.tzinfo is None:
        errors["start" if start.tzinfo is None else "end"] = ["Give a time zone (e.g. 2026-01-01T00:00:00Z)."]
    elif end < start:
        errors["end"] = ["The end must not come before the start."]
    if not isinstance(max_runs, int) or isinstance(max_runs, bool) or not 1 <= max_runs <= BACKFILL_HARD_MAX:
        errors["max_runs"] = [f"Between 1 and {BACKFILL_HARD_MAX}."]
    if errors:
        raise ValidationError(next(iter(errors.values()))[0], errors)

    schedules = list(DeploymentSchedule.objects.filter(deployment=deployment, active=True).order_by("slug"))
    if schedule_slugs:
        known = {s.slug for s in schedules}
        if unknown := [slug for slug in schedule_slugs if slug not in known]:
            raise ValidationError(
                f"{deployment.full_name} has no active schedule {unknown[0]!r} "
                f"(it has: {', '.join(sorted(known)) or 'none'}).",
                {"schedule": ["Unknown or inactive schedule."]},
            )
        schedules = [s for s in schedules if s.slug in schedule_slugs]
    if not schedules:
        raise ValidationError(
            f"{deployment.full_name} has no active schedule to backfill.", {"schedule": ["No active schedule."]}
        )

    # fire_times_between takes (start, end]; step back a microsecond to include `start` itself.
    after = start - _MICROSECOND
    per_schedule = {
        s.slug: schedule_times.fire_times_between(s.spec, after, end, last=BACKFILL_HARD_MAX + 1) for s in schedules
    }
    existing = set(
        FlowRun.objects.filter(
            deployment=deployment,
            schedule_slug__in=list(per_schedule),
            expected_start_at__gte=start,
            expected_start_at__lte=end,
        ).values_list("schedule_slug", "expected_start_at")
    )
    result = BackfillResult(dry_run=dry_run)
    for slug, times in per_schedule.items():
        result.slots += [BackfillSlot(slug, moment, (slug, moment) in existing) for moment in times]
    result.slots.sort(key=lambda slot: (slot.fire_at, slot.schedule_slug))
    if len(result.missing) > max_runs:
        raise ValidationError(
            f"The window holds {len(result.missing)} runs to make, more than the cap of {max_runs}; "
            "narrow the window or raise the cap.",
            {"max_runs": [f"{len(result.missing)} runs to make."]},
        )
    if dry_run or not result.missing:
        return result

    now = timezone.now()
    with transaction.atomic():
        runs: list[FlowRun] = []
        by_slug = {s.slug: s for s in schedules}
        queues = list(deployment.work_pool.queues.all()) if deployment.work_pool is not None else None
        for slug in per_schedule:
            times = [slot.fire_at for slot in result.missing if slot.schedule_slug == slug]
            built = build_flow_runs(
                deployment,
                times,
                parameters=by_slug[slug].parameters,
                queues=queues,
                created_by=created_by,
                schedule_slug=slug,
            )
            for run in built:
                run.next_scheduled_start_at = max(run.expected_start_at, now)
            runs += built
        result.created = insert_flow_runs(runs)
        audit.record(
            "deployment.backfill",
            deployment,
            after={
                "start": start,
                "end": end,
                "created": len(result.created),
                "schedules": list(per_schedule),
            },
        )
    return result


def backfill_window_text(result: BackfillResult) -> list[tuple[str, str, str]]:
    """Rows (fire time, schedule, status) for people: what a dry run would make."""
    status = {True: "exists", False: "would create" if result.dry_run else "created"}
    created_keys = {(run.schedule_slug, run.expected_start_at) for run in result.created}
    rows = []
    for slot in result.slots:
        text = status[slot.exists]
        if not slot.exists and not result.dry_run and (slot.schedule_slug, slot.fire_at) not in created_keys:
            text = "exists"  # inserted by someone else meanwhile
        rows.append((slot.fire_at.isoformat(), slot.schedule_slug, text))
    return rows
