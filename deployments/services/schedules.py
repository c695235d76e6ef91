"""A deployment's schedules: validate, save, delete, sync from a spec (by stable slug), and the
future runs a change removes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import audit
from deployments import schedule_times
from deployments.models import CatchUp, Deployment, DeploymentSchedule
from deployments.services.runs import resolve_parameters
from orchestrator.core.errors import ValidationError
from orchestrator.core.policies import OverlapPolicy
from orchestrator.core.states import StateType
from runs.models import FlowRun

log = logging.getLogger(__name__)


# What a schedule is, field by field: a change to any of these replaces its future runs.
SCHEDULE_FIELDS = (
    "kind",
    "cron",
    "interval_seconds",
    "anchor_at",
    "rrule",
    "timezone",
    "active",
    "parameters",
    "catchup",
    "catchup_max_runs",
)
# Policies applied when its runs are claimed: a change to these keeps the runs already made.
SCHEDULE_POLICY_FIELDS = ("overlap_policy", "max_lateness_seconds")


def validate_deployment_schedule(schedule: DeploymentSchedule) -> None:
    """Check a schedule before it is saved: its definition (schedule_times.validate_schedule), its
    catch-up policy, and its parameter overrides against the deployment's parameter schema.
    Raises ValidationError with messages per field; the admin form shows them at the fields."""
    errors: dict[str, list[str]] = {}
    try:
        schedule_times.validate_schedule(schedule.spec)
    except ValidationError as error:
        errors.update(error.errors)
    if schedule.catchup not in CatchUp.values:
        errors["catchup"] = [f"Unknown catch-up policy {schedule.catchup!r} (use {', '.join(CatchUp.values)})."]
    if not isinstance(schedule.catchup_max_runs, int) or schedule.catchup_max_runs < 1:
        errors["catchup_max_runs"] = ["At least 1."]
    errors.update(policy_errors(schedule.overlap_policy, schedule.max_lateness_seconds, inherit=True))
    if schedule.deployment_id is not None:
        try:
            resolve_parameters(schedule.deployment, schedule.parameters or {})
        except ValidationError as error:
            errors["parameters"] = [str(error)]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationError(f"Schedule {schedule.slug or '(new)'}: {first}", errors)


def policy_errors(overlap_policy: Any, max_lateness_seconds: Any, *, inherit: bool = False) -> dict[str, list[str]]:
    """Field errors of an overlap policy and a max lateness (a schedule may leave the policy
    empty to inherit the deployment's)."""
    errors: dict[str, list[str]] = {}
    allowed = [*OverlapPolicy.values, *([""] if inherit else [])]
    if overlap_policy not in allowed:
        errors["overlap_policy"] = [
            f"Unknown overlap policy {overlap_policy!r} (use {', '.join(OverlapPolicy.values)})."
        ]
    if max_lateness_seconds is not None and (
        not isinstance(max_lateness_seconds, int) or isinstance(max_lateness_seconds, bool) or max_lateness_seconds < 0
    ):
        errors["max_lateness_seconds"] = ["A whole number of seconds, 0 or more (or empty: no limit)."]
    return errors


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
                delete_future_runs(previous.deployment_id, slugs=[previous.slug])
            # Never write back a stale progress mark read before the lock.
            schedule.scheduled_through_at = None if changed else previous.scheduled_through_at
        fields = (*SCHEDULE_FIELDS, *SCHEDULE_POLICY_FIELDS)
        if previous is None:
            audit.record("schedule.create", schedule, after={name: getattr(schedule, name) for name in fields})
        else:
            before, after = audit.changes(previous, {name: getattr(schedule, name) for name in fields})
            audit.record("schedule.update", schedule, before=before, after=after)
        schedule.save()
        schedule_soon(schedule.deployment_id)
    return schedule


def delete_deployment_schedule(schedule: DeploymentSchedule) -> None:
    """Delete a schedule and the runs it made that have not started."""
    with transaction.atomic():
        delete_future_runs(schedule.deployment_id, slugs=[schedule.slug])
        audit.record("schedule.delete", schedule)
        schedule.delete()


def reschedule_deployment(deployment: Deployment) -> int:
    """Replace the not-yet-started runs of all of `deployment`'s schedules (after a change to the
    deployment that its runs copy: parameters, tags, pool or queue). Returns how many were
    deleted; the new ones are made right after commit."""
    with transaction.atomic():
        deleted = delete_future_runs(deployment.pk)
        schedule_soon(deployment.pk)
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
                delete_future_runs(deployment.pk, slugs=[slug])
                current.delete()
                result.deleted.append(slug)
        for slug, schedule in wanted.items():
            found = existing.get(slug)
            if found is None:
                schedule.save(force_insert=True)
                result.created.append(slug)
            elif _definition(found) == _definition(schedule) and _policies(found) != _policies(schedule):
                for name in SCHEDULE_POLICY_FIELDS:
                    setattr(found, name, getattr(schedule, name))
                found.save(update_fields=[*SCHEDULE_POLICY_FIELDS, "updated_at"])
                result.updated.append(slug)
            elif _definition(found) != _definition(schedule):
                delete_future_runs(deployment.pk, slugs=[slug])
                for name in (*SCHEDULE_FIELDS, *SCHEDULE_POLICY_FIELDS):
                    setattr(found, name, getattr(schedule, name))
                found.scheduled_through_at = None
                found.save()
                result.updated.append(slug)
            else:
                result.unchanged.append(slug)
        if result.created or result.updated:
            schedule_soon(deployment.pk)
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


def _schedule_from_definition(
    deployment: Deployment, definition: Mapping[str, Any], position: int
) -> DeploymentSchedule:
    known = {"slug", *SCHEDULE_FIELDS, *SCHEDULE_POLICY_FIELDS}
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
    values["overlap_policy"] = values.get("overlap_policy") or ""
    slug = values.pop("slug", None) or default_schedule_slug(values)
    return DeploymentSchedule(deployment=deployment, slug=slug, **values)


def _definition(schedule: DeploymentSchedule) -> tuple[Any, ...]:
    return tuple(getattr(schedule, name) for name in SCHEDULE_FIELDS)


def _policies(schedule: DeploymentSchedule) -> tuple[Any, ...]:
    return tuple(getattr(schedule, name) for name in SCHEDULE_POLICY_FIELDS)


def schedule_soon(deployment_id: Any) -> None:
    """Schedule the deployment right after commit, through Celery. A broker that cannot be
    reached is logged, not raised: the scheduler's next full pass catches up."""

    def send() -> None:
        # Not robust=True with a partial: Django's error logging for robust callbacks reads
        # __qualname__, which a partial lacks, so the request would fail after all.
        try:
            # Imported here: loading Celery is for processes that send tasks, not for every import.
            from deployments.tasks import schedule_deployment

            schedule_deployment.delay(str(deployment_id))
        except Exception as error:  # one line: a broker outage is an operator's fact, not a bug
            log.warning(
                "Could not queue the scheduling of deployment %s (the broker is unreachable: %s: %s); "
                "the scheduler's next pass schedules it.",
                deployment_id,
                type(error).__name__,
                error,
            )

    transaction.on_commit(send)


def delete_future_runs(deployment_id: Any, *, slugs: Iterable[str] | None = None) -> int:
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
