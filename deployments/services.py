"""Business rules of deployments and their schedules (the scheduler lives here too)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployments import scheduling
from deployments.models import CatchUp, Deployment, DeploymentSchedule, Flow
from deployments.parameters import validate_parameters
from runs.errors import NotFound, ValidationError
from runs.models import FlowRun
from runs.services import build_flow_runs, insert_flow_runs
from runs.states import StateType

log = logging.getLogger(__name__)


def get_deployment(full_name: str) -> Deployment:
    """Find a deployment by `flow/deployment` name."""
    flow_name, sep, name = (full_name or "").partition("/")
    if not sep or not flow_name or not name:
        raise NotFound(f"{full_name!r} is not a deployment name; use FLOW/DEPLOYMENT.")
    try:
        return Deployment.objects.select_related("flow", "work_pool", "work_queue").get(
            flow__name=flow_name, name=name
        )
    except Deployment.DoesNotExist:
        raise NotFound(f"No deployment named {full_name!r}.") from None


def set_deployment_paused(deployment: Deployment, paused: bool) -> Deployment:
    """Pause or resume a deployment. Pausing deletes the runs its schedules made that have not
    started (a paused deployment gets no scheduled runs); resuming schedules it again at once,
    from now: slots that passed while paused are not caught up.

    Concurrency: the UPDATE waits for a scheduler tick holding the deployment, which then has
    committed the runs this deletes; a later tick reads it paused."""
    with transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(paused=paused)
        deployment.paused = paused
        if paused:
            _delete_future_runs(deployment.pk)
        else:
            _schedule_soon(deployment.pk)
    return deployment


def delete_deployment(deployment: Deployment) -> int:
    """Delete a deployment with its schedules and its runs that have not started (returns how
    many); runs that ended stay, for their history. Refused while one of its runs is claimed or
    running: stop or cancel it first.

    Concurrency: the deployment is locked, so a scheduler tick waits and then finds it gone;
    runs a worker is claiming at this moment are seen as active and refuse the delete."""
    with transaction.atomic():
        Deployment.objects.select_for_update().filter(pk=deployment.pk).first()
        active = FlowRun.objects.filter(deployment=deployment).active().count()
        if active:
            raise ValidationError(
                f"Deployment '{deployment.full_name}' has {active} run(s) in flight; cancel them or let them finish first."
            )
        waiting = list(
            FlowRun.objects.filter(deployment=deployment, state_type=StateType.SCHEDULED).values_list("pk", flat=True)
        )
        for start in range(0, len(waiting), 500):
            FlowRun.objects.filter(pk__in=waiting[start : start + 500]).delete()
        deployment.delete()
    return len(waiting)


def resolve_parameters(deployment: Deployment, overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameters a new run gets: the deployment's defaults overlaid with `overrides`.

    With `enforce_parameter_schema`, they are checked against the deployment's parameter schema
    and coerced ("3" for an integer becomes 3); parameters the flow does not take, required ones
    left out and values of the wrong type are refused with a message per parameter
    (ValidationError.errors)."""
    if not isinstance(overrides, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected an object."]})
    merged = {**(deployment.parameters or {}), **overrides}
    if deployment.enforce_parameter_schema:
        merged = validate_parameters(deployment.parameter_schema or {}, merged)
    _require_json(merged)
    return merged


def _require_json(parameters: dict[str, Any]) -> None:
    """Parameters are stored as JSON: NaN and Infinity are not JSON (PostgreSQL refuses them),
    so they are refused here, naming the parameter, whatever surface sent them."""
    for key, value in parameters.items():
        try:
            json.dumps(value, allow_nan=False)
        except (ValueError, TypeError) as error:
            reason = "must be a finite number" if isinstance(error, ValueError) else "is not JSON data"
            raise ValidationError(f"Invalid parameter {key!r}: it {reason}.", {key: [f"This value {reason}."]}) from None


def get_or_create_flow(name: str, *, description: str = "") -> Flow:
    """The flow named `name`, created on first use (a script's first run). Two processes
    creating it at once both get the same row: the unique name decides."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("A flow needs a name.", {"name": ["This field may not be blank."]})
    flow = Flow.objects.filter(name=name).first()
    if flow is not None:
        return flow
    try:
        with transaction.atomic():
            return Flow.objects.create(name=name, description=description)
    except IntegrityError:
        # Lost the race with another process creating the same flow: theirs is the row.
        return Flow.objects.get(name=name)


# --- schedules --------------------------------------------------------------------------------

# What a schedule is, field by field: a change to any of these replaces its future runs.
SCHEDULE_FIELDS = (
    "kind", "cron", "interval_seconds", "anchor_at", "rrule", "timezone", "active", "parameters",
    "catchup", "catchup_max_runs",
)


def validate_deployment_schedule(schedule: DeploymentSchedule) -> None:
    """Check a schedule before it is saved: its definition (scheduling.validate_schedule), its
    catch-up policy, and its parameter overrides against the deployment's parameter schema.
    Raises ValidationError with messages per field; the admin form shows them at the fields."""
    errors: dict[str, list[str]] = {}
    try:
        scheduling.validate_schedule(schedule.spec)
    except ValidationError as error:
        errors.update(error.errors)
    if schedule.catchup not in CatchUp.values:
        errors["catchup"] = [f"Unknown catch-up policy {schedule.catchup!r} (use {', '.join(CatchUp.values)})."]
    if not isinstance(schedule.catchup_max_runs, int) or schedule.catchup_max_runs < 1:
        errors["catchup_max_runs"] = ["At least 1."]
    if schedule.deployment_id is not None:
        try:
            resolve_parameters(schedule.deployment, schedule.parameters or {})
        except ValidationError as error:
            errors["parameters"] = [str(error)]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationError(f"Schedule {schedule.slug or '(new)'}: {first}", errors)


def save_deployment_schedule(schedule: DeploymentSchedule) -> DeploymentSchedule:
    """Create or update one schedule (admin, API). Raises ValidationError. An edit deletes the
    runs the schedule made that have not started (they follow the old definition) and the
    schedule starts afresh from now; runs for the new definition are made right after commit.

    Concurrency: the row is locked for the edit, so a scheduler tick either finished with it
    before (and its runs are deleted here) or reads the new definition after."""
    validate_deployment_schedule(schedule)
    with transaction.atomic():
        previous = None
        if not schedule._state.adding:
            previous = DeploymentSchedule.objects.select_for_update().filter(pk=schedule.pk).first()
        if previous is not None:
            changed = previous.slug != schedule.slug or _definition(previous) != _definition(schedule)
            if changed:
                _delete_future_runs(previous.deployment_id, slugs=[previous.slug])
            # Never write back a stale progress mark read before the lock.
            schedule.scheduled_through_at = None if changed else previous.scheduled_through_at
        schedule.save()
        _schedule_soon(schedule.deployment_id)
    return schedule


def delete_deployment_schedule(schedule: DeploymentSchedule) -> None:
    """Delete a schedule and the runs it made that have not started."""
    with transaction.atomic():
        _delete_future_runs(schedule.deployment_id, slugs=[schedule.slug])
        schedule.delete()


def reschedule_deployment(deployment: Deployment) -> int:
    """Replace the not-yet-started runs of all of `deployment`'s schedules (after a change to the
    deployment that its runs copy: parameters, tags, pool or queue). Returns how many were
    deleted; the new ones are made right after commit."""
    with transaction.atomic():
        deleted = _delete_future_runs(deployment.pk)
        _schedule_soon(deployment.pk)
    return deleted


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sync_schedules(deployment: Deployment, definitions: Iterable[Mapping[str, Any]]) -> SyncResult:
    """Make `deployment`'s schedules exactly `definitions` (what a deploy says), matched by slug.

    A definition is a mapping of DeploymentSchedule fields (kind, cron, interval_seconds,
    anchor_at as datetime or ISO text, rrule, timezone, active, parameters, catchup,
    catchup_max_runs) and an optional `slug`; without one the slug is a hash of the timing
    (kind, expression, anchor, timezone), so it stays the same across redeploys of the same
    spec. New slugs are created; changed ones are updated in place, keeping their row and slug
    (so runs already made keep their keys) while their not-yet-started runs are deleted; slugs no
    longer listed are deleted with those runs. Unchanged schedules are not touched: redeploying
    the same spec changes nothing. New runs are made right after commit, not at the next pass.

    Raises ValidationError, saving nothing, for a bad definition or a repeated slug.
    Concurrency: the deployment's schedules are locked while they change, as in
    save_deployment_schedule."""
    wanted: dict[str, DeploymentSchedule] = {}
    for position, definition in enumerate(definitions):
        schedule = _schedule_from_definition(deployment, definition, position)
        if schedule.slug in wanted:
            raise ValidationError(
                f"Two schedules share the slug {schedule.slug!r}; give each its own.", {"slug": ["Repeated."]}
            )
        validate_deployment_schedule(schedule)
        wanted[schedule.slug] = schedule

    result = SyncResult()
    with transaction.atomic():
        existing = {s.slug: s for s in DeploymentSchedule.objects.select_for_update().filter(deployment=deployment)}
        for slug, current in existing.items():
            if slug not in wanted:
                _delete_future_runs(deployment.pk, slugs=[slug])
                current.delete()
                result.deleted.append(slug)
        for slug, schedule in wanted.items():
            current = existing.get(slug)
            if current is None:
                schedule.save(force_insert=True)
                result.created.append(slug)
            elif _definition(current) != _definition(schedule):
                _delete_future_runs(deployment.pk, slugs=[slug])
                for name in SCHEDULE_FIELDS:
                    setattr(current, name, getattr(schedule, name))
                current.scheduled_through_at = None
                current.save()
                result.updated.append(slug)
            else:
                result.unchanged.append(slug)
        if result.created or result.updated:
            _schedule_soon(deployment.pk)
    return result


def default_schedule_slug(definition: Mapping[str, Any]) -> str:
    """`kind-<hash of the timing>`: stable for the same definition, new for another."""
    anchor = definition.get("anchor_at")
    if isinstance(anchor, str):
        anchor = parse_datetime(anchor) or anchor
    timing = [
        definition.get("kind") or "",
        definition.get("cron") or "",
        definition.get("interval_seconds"),
        # One instant, one slug, whatever zone it was written in.
        anchor.astimezone(UTC).isoformat() if isinstance(anchor, datetime) and anchor.tzinfo else str(anchor),
        definition.get("rrule") or "",
        definition.get("timezone") or "UTC",
    ]
    digest = hashlib.sha256(json.dumps(timing, default=str).encode()).hexdigest()[:10]
    return f"{definition.get('kind') or 'schedule'}-{digest}"


def _schedule_from_definition(deployment: Deployment, definition: Mapping[str, Any], position: int) -> DeploymentSchedule:
    known = {"slug", *SCHEDULE_FIELDS}
    unknown = sorted(set(definition) - known)
    if unknown:
        raise ValidationError(
            f"Schedule {position + 1}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))}).",
            {unknown[0]: ["Unknown field."]},
        )
    values = dict(definition)
    anchor = values.get("anchor_at")
    if isinstance(anchor, str):
        parsed = parse_datetime(anchor)
        if parsed is None:
            raise ValidationError(
                f"Schedule {position + 1}: anchor_at {anchor!r} is not an ISO 8601 date and time.",
                {"anchor_at": ["Not an ISO 8601 date and time."]},
            )
        values["anchor_at"] = parsed
    values.setdefault("timezone", "UTC")
    values["cron"] = values.get("cron") or ""
    values["rrule"] = values.get("rrule") or ""
    values["parameters"] = values.get("parameters") or {}
    slug = values.pop("slug", None) or default_schedule_slug(values)
    return DeploymentSchedule(deployment=deployment, slug=slug, **values)


def _definition(schedule: DeploymentSchedule) -> tuple[Any, ...]:
    return tuple(getattr(schedule, name) for name in SCHEDULE_FIELDS)


def _schedule_soon(deployment_id: Any) -> None:
    """Schedule the deployment right after commit, through Celery. A broker that cannot be
    reached is logged, not raised: the scheduler's next full pass catches up."""
    from deployments.tasks import schedule_deployment

    def send() -> None:
        # Not robust=True with a partial: Django's error logging for robust callbacks reads
        # __qualname__, which a partial lacks, so the request would fail after all.
        try:
            schedule_deployment.delay(str(deployment_id))
        except Exception:
            log.warning("Could not queue scheduling of deployment %s; the next pass will", deployment_id, exc_info=True)

    transaction.on_commit(send)


def _delete_future_runs(deployment_id: Any, *, slugs: Iterable[str] | None = None) -> int:
    """Delete the runs `deployment_id`'s schedules (or only `slugs`) made for the future that
    are still SCHEDULED, and make those schedules start afresh from now (an edit or a pause is
    not downtime to catch up on). Runs a worker is claiming right now (locked) are left to it.
    Returns how many runs were deleted. Call inside a transaction."""
    runs = FlowRun.objects.filter(
        deployment_id=deployment_id, state_type=StateType.SCHEDULED, expected_start_at__gt=timezone.now()
    ).exclude(schedule_slug="")
    schedules = DeploymentSchedule.objects.filter(deployment_id=deployment_id)
    if slugs is not None:
        slugs = list(slugs)
        runs = runs.filter(schedule_slug__in=slugs)
        schedules = schedules.filter(slug__in=slugs)
    # Locked and filtered on state in one statement: a run claimed meanwhile no longer matches.
    ids = list(runs.select_for_update(skip_locked=True).values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        FlowRun.objects.filter(pk__in=ids[start : start + 500]).delete()
    schedules.update(scheduled_through_at=None)
    return len(ids)


# --- the scheduler ------------------------------------------------------------------------------


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
    now = now or timezone.now()
    window = Window.from_settings()
    schedules = DeploymentSchedule.objects.filter(active=True, deployment__paused=False)
    if deployment_ids is not None:
        schedules = schedules.filter(deployment_id__in=list(deployment_ids))
    ids = list(schedules.order_by("pk").values_list("pk", flat=True))
    created = 0
    for start in range(0, len(ids), batch_size):
        created += _schedule_batch(ids[start : start + batch_size], now, window)
    return created


def _schedule_batch(ids: list[Any], now: datetime, window: Window) -> int:
    from workpools.models import WorkQueue

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
    upcoming = scheduling.upcoming_fire_times(
        spec, now, min_runs=window.min_runs, min_ahead=window.min_ahead, max_runs=window.max_runs,
        horizon=window.horizon,
    )
    through = schedule.scheduled_through_at
    missed: list[datetime] = []
    if through is not None and through < now and schedule.catchup != CatchUp.SKIP:
        last = 1 if schedule.catchup == CatchUp.ONCE else schedule.catchup_max_runs
        missed = scheduling.fire_times_between(spec, max(through, now - window.horizon), now, last=last)
    fresh = [moment for moment in upcoming if through is None or moment > through]
    new_through = max([now, *upcoming[-1:], *([through] if through else [])])
    return missed + fresh, new_through
