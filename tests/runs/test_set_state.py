"""What set_state keeps in step besides the state itself: history, times, counts, hooks, retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from orchestrator.core.states import StateType
from runs import hooks
from runs.models import FlowRun
from runs.services import request_cancellation, set_state

S = StateType
pytestmark = pytest.mark.django_db


def test_it_records_start_end_and_run_count(run: FlowRun) -> None:
    t0 = timezone.now()
    with time_machine.travel(t0, tick=False):
        set_state(run, S.PENDING)
    with time_machine.travel(t0 + timedelta(seconds=5), tick=False):
        set_state(run, S.RUNNING)
    with time_machine.travel(t0 + timedelta(seconds=65), tick=False):
        set_state(run, S.COMPLETED, message="All states completed.")
    stored = FlowRun.objects.get(pk=run.pk)
    assert stored.run_count == 1
    assert stored.started_at == t0 + timedelta(seconds=5)
    assert stored.ended_at == t0 + timedelta(seconds=65)
    assert stored.duration == timedelta(seconds=60)
    assert stored.state_message == "All states completed."
    assert [(h.type, h.name) for h in stored.states.all()] == [
        (S.SCHEDULED, "Scheduled"),
        (S.PENDING, "Pending"),
        (S.RUNNING, "Running"),
        (S.COMPLETED, "Completed"),
    ]


def test_a_failure_with_retries_left_is_scheduled_again_after_the_delay(make_run: Any) -> None:
    run = make_run()
    FlowRun.objects.filter(pk=run.pk).update(retries=1, retry_delay_seconds=30)
    run.refresh_from_db()
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    set_state(run, S.FAILED, message="ValueError: boom")

    assert (run.state_type, run.state_name) == (S.SCHEDULED, "AwaitingRetry")
    failed_at = run.states.get(type=S.FAILED).timestamp
    assert run.next_scheduled_start_at == failed_at + timedelta(seconds=30)
    assert run.ended_at is None and run.worker is None
    assert "Retry 1 of 1" in run.state_message and "ValueError: boom" in run.state_message
    assert [h.name for h in run.states.all()][-2:] == ["Failed", "AwaitingRetry"]

    # The second attempt fails for good: no retries left.
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING, name="Retrying")
    set_state(run, S.FAILED, message="ValueError: boom again")
    assert run.state_type == S.FAILED
    assert run.run_count == 2


def test_hooks_fire_after_commit_once_per_state_entered(run: FlowRun, django_capture_on_commit_callbacks: Any) -> None:
    seen: list[tuple[str | None, str, str]] = []

    def record(r: FlowRun, change: hooks.StateChange) -> None:
        seen.append((change.from_type, change.to_type, change.to_name))

    hooks.on_state_change(record)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            set_state(run, S.PENDING)
        assert seen == []  # nothing before commit
        for callback in callbacks:
            callback()
        assert seen == [(S.SCHEDULED, S.PENDING, "Pending")]
    finally:
        hooks.remove(record)


def test_a_failing_hook_does_not_undo_the_change(run: FlowRun, django_capture_on_commit_callbacks: Any) -> None:
    def broken(r: FlowRun, change: hooks.StateChange) -> None:
        raise RuntimeError("notification service down")

    hooks.on_state_change(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            set_state(run, S.PENDING)
    finally:
        hooks.remove(broken)
    assert FlowRun.objects.get(pk=run.pk).state_type == S.PENDING


def test_cancelling_a_scheduled_run_cancels_it_at_once(run: FlowRun) -> None:
    request_cancellation(run, by="alice")
    assert (run.state_type, run.state_message) == (S.CANCELLED, "Cancelled by alice")
    assert run.ended_at is not None


def test_cancelling_a_running_run_asks_its_worker(run: FlowRun) -> None:
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    request_cancellation(run, by="alice")
    assert run.state_type == S.CANCELLING
    request_cancellation(run, by="bob")  # asking twice is harmless
    assert run.states.filter(type=S.CANCELLING).count() == 1


def test_a_finished_run_cannot_be_cancelled(run: FlowRun) -> None:
    request_cancellation(run, by="alice")
    with pytest.raises(Exception, match="already ended as Cancelled"):
        request_cancellation(run, by="alice")
