"""Gantt layout: start order, nesting under a parent task run when the link exists, bars to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

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
