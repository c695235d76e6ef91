"""Overlap and lateness policies, applied by the claim (workpools.services.policies)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from deployments.models import DeploymentSchedule
from orchestrator.core.policies import OverlapPolicy
from orchestrator.core.states import StateType
from runs.models import FlowRun
from workpools.models import WorkPool
from workpools.services import claim_runs, register_worker

pytestmark = pytest.mark.django_db
S = StateType


@pytest.fixture
def worker(pool: WorkPool) -> Any:
    return register_worker(pool.name, name="w1")[0]


def ago(seconds: int) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def states(*runs: FlowRun) -> list[str]:
    return [FlowRun.objects.get(pk=r.pk).state_type for r in runs]


def test_allow_lets_runs_of_one_deployment_overlap(worker: Any, make_deployment: Any, make_run: Any) -> None:
    dep = make_deployment("overlapping")
    runs = [make_run(dep, scheduled_at=ago(30 - i)) for i in range(3)]
    assert len(claim_runs(worker)) == 3
    assert states(*runs) == [S.PENDING] * 3


def test_skip_cancels_a_due_run_while_another_is_active(worker: Any, make_deployment: Any, make_run: Any) -> None:
    dep = make_deployment("nightly", overlap_policy=OverlapPolicy.SKIP)
    first = make_run(dep, scheduled_at=ago(60))
    assert [r.pk for r in claim_runs(worker)] == [first.pk]
    second = make_run(dep, scheduled_at=ago(5))
    assert claim_runs(worker) == []
    second.refresh_from_db()
    assert (second.state_type, second.state_name) == (S.CANCELLED, "Cancelled")
    assert "Skipped: another run of this deployment is still active" in second.state_message
    assert "skip" in second.state_message


def test_skip_starts_only_the_oldest_of_runs_due_together(worker: Any, make_deployment: Any, make_run: Any) -> None:
    dep = make_deployment("nightly", overlap_policy=OverlapPolicy.SKIP)
    runs = [make_run(dep, scheduled_at=ago(30 - i)) for i in range(3)]
    assert [r.pk for r in claim_runs(worker)] == [runs[0].pk]
    assert states(*runs) == [S.PENDING, S.CANCELLED, S.CANCELLED]


def test_skip_does_not_touch_other_deployments(worker: Any, make_deployment: Any, make_run: Any) -> None:
    busy = make_deployment("busy", overlap_policy=OverlapPolicy.SKIP)
    other = make_deployment("other")
    make_run(busy, scheduled_at=ago(60))
    claim_runs(worker)
    blocked, free = make_run(busy, scheduled_at=ago(5)), make_run(other, scheduled_at=ago(5))
    assert [r.pk for r in claim_runs(worker)] == [free.pk]
    assert states(blocked, free) == [S.CANCELLED, S.PENDING]


def test_buffer_one_keeps_one_run_waiting_and_cancels_the_rest(
    worker: Any, make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("hourly", overlap_policy=OverlapPolicy.BUFFER_ONE)
    active = make_run(dep, scheduled_at=ago(60))
    claim_runs(worker)
    waiting = [make_run(dep, scheduled_at=ago(30 - i)) for i in range(3)]
    assert claim_runs(worker) == []
    assert states(*waiting) == [S.SCHEDULED, S.CANCELLED, S.CANCELLED]
    assert "one is already waiting" in FlowRun.objects.get(pk=waiting[2].pk).state_message

    # When the active run ends, the buffered one starts.
    from runs.services import set_state

    active.refresh_from_db()
    set_state(active, S.RUNNING)
    set_state(active, S.COMPLETED)
    assert [r.pk for r in claim_runs(worker)] == [waiting[0].pk]


def test_cancel_running_cancels_the_active_run_and_starts_the_newest(
    worker: Any, make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("refresh", overlap_policy=OverlapPolicy.CANCEL_RUNNING)
    old = make_run(dep, scheduled_at=ago(60))
    claim_runs(worker)
    older, newest = make_run(dep, scheduled_at=ago(20)), make_run(dep, scheduled_at=ago(10))
    assert [r.pk for r in claim_runs(worker)] == [newest.pk]
    old.refresh_from_db()
    assert old.state_type == S.CANCELLING
    assert f"the newer run {newest.name}" in old.state_message
    older.refresh_from_db()
    assert older.state_type == S.CANCELLED and "Superseded" in older.state_message


def test_a_schedule_policy_replaces_the_deployments_for_its_runs(
    worker: Any, make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("mixed")  # allow
    DeploymentSchedule.objects.create(
        deployment=dep, slug="every-minute", kind="interval", interval_seconds=60, overlap_policy=OverlapPolicy.SKIP
    )
    manual = make_run(dep, scheduled_at=ago(60))
    claim_runs(worker)
    scheduled = make_run(dep, scheduled_at=ago(5))
    FlowRun.objects.filter(pk=scheduled.pk).update(schedule_slug="every-minute")
    another_manual = make_run(dep, scheduled_at=ago(4))
    assert [r.pk for r in claim_runs(worker)] == [another_manual.pk]
    assert states(manual, scheduled) == [S.PENDING, S.CANCELLED]


def test_a_run_later_than_max_lateness_is_cancelled_with_a_message(
    worker: Any, make_deployment: Any, make_run: Any
) -> None:
    dep = make_deployment("report", max_lateness_seconds=600)
    stale = make_run(dep, scheduled_at=ago(3600))
    fresh = make_run(dep, scheduled_at=ago(300))
    assert [r.pk for r in claim_runs(worker)] == [fresh.pk]
    stale.refresh_from_db()
    assert stale.state_type == S.CANCELLED
    assert "3600 s late, more than the 600 s its max lateness allows" in stale.state_message


def test_a_schedule_max_lateness_replaces_the_deployments(worker: Any, make_deployment: Any, make_run: Any) -> None:
    dep = make_deployment("report", max_lateness_seconds=60)
    DeploymentSchedule.objects.create(
        deployment=dep, slug="daily", kind="interval", interval_seconds=86400, max_lateness_seconds=7200
    )
    run = make_run(dep, scheduled_at=ago(3600))
    FlowRun.objects.filter(pk=run.pk).update(schedule_slug="daily")
    assert [r.pk for r in claim_runs(worker)] == [run.pk]


def test_without_max_lateness_a_late_run_still_runs(worker: Any, make_run: Any) -> None:
    run = make_run(scheduled_at=ago(86400))
    assert [r.pk for r in claim_runs(worker)] == [run.pk]
