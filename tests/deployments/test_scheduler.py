"""The scheduler tick: schedules become runs, once each, with catch-up after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from deployments.models import Deployment, DeploymentSchedule
from deployments.services import build_flow_runs, schedule_deployments, set_deployment_paused
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState
from runs.services import insert_flow_runs

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_schedule(deployment: Deployment):
    def make(slug: str = "every-ten-minutes", dep: Deployment | None = None, **kwargs: Any) -> DeploymentSchedule:
        kwargs.setdefault("kind", "interval")
        if kwargs["kind"] == "interval":
            kwargs.setdefault("interval_seconds", 600)
        return DeploymentSchedule.objects.create(deployment=dep or deployment, slug=slug, **kwargs)

    return make


def scheduled_times(deployment: Deployment, slug: str | None = None) -> list[datetime]:
    runs = FlowRun.objects.filter(deployment=deployment).exclude(schedule_slug="")
    if slug:
        runs = runs.filter(schedule_slug=slug)
    return list(runs.order_by("expected_start_at").values_list("expected_start_at", flat=True))


@time_machine.travel(NOW, tick=False)
def test_it_makes_the_upcoming_runs_of_a_schedule(deployment, make_schedule, default_queue) -> None:
    make_schedule(parameters={"name": "Marvin"})

    assert schedule_deployments() == 6

    runs = list(FlowRun.objects.filter(deployment=deployment).order_by("expected_start_at"))
    assert [r.expected_start_at for r in runs] == [NOW + timedelta(minutes=10 * i) for i in range(1, 7)]
    run = runs[0]
    assert (run.state_type, run.state_name) == (StateType.SCHEDULED, "Scheduled")
    assert run.next_scheduled_start_at == run.expected_start_at
    assert run.parameters == {"name": "Marvin"}
    assert run.tags == ["tutorial", "test"]
    assert run.work_queue == default_queue
    assert (run.schedule_slug, run.created_by) == ("every-ten-minutes", "schedule:every-ten-minutes")
    assert list(run.states.values_list("type", "name")) == [("SCHEDULED", "Scheduled")]


@time_machine.travel(NOW, tick=False)
def test_a_second_tick_makes_nothing_new(deployment, make_schedule) -> None:
    make_schedule()
    schedule_deployments()

    assert schedule_deployments() == 0
    assert FlowRun.objects.count() == 6
    assert FlowRunState.objects.count() == 6


def test_a_tick_later_adds_only_the_runs_that_came_into_the_window(deployment, make_schedule) -> None:
    make_schedule()
    with time_machine.travel(NOW, tick=False):
        schedule_deployments()
    with time_machine.travel(NOW + timedelta(minutes=25), tick=False):
        assert schedule_deployments() == 2
    assert scheduled_times(deployment)[-1] == NOW + timedelta(minutes=80)


@time_machine.travel(NOW, tick=False)
def test_a_slot_someone_else_inserted_first_is_not_made_twice(deployment, make_schedule) -> None:
    schedule = make_schedule()
    # Another scheduler got there first with some of the same slots (its mark not yet saved).
    theirs = build_flow_runs(
        deployment, [NOW + timedelta(minutes=10), NOW + timedelta(minutes=20)], schedule_slug=schedule.slug
    )
    assert len(insert_flow_runs(theirs)) == 2

    assert schedule_deployments() == 4

    assert scheduled_times(deployment) == [NOW + timedelta(minutes=10 * i) for i in range(1, 7)]
    assert FlowRunState.objects.count() == 6  # one history row per run: none for the skipped inserts
    again = build_flow_runs(deployment, [NOW + timedelta(minutes=10)], schedule_slug=schedule.slug)
    assert insert_flow_runs(again) == []


@time_machine.travel(NOW, tick=False)
def test_paused_deployments_and_inactive_schedules_get_no_runs(deployment, make_deployment, make_schedule) -> None:
    make_schedule(active=False)
    paused = make_deployment("paused-one", paused=True)
    make_schedule(dep=paused)

    assert schedule_deployments() == 0


@time_machine.travel(NOW, tick=False)
def test_several_schedules_of_one_deployment_each_get_their_runs(deployment, make_schedule) -> None:
    make_schedule("hourly", kind="cron", cron="0 * * * *")
    make_schedule(
        "mornings",
        kind="rrule",
        rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        timezone="Europe/Berlin",
        parameters={"name": "Morning"},
    )

    schedule_deployments()

    assert len(scheduled_times(deployment, "hourly")) == 3
    mornings = FlowRun.objects.filter(schedule_slug="mornings").order_by("expected_start_at")
    assert [r.expected_start_at.hour for r in mornings] == [7, 7, 7]  # 09:00 in Berlin summer time
    assert {r.parameters["name"] for r in mornings} == {"Morning"}


@time_machine.travel(NOW, tick=False)
def test_one_unschedulable_schedule_does_not_stop_the_others(deployment, make_deployment, make_schedule) -> None:
    strict = make_deployment(
        "strict", parameter_schema={"properties": {"name": {"type": "string"}}}, enforce_parameter_schema=True
    )
    make_schedule(dep=strict, parameters={"colour": "blue"})  # the flow takes no colour
    make_schedule()

    assert schedule_deployments() == 6
    assert not FlowRun.objects.filter(deployment=strict).exists()


@time_machine.travel(NOW, tick=False)
def test_one_deployment_can_be_scheduled_alone(deployment, make_deployment, make_schedule) -> None:
    other = make_deployment("other")
    make_schedule()
    make_schedule(dep=other)

    assert schedule_deployments(deployment_ids=[other.pk]) == 6
    assert not FlowRun.objects.filter(deployment=deployment).exists()


@pytest.mark.parametrize(
    ("catchup", "expected_missed"),
    [("skip", []), ("once", [60]), ("all", [40, 50, 60])],
)
def test_missed_runs_follow_the_schedules_catch_up_policy(deployment, make_schedule, catchup, expected_missed) -> None:
    make_schedule(catchup=catchup, catchup_max_runs=3)
    with time_machine.travel(NOW, tick=False):
        schedule_deployments()  # runs up to 12:60
    # The scheduler was down for two hours: fire times 13:10 ... 14:00 have no runs.
    later = NOW + timedelta(hours=2, minutes=5)
    with time_machine.travel(later, tick=False):
        schedule_deployments()

    past = [t for t in scheduled_times(deployment) if NOW + timedelta(hours=1) < t <= later]
    assert past == [NOW + timedelta(hours=1, minutes=m) for m in expected_missed]
    future = [t for t in scheduled_times(deployment) if t > later]
    assert future[0] == NOW + timedelta(hours=2, minutes=10)


def test_a_pause_is_not_downtime_to_catch_up_on(deployment, make_schedule) -> None:
    make_schedule(catchup="all")
    with time_machine.travel(NOW, tick=False):
        schedule_deployments()
        set_deployment_paused(deployment, True)
    later = NOW + timedelta(hours=3)
    with time_machine.travel(later, tick=False):
        set_deployment_paused(deployment, False)
        schedule_deployments()
    assert scheduled_times(deployment)[0] == later + timedelta(minutes=10)
