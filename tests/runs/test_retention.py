"""Retention: finished runs and their logs older than the configured age are deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState, Log, TaskRun
from runs.services import delete_old_runs, set_state


def finish(run: FlowRun, to: StateType = StateType.COMPLETED) -> FlowRun:
    set_state(run, StateType.PENDING)
    set_state(run, StateType.RUNNING)
    return set_state(run, to)


def test_retention_is_off_by_default(make_run: Any) -> None:
    finish(make_run())
    with time_machine.travel(timezone.now() + timedelta(days=3650), tick=False):
        assert delete_old_runs() == 0
    assert FlowRun.objects.count() == 1


def test_old_finished_runs_go_with_their_logs_and_the_rest_stay(make_run: Any, settings: Any) -> None:
    settings.RUN_RETENTION_DAYS = 30
    old = finish(make_run())
    now = timezone.now()
    Log.objects.create(flow_run=old, message="hello", timestamp=now)
    task = TaskRun.objects.create(flow_run=old, name="t", task_key="t", state_at=now)
    Log.objects.create(flow_run=old, task_run=task, message="from a task", timestamp=now)
    old_but_waiting = make_run(scheduled_at=now)

    with time_machine.travel(now + timedelta(days=20), tick=False):
        recent = finish(make_run())
        assert delete_old_runs() == 0
    with time_machine.travel(now + timedelta(days=31), tick=False):
        assert delete_old_runs(batch_size=1) == 1

    assert set(FlowRun.objects.values_list("pk", flat=True)) == {old_but_waiting.pk, recent.pk}
    assert not Log.objects.exists() and not TaskRun.objects.exists()
    assert not FlowRunState.objects.filter(flow_run_id=old.pk).exists()
