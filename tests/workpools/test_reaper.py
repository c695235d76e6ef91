from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import record_run_heartbeat, request_cancellation, set_state
from workpools.services import recover_lost_runs

pytestmark = pytest.mark.django_db
S = StateType


@pytest.fixture(autouse=True)
def short_timeouts(settings: Any) -> None:
    settings.RUN_HEARTBEAT_SECONDS, settings.RUN_HEARTBEAT_MISSES = 10, 3
    settings.CANCELLING_TIMEOUT_SECONDS = 60


def running(make_run: Any, **fields: Any) -> FlowRun:
    run = make_run()
    if fields:
        FlowRun.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    return run


def test_a_run_that_stopped_heartbeating_is_crashed(make_run: Any) -> None:
    run = running(make_run)
    assert recover_lost_runs(now=timezone.now() + timedelta(seconds=20))["crashed"] == 0
    report = recover_lost_runs(now=timezone.now() + timedelta(seconds=31))
    assert report["crashed"] == 1
    run.refresh_from_db()
    assert run.state_type == S.CRASHED
    assert "stopped heartbeating" in run.state_message


def test_a_crashed_run_with_retries_left_waits_for_a_retry(make_run: Any) -> None:
    run = running(make_run, retries=2, retry_delay_seconds=5)
    recover_lost_runs(now=timezone.now() + timedelta(seconds=31))
    run.refresh_from_db()
    assert (run.state_type, run.state_name) == (S.SCHEDULED, "AwaitingRetry")


def test_a_heartbeat_keeps_a_run_alive(make_run: Any) -> None:
    run = running(make_run)
    FlowRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=40))
    assert record_run_heartbeat(run.pk) is True
    assert recover_lost_runs()["crashed"] == 0


def test_a_cancellation_nobody_confirms_is_finished_by_the_reaper(make_run: Any) -> None:
    run = running(make_run)
    request_cancellation(run, by="alice")
    assert recover_lost_runs(now=timezone.now() + timedelta(seconds=30))["cancelled"] == 0
    assert recover_lost_runs(now=timezone.now() + timedelta(seconds=61))["cancelled"] == 1
    run.refresh_from_db()
    assert run.state_type == S.CANCELLED
    assert "release its slot" in run.state_message
