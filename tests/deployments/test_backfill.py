"""Backfill: the runs a schedule would have made in a window, made now, with the schedule's own
keys, so a repeat or the scheduler never adds a duplicate; every surface calls one service."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from deployments.models import Deployment, DeploymentSchedule
from deployments.services import backfill_deployment, schedule_deployments
from orchestrator.core.errors import ValidationError
from runs.models import FlowRun
from tests.conftest import Api

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute)


@pytest.fixture
def hourly(deployment: Deployment) -> DeploymentSchedule:
    return DeploymentSchedule.objects.create(
        deployment=deployment,
        slug="hourly",
        kind="interval",
        interval_seconds=3600,
        anchor_at=T0,
        parameters={"name": "Backfilled"},
    )


def slots(deployment: Deployment) -> list[datetime]:
    return list(
        FlowRun.objects.filter(deployment=deployment, schedule_slug="hourly")
        .order_by("expected_start_at")
        .values_list("expected_start_at", flat=True)
    )


def manage(*args: str) -> str:
    out = StringIO()
    call_command("deployment", *args, stdout=out)
    return out.getvalue()


def test_a_backfill_makes_each_fire_time_in_the_window_once(deployment: Deployment, hourly: Any) -> None:
    result = backfill_deployment(deployment, start=at(0), end=at(5))
    assert [r.expected_start_at for r in result.created] == [at(h) for h in range(6)]
    run = result.created[0]
    run.refresh_from_db()
    assert (run.schedule_slug, run.parameters, run.state_type) == ("hourly", {"name": "Backfilled"}, "SCHEDULED")
    assert run.next_scheduled_start_at > at(5), "due now, not hours late"

    again = backfill_deployment(deployment, start=at(0), end=at(7))
    assert [r.expected_start_at for r in again.created] == [at(6), at(7)]
    assert slots(deployment) == [at(h) for h in range(8)]


def test_backfill_and_scheduler_never_make_a_slot_twice(deployment: Deployment, hourly: Any) -> None:
    schedule_deployments(now=at(3, 30))  # makes 04:00, 05:00, ... ahead
    ahead = slots(deployment)
    assert ahead[0] == at(4)
    result = backfill_deployment(deployment, start=at(0), end=at(6))
    assert [r.expected_start_at for r in result.created] == [at(h) for h in range(4)]
    assert [(s.fire_at, s.exists) for s in result.slots if s.exists] == [(at(4), True), (at(5), True), (at(6), True)]
    DeploymentSchedule.objects.filter(pk=hourly.pk).update(scheduled_through_at=None)  # the scheduler starts afresh
    schedule_deployments(now=at(0, 30))
    everything = slots(deployment)
    assert len(everything) == len(set(everything)) and everything[:7] == [at(h) for h in range(7)]


def test_a_dry_run_lists_the_runs_and_makes_none(deployment: Deployment, hourly: Any) -> None:
    backfill_deployment(deployment, start=at(1), end=at(1))
    out = manage(
        "backfill", deployment.full_name, "--start", "2026-01-01T00:00Z", "--end", "2026-01-01T02:00Z", "--dry-run"
    )
    assert "would create" in out and "exists" in out
    assert "Dry run: would create 2 run(s); 1 exist already." in out
    assert slots(deployment) == [at(1)]


def test_the_command_backfills_and_refuses_more_than_the_cap_in_one_line(deployment: Deployment, hourly: Any) -> None:
    with pytest.raises(CommandError) as error:
        manage("backfill", deployment.full_name, "--start", "2026-01-01", "--end", "2026-01-01T05:00Z", "--max", "3")
    assert str(error.value) == (
        "The window holds 6 runs to make, more than the cap of 3; narrow the window or raise the cap."
    )
    assert slots(deployment) == []
    out = manage("backfill", deployment.full_name, "--start", "2026-01-01T00:00Z", "--end", "2026-01-01T05:00Z")
    assert "Created 6 run(s); 0 existed already." in out
    assert FlowRun.objects.filter(created_by="backfill:cli").count() == 6
    with pytest.raises(CommandError, match="--end takes an ISO 8601 date"):
        manage("backfill", deployment.full_name, "--start", "2026-01-01", "--end", "yesterday")


def test_bad_windows_and_schedules_are_refused(deployment: Deployment, hourly: Any) -> None:
    with pytest.raises(ValidationError, match="The end must not come before the start"):
        backfill_deployment(deployment, start=at(5), end=at(1))
    with pytest.raises(ValidationError, match="has no active schedule 'daily'"):
        backfill_deployment(deployment, start=at(0), end=at(1), schedule_slugs=["daily"])
    DeploymentSchedule.objects.update(active=False)
    with pytest.raises(ValidationError, match="has no active schedule to backfill"):
        backfill_deployment(deployment, start=at(0), end=at(1))


def test_the_api_backfills_with_a_dry_run_and_field_errors(
    writer: Api, operator: Api, deployment: Deployment, hourly: Any
) -> None:
    url = f"/api/deployments/{deployment.pk}/backfill/"
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"}
    dry = writer.post(url, json={**body, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["created"] == 0 and len(dry.json()["slots"]) == 3
    made = writer.post(url, json=body)
    assert made.status_code == 201 and made.json()["created"] == 3
    assert writer.post(url, json=body).json()["created"] == 0
    bad = writer.post(url, json={"start": "soon"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"start", "end"}
    assert writer.post(url, json={**body, "end": "2025-01-01T00:00:00Z"}).status_code == 400
    assert operator.post(url, json=body).status_code == 403  # a trigger key cannot backfill
    assert slots(deployment) == [at(0), at(1), at(2)]


def test_the_admin_action_backfills_the_window_beside_it(
    admin_client: Any, deployment: Deployment, hourly: Any
) -> None:
    url = reverse("admin:deployments_deployment_changelist")
    post = {
        "action": "backfill",
        "_selected_action": [str(deployment.pk)],
        "backfill_start": "2026-01-01 00:00:00",
        "backfill_end": "2026-01-01 03:00:00",
    }
    page = admin_client.post(url, {**post, "backfill_dry_run": "on"}, follow=True).content.decode()
    assert "would create 4 run(s)" in page and slots(deployment) == []
    page = admin_client.post(url, post, follow=True).content.decode()
    assert "created 4 run(s)" in page
    assert len(slots(deployment)) == 4
    page = admin_client.post(url, {**post, "backfill_end": ""}, follow=True).content.decode()
    assert "Give the backfill window" in page
