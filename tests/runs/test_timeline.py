"""Gantt layout: start order, nesting under a parent task run when the link exists, bars to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from runs.timeline import build_gantt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def task(pk: int, start: int | None, end: int | None, parent: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        pk=pk,
        name=f"t{pk}",
        state_type="COMPLETED" if end else "RUNNING",
        state_name="x",
        started_at=T0 + timedelta(seconds=start) if start is not None else None,
        ended_at=T0 + timedelta(seconds=end) if end is not None else None,
        created_at=T0,
        parent_task_run_id=parent,
    )


def test_children_sit_under_their_parent_indented() -> None:
    gantt = build_gantt(
        [task(1, 0, 10), task(3, 2, 4, parent=2), task(2, 1, 9), task(4, 5, 6, parent=2)],
        now=T0 + timedelta(seconds=20),
    )
    assert gantt is not None
    assert [(r.label, r.depth) for r in gantt.rows] == [("t1", 0), ("t2", 0), ("t3", 1), ("t4", 1)]
    first, second = gantt.rows[0], gantt.rows[1]
    assert first.x < second.x and first.width > second.width


def test_a_running_task_reaches_now_and_an_unstarted_one_has_no_bar() -> None:
    gantt = build_gantt([task(1, 0, 5), task(2, 5, None), task(3, None, None)], now=T0 + timedelta(seconds=10))
    assert gantt is not None
    running = next(r for r in gantt.rows if r.label == "t2")
    assert running.running and abs(running.x + running.width - (gantt.width - 10)) < 0.5
    assert next(r for r in gantt.rows if r.label == "t3").width == 0
    assert build_gantt([task(1, None, None)]) is None


@pytest.mark.django_db
def test_a_subflows_task_runs_sit_under_its_placeholder_in_the_parents_chart(make_run: Any) -> None:
    from runs.models import FlowRun, TaskRun
    from runs.timeline import with_subflow_task_runs

    parent = make_run()
    started = {
        "state_type": "COMPLETED",
        "state_name": "Completed",
        "state_at": T0,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=5),
    }
    first = TaskRun.objects.create(flow_run=parent, name="first-0", task_key="first", **started)
    placeholder = TaskRun.objects.create(flow_run=parent, name="child-0", task_key="child", **started)
    child = FlowRun.objects.create(
        flow=parent.flow,
        name="child-run",
        parent_flow_run=parent,
        parent_task_run=placeholder,
        state_type="COMPLETED",
        state_name="Completed",
        state_at=T0,
        expected_start_at=T0,
    )
    TaskRun.objects.create(flow_run=child, name="inner-0", task_key="inner", **started)

    rows = with_subflow_task_runs([first, placeholder], limit=500)
    gantt = build_gantt(rows, now=T0 + timedelta(seconds=10))
    assert gantt is not None
    assert [(r.label, r.depth) for r in gantt.rows] == [("first-0", 0), ("child-0", 0), ("inner-0", 1)]
