"""Every pair of the transition table in design.md, through the one code path."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from orchestrator.core.errors import InvalidTransition, StateConflict
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunState
from runs.services import set_state

S = StateType

# The table from docs/states.md, written out independently of runs/states.py so the two are
# checked against each other: to-state -> the from-states it may be entered from.
DESIGN_TABLE: dict[StateType, set[StateType]] = {
    S.SCHEDULED: {S.SCHEDULED, S.PAUSED},  # (+ FAILED/CRASHED as AwaitingRetry with retries left, below)
    S.PENDING: {S.SCHEDULED},
    S.RUNNING: {S.PENDING, S.PAUSED},
    S.COMPLETED: {S.RUNNING},
    S.FAILED: {S.RUNNING, S.PENDING, S.PAUSED},
    S.CRASHED: {S.PENDING, S.RUNNING},
    S.CANCELLING: {S.PENDING, S.RUNNING, S.PAUSED},
    S.CANCELLED: {S.SCHEDULED, S.CANCELLING, S.PAUSED},
    S.PAUSED: {S.RUNNING},
}

# How to reach each state legally from a new (SCHEDULED) run.
PATHS: dict[StateType, list[StateType]] = {
    S.SCHEDULED: [],
    S.PENDING: [S.PENDING],
    S.RUNNING: [S.PENDING, S.RUNNING],
    S.COMPLETED: [S.PENDING, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.PENDING, S.RUNNING, S.FAILED],
    S.CRASHED: [S.PENDING, S.RUNNING, S.CRASHED],
    S.CANCELLING: [S.PENDING, S.RUNNING, S.CANCELLING],
    S.CANCELLED: [S.CANCELLED],
    S.PAUSED: [S.PENDING, S.RUNNING, S.PAUSED],
}


def bring_to(run: FlowRun, state: StateType) -> FlowRun:
    for step in PATHS[state]:
        set_state(run, step, retry=False)
    assert run.state_type == state
    return run


PAIRS = list(itertools.product(list(S), list(S)))


@pytest.mark.django_db
@pytest.mark.parametrize(("start", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair_of_the_table(make_run: Any, start: StateType, target: StateType) -> None:
    run = bring_to(make_run(), start)
    history_before = run.states.count()
    if start in DESIGN_TABLE[target]:
        set_state(run, target)
        stored = FlowRun.objects.get(pk=run.pk)
        assert stored.state_type == target
        assert stored.states.count() == history_before + 1
        last = stored.states.last()
        assert (last.type, last.name) == (target, stored.state_name)
    else:
        with pytest.raises(InvalidTransition) as excinfo:
            set_state(run, target)
        assert str(start) in str(excinfo.value) and str(target) in str(excinfo.value)
        assert FlowRun.objects.get(pk=run.pk).state_type == start
        assert run.states.count() == history_before


@pytest.mark.django_db
@pytest.mark.parametrize("failed", [S.FAILED, S.CRASHED])
def test_a_failed_run_goes_back_only_as_awaiting_retry_and_only_with_retries_left(make_run: Any, failed: S) -> None:
    with_retries = bring_to(make_run(), S.RUNNING)
    FlowRun.objects.filter(pk=with_retries.pk).update(retries=1)
    with_retries.retries = 1
    set_state(with_retries, failed, retry=False)

    with pytest.raises(InvalidTransition, match="AwaitingRetry"):
        set_state(with_retries, S.SCHEDULED)
    set_state(with_retries, S.SCHEDULED, name="AwaitingRetry")
    assert with_retries.state_name == "AwaitingRetry"

    without = bring_to(make_run(), failed)
    with pytest.raises(InvalidTransition, match="no retries left"):
        set_state(without, S.SCHEDULED, name="AwaitingRetry")


@pytest.mark.django_db
def test_the_error_names_both_states(run: FlowRun) -> None:
    with pytest.raises(InvalidTransition) as excinfo:
        set_state(run, S.COMPLETED)
    assert str(excinfo.value) == "A flow run cannot move from SCHEDULED to COMPLETED."


@pytest.mark.django_db
def test_a_state_name_must_belong_to_its_type(run: FlowRun) -> None:
    with pytest.raises(Exception, match="not a name of state PENDING"):
        set_state(run, S.PENDING, name="Late")
    assert FlowRun.objects.get(pk=run.pk).state_type == S.SCHEDULED


@pytest.mark.django_db
def test_a_stale_caller_loses_the_compare_and_swap(run: FlowRun) -> None:
    stale = FlowRun.objects.get(pk=run.pk)
    set_state(run, S.PENDING)
    with pytest.raises(StateConflict) as excinfo:
        set_state(stale, S.PENDING)
    assert "it is PENDING now, not SCHEDULED" in str(excinfo.value)
    assert FlowRunState.objects.filter(flow_run=run, type=S.PENDING).count() == 1
