"""Runs still waiting past their time are marked Late, through set_state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import mark_late_runs, set_state


def test_a_run_waiting_past_the_threshold_is_marked_late(make_run: Any, settings: Any) -> None:
    settings.LATE_RUN_SECONDS = 15
    start = timezone.now()
    due = make_run(scheduled_at=start)
    not_yet = make_run(scheduled_at=start + timedelta(seconds=10))

    with time_machine.travel(start + timedelta(seconds=14), tick=False):
        assert mark_late_runs() == 0
    with time_machine.travel(start + timedelta(seconds=16), tick=False):
        assert mark_late_runs() == 1
        assert mark_late_runs() == 0  # once is enough

    due.refresh_from_db()
    assert (due.state_type, due.state_name) == (StateType.SCHEDULED, "Late")
    assert list(due.states.values_list("name", flat=True)) == ["Scheduled", "Late"]
    assert "15 s after its scheduled time" in due.state_message
    not_yet.refresh_from_db()
    assert not_yet.state_name == "Scheduled"


def test_claimed_runs_and_runs_awaiting_a_retry_are_not_late(make_run: Any, settings: Any) -> None:
    settings.LATE_RUN_SECONDS = 0
    start = timezone.now() - timedelta(minutes=5)
    claimed = make_run(scheduled_at=start)
    set_state(claimed, StateType.PENDING)
    retrying = make_run(scheduled_at=start)
    FlowRun.objects.filter(pk=retrying.pk).update(retries=1)
    retrying.refresh_from_db()
    set_state(retrying, StateType.PENDING)
    set_state(retrying, StateType.RUNNING)
    set_state(retrying, StateType.FAILED, message="boom")  # -> AwaitingRetry, due now

    with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=False):
        assert mark_late_runs() == 0
    retrying.refresh_from_db()
    assert retrying.state_name == "AwaitingRetry"


def test_late_marking_works_through_batches(make_run: Any, settings: Any) -> None:
    settings.LATE_RUN_SECONDS = 0
    start = timezone.now() - timedelta(minutes=1)
    for _ in range(5):
        make_run(scheduled_at=start)
    assert mark_late_runs(batch_size=2) == 5
    assert set(FlowRun.objects.values_list("state_name", flat=True)) == {"Late"}
