"""Task run state: its own small machine, compare-and-swap, the result cache, and task runs left
unfinished when their flow run ends."""

from __future__ import annotations

from datetime import timedelta
from itertools import product
from typing import Any

import pytest
from django.utils import timezone

from orchestrator.core.errors import InvalidTransition, StateConflict
from orchestrator.core.states import TASK_ALLOWED, TASK_STATE_NAMES, StateType
from runs.models import FlowRun, TaskRun
from runs.services import (
    crash_unfinished_task_runs,
    create_task_run,
    find_cached_task_run,
    set_state,
    set_task_run_state,
)

S = StateType
pytestmark = pytest.mark.django_db


@pytest.fixture
def task_run(run: FlowRun) -> TaskRun:
    return create_task_run(run.pk, name="log_message-dd6ef374-0", task_key="hello.log_message", dynamic_key="0")


def test_a_new_task_run_is_pending_with_its_first_history_entry(task_run: TaskRun) -> None:
    assert (task_run.state_type, task_run.state_name, task_run.run_count) == (S.PENDING, "Pending", 0)
    assert list(task_run.states.values_list("name", flat=True)) == ["Pending"]


def test_running_counts_runs_and_a_terminal_state_ends_it(task_run: TaskRun) -> None:
    set_task_run_state(task_run, S.RUNNING)
    set_task_run_state(task_run, S.SCHEDULED, message="Retry 1 of 1")
    set_task_run_state(task_run, S.RUNNING, name="Retrying")
    set_task_run_state(task_run, S.COMPLETED, result={"answer": 42})
    stored = TaskRun.objects.get(pk=task_run.pk)
    assert (stored.run_count, stored.result) == (2, {"answer": 42})
    assert stored.started_at <= stored.ended_at
    assert list(stored.states.values_list("name", flat=True)) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


TYPES = list(TASK_STATE_NAMES)


@pytest.mark.parametrize("from_type, to_type", list(product(TYPES, TYPES)))
def test_only_the_moves_in_the_task_table_are_allowed(run: FlowRun, from_type: StateType, to_type: StateType) -> None:
    task_run = create_task_run(run.pk, name="t", task_key="t")
    TaskRun.objects.filter(pk=task_run.pk).update(state_type=from_type)
    task_run.state_type = from_type
    if to_type in TASK_ALLOWED[from_type]:
        set_task_run_state(task_run, to_type)
        assert task_run.state_type == to_type
    else:
        with pytest.raises(InvalidTransition, match=f"A task run cannot move from {from_type} to {to_type}"):
            set_task_run_state(task_run, to_type)


def test_a_stale_view_loses_the_compare_and_swap(task_run: TaskRun) -> None:
    stale = TaskRun.objects.get(pk=task_run.pk)
    set_task_run_state(task_run, S.RUNNING)
    with pytest.raises(StateConflict):
        set_task_run_state(stale, S.RUNNING)


def test_the_cache_serves_the_latest_fresh_stored_result(run: FlowRun) -> None:
    now = timezone.now()

    def completed(key: str, result: Any, expires: Any = None, store: bool = True) -> TaskRun:
        task_run = create_task_run(run.pk, name="t", task_key="t")
        set_task_run_state(task_run, S.RUNNING)
        extra = {"result": result} if store else {}
        return set_task_run_state(task_run, S.COMPLETED, cache_key=key, cache_expires_at=expires, **extra)

    completed("k", "old", now + timedelta(hours=1))
    newest = completed("k", None, now + timedelta(hours=1))  # None is a result too
    completed("stale", "x", now - timedelta(seconds=1))
    completed("unstored", "x", store=False)
    forever = completed("forever", [1, 2])

    assert find_cached_task_run("k") == newest and find_cached_task_run("k").result is None
    assert find_cached_task_run("stale") is None
    assert find_cached_task_run("unstored") is None
    assert find_cached_task_run("forever") == forever
    assert find_cached_task_run("") is None


def test_task_runs_left_unfinished_crash_when_their_flow_run_ends(
    run: FlowRun, django_capture_on_commit_callbacks: Any
) -> None:
    running = create_task_run(run.pk, name="a", task_key="a")
    set_task_run_state(running, S.RUNNING)
    done = create_task_run(run.pk, name="b", task_key="b")
    set_task_run_state(done, S.RUNNING)
    set_task_run_state(done, S.COMPLETED)
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        set_state(run, S.FAILED, message="TimeoutError")
    running.refresh_from_db()
    assert (running.state_type, running.state_message) == (S.CRASHED, "Its flow run ended Failed.")
    assert TaskRun.objects.get(pk=done.pk).state_type == S.COMPLETED
    assert crash_unfinished_task_runs(run.pk, message="again") == 0
