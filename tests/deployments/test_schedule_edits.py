"""Changing, deactivating, deleting a schedule or pausing its deployment replaces its future
runs; a redeploy of the same spec changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from deployments.models import Deployment, DeploymentSchedule
from deployments.services import (
    default_schedule_slug,
    delete_deployment_schedule,
    reschedule_deployment,
    save_deployment_schedule,
    schedule_deployments,
    set_deployment_paused,
    sync_schedules,
)
from orchestrator.core.errors import ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
TEN_MINUTES = {"slug": "ten", "kind": "interval", "interval_seconds": 600}
HOURLY = {"slug": "hourly", "kind": "cron", "cron": "0 * * * *", "timezone": "Europe/Berlin"}

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def slots(deployment: Deployment, slug: str) -> list[datetime]:
    return list(
        FlowRun.objects.filter(deployment=deployment, schedule_slug=slug)
        .order_by("expected_start_at")
        .values_list("expected_start_at", flat=True)
    )


def test_a_deploy_creates_its_schedules_and_they_are_scheduled_after_commit(
    deployment, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        result = sync_schedules(deployment, [TEN_MINUTES, HOURLY])

    assert result.created == ["ten", "hourly"]
    assert sorted(deployment.schedules.values_list("slug", flat=True)) == ["hourly", "ten"]
    assert len(callbacks) == 1  # schedule_deployment.delay(...), sent once the deploy commits
    from orchestrator.celery import app

    assert not FlowRun.objects.filter(deployment=deployment).exists()
    app.conf.task_always_eager = True
    try:
        callbacks[0]()
    finally:
        app.conf.task_always_eager = False
    assert FlowRun.objects.filter(deployment=deployment).exists()  # scheduled now, not at the next pass


def test_redeploying_the_same_spec_changes_nothing(deployment, django_capture_on_commit_callbacks) -> None:
    sync_schedules(deployment, [TEN_MINUTES, HOURLY])
    schedule_deployments()
    before = set(FlowRun.objects.values_list("pk", flat=True))
    row = DeploymentSchedule.objects.get(slug="ten")

    with django_capture_on_commit_callbacks() as callbacks:
        result = sync_schedules(deployment, [TEN_MINUTES, HOURLY])

    assert result.unchanged == ["ten", "hourly"] and not callbacks
    assert set(FlowRun.objects.values_list("pk", flat=True)) == before
    assert DeploymentSchedule.objects.get(slug="ten").pk == row.pk


def test_a_redeploy_updates_a_changed_schedule_in_place_and_replaces_its_future_runs(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES, HOURLY])
    schedule_deployments()
    row = DeploymentSchedule.objects.get(slug="ten")
    hourly_runs = slots(deployment, "hourly")

    result = sync_schedules(deployment, [{**TEN_MINUTES, "interval_seconds": 900}, HOURLY])
    assert result.updated == ["ten"]
    assert slots(deployment, "ten") == []
    assert slots(deployment, "hourly") == hourly_runs

    schedule_deployments()
    assert DeploymentSchedule.objects.get(slug="ten").pk == row.pk
    assert slots(deployment, "ten")[:2] == [NOW + timedelta(minutes=15), NOW + timedelta(minutes=30)]


def test_a_schedule_left_out_of_a_deploy_is_deleted_with_its_future_runs(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES, HOURLY])
    schedule_deployments()

    assert sync_schedules(deployment, [HOURLY]).deleted == ["ten"]

    assert slots(deployment, "ten") == []
    assert list(deployment.schedules.values_list("slug", flat=True)) == ["hourly"]


def test_only_runs_that_have_not_started_are_removed(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()
    first, second, *_ = FlowRun.objects.filter(schedule_slug="ten").order_by("expected_start_at")
    set_state(first, StateType.PENDING)  # a worker claimed it early
    manual = FlowRun.objects.create(
        flow=deployment.flow,
        deployment=deployment,
        name="by-hand",
        state_at=NOW,
        expected_start_at=NOW + timedelta(hours=1),
        next_scheduled_start_at=NOW + timedelta(hours=1),
    )

    set_deployment_paused(deployment, True)

    remaining = set(FlowRun.objects.values_list("pk", flat=True))
    assert remaining == {first.pk, manual.pk}


def test_pausing_a_deployment_removes_its_future_runs_and_resuming_brings_them_back(
    deployment, django_capture_on_commit_callbacks
) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()

    set_deployment_paused(deployment, True)
    assert slots(deployment, "ten") == []
    assert schedule_deployments() == 0

    with django_capture_on_commit_callbacks() as callbacks:
        set_deployment_paused(deployment, False)
    assert len(callbacks) == 1
    assert schedule_deployments() == 6


def test_deactivating_a_schedule_removes_its_future_runs(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()

    sync_schedules(deployment, [{**TEN_MINUTES, "active": False}])

    assert slots(deployment, "ten") == []
    assert schedule_deployments() == 0


def test_an_edit_in_the_admin_goes_through_the_same_rules(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()
    schedule = DeploymentSchedule.objects.get(slug="ten")

    schedule.parameters = {"name": "Edited"}
    save_deployment_schedule(schedule)
    assert slots(deployment, "ten") == []
    schedule_deployments()
    assert {r.parameters["name"] for r in FlowRun.objects.filter(schedule_slug="ten")} == {"Edited"}

    delete_deployment_schedule(schedule)
    assert FlowRun.objects.filter(schedule_slug="ten").count() == 0


def test_saving_an_unchanged_schedule_keeps_its_runs(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()
    before = slots(deployment, "ten")

    save_deployment_schedule(DeploymentSchedule.objects.get(slug="ten"))

    assert slots(deployment, "ten") == before


def test_a_changed_deployment_gets_fresh_runs(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])
    schedule_deployments()
    Deployment.objects.filter(pk=deployment.pk).update(parameters={"name": "Changed"})

    assert reschedule_deployment(deployment) == 6
    schedule_deployments()
    assert {r.parameters["name"] for r in FlowRun.objects.filter(schedule_slug="ten")} == {"Changed"}


def test_a_schedule_without_a_slug_gets_one_from_its_definition(deployment) -> None:
    definition = {"kind": "cron", "cron": "0 9 * * *", "timezone": "Europe/Berlin"}
    sync_schedules(deployment, [definition])
    sync_schedules(deployment, [definition])

    assert list(deployment.schedules.values_list("slug", flat=True)) == [default_schedule_slug(definition)]
    assert default_schedule_slug(definition).startswith("cron-")
    assert default_schedule_slug({**definition, "cron": "0 10 * * *"}) != default_schedule_slug(definition)


def test_a_bad_spec_saves_nothing(deployment) -> None:
    sync_schedules(deployment, [TEN_MINUTES])

    with pytest.raises(ValidationError) as error:
        sync_schedules(deployment, [HOURLY, {"slug": "broken", "kind": "cron", "cron": "0 25 * * *"}])
    assert "cron" in error.value.errors
    with pytest.raises(ValidationError, match="share the slug"):
        sync_schedules(deployment, [HOURLY, HOURLY])
    with pytest.raises(ValidationError, match="unknown field 'every'"):
        sync_schedules(deployment, [{"kind": "interval", "every": 5}])

    assert list(deployment.schedules.values_list("slug", flat=True)) == ["ten"]


def test_anchor_dates_may_be_given_as_text(deployment) -> None:
    sync_schedules(deployment, [{**TEN_MINUTES, "anchor_at": "2026-05-04T12:05:00+02:00"}])
    assert deployment.schedules.get().anchor_at == datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
