"""Two more server-side SVG charts, laid out as plain geometry the templates turn into shapes
coloured by state (as runs/charts.py does):

- the run page's Gantt chart: one bar per task run from its start to its end (or now), in
  start order; task runs nested under a parent (a subflow's tasks) are indented under it when
  the task-run model has a `parent_task_run` link (the subflows work adds it), else flat;
- the home page's duration scatter: one dot per run of the window, at its start time and its
  duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

GANTT_WIDTH, GANTT_LABEL, ROW, BAR = 760, 180, 20, 13
SCATTER_WIDTH, SCATTER_HEIGHT, SCATTER_LEFT, SCATTER_BOTTOM, SCATTER_TOP = 720, 180, 64, 22, 8
INDENT = 12


@dataclass
class GanttRow:
    label: str
    state_type: str
    state_name: str
    y: float
    x: float
    width: float
    depth: int
    duration: str
    running: bool


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Gantt:
    rows: list[GanttRow]
    ticks: list[Tick]
    width: int = GANTT_WIDTH
    label_width: int = GANTT_LABEL
    height: int = 0
    axis_y: float = 0


def _seconds_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def _nesting(task_runs: list[Any]) -> list[tuple[Any, int]]:
    """(task run, depth) in start order, children right under their parent."""
    parent_of = {t.pk: getattr(t, "parent_task_run_id", None) for t in task_runs}
    children: dict[Any, list[Any]] = {}
    for task in task_runs:
        parent = parent_of[task.pk] if parent_of[task.pk] in parent_of else None
        children.setdefault(parent, []).append(task)
    ordered: list[tuple[Any, int]] = []

    def walk(parent: Any, depth: int) -> None:
        for task in children.get(parent, []):
            ordered.append((task, depth))
            walk(task.pk, depth + 1)

    walk(None, 0)
    return ordered


def with_subflow_task_runs(task_runs: list[Any], *, limit: int, depth: int = 3) -> list[Any]:
    """`task_runs` of a run plus, nested under each subflow's placeholder task run, the task runs
    of the child flow run it stands for (and theirs, `depth` levels down), at most `limit` in all.
    The nesting rides on `parent_task_run_id`, which _nesting reads."""
    rows = list(task_runs)
    level = [t for t in task_runs if getattr(t, "pk", None) is not None]
    for _ in range(depth):
        if len(rows) >= limit or not level:
            break
        placeholders = {t.pk: t for t in level}
        children = list(
            type(level[0])
            .objects.filter(flow_run__parent_task_run__in=list(placeholders))
            .select_related("flow_run")
            .order_by("created_at")[: limit - len(rows)]
        )
        for child in children:
            if child.flow_run.parent_task_run_id in placeholders and getattr(child, "parent_task_run_id", None) is None:
                child.parent_task_run_id = child.flow_run.parent_task_run_id
        rows.extend(children)
        level = children
    return rows[:limit]


def build_gantt(task_runs: list[Any], *, now: datetime | None = None) -> Gantt | None:
    """Lay out `task_runs` (any order) as Gantt rows; None when none has started."""
    now = now or timezone.now()
    started = [t for t in task_runs if t.started_at is not None]
    if not started:
        return None
    start = min(t.started_at for t in started)
    end = max((t.ended_at or now) for t in started)
    span = max((end - start).total_seconds(), 0.001)
    plot = GANTT_WIDTH - GANTT_LABEL - 10
    rows = []
    ordered = _nesting(sorted(task_runs, key=lambda t: (t.started_at or now, t.created_at)))
    for index, (task, depth) in enumerate(ordered):
        began = task.started_at
        finished = task.ended_at or now
        offset = ((began - start).total_seconds() / span * plot) if began else 0.0
        length = ((finished - began).total_seconds() / span * plot) if began else 0.0
        rows.append(
            GanttRow(
                label=task.name,
                state_type=task.state_type,
                state_name=task.state_name,
                y=index * ROW + 4,
                x=round(GANTT_LABEL + offset, 2),
                width=round(max(length, 2.0), 2) if began else 0,
                depth=depth,
                duration=_seconds_text((finished - began).total_seconds()) if began else "not started",
                running=began is not None and task.ended_at is None,
            )
        )
    axis_y = len(rows) * ROW + 6
    ticks = [
        Tick(round(GANTT_LABEL + plot * i / 4, 2), "+" + _seconds_text(span * i / 4) if i else "0") for i in range(5)
    ]
    return Gantt(rows=rows, ticks=ticks, height=int(axis_y + 18), axis_y=axis_y)


@dataclass
class Dot:
    x: float
    y: float
    state_type: str
    name: str
    url: str
    duration: str
    started: datetime


@dataclass
class Scatter:
    dots: list[Dot]
    peak: str
    since: datetime
    until: datetime
    ticks: list[Tick] = field(default_factory=list)
    width: int = SCATTER_WIDTH
    height: int = SCATTER_HEIGHT
    left: int = SCATTER_LEFT
    top: int = SCATTER_TOP
    baseline: int = SCATTER_HEIGHT - SCATTER_BOTTOM


def build_duration_scatter(
    runs: list[Any], since: datetime, until: datetime, *, now: datetime | None = None
) -> Scatter:
    """One dot per run that started: x its start time within [since, until], y its duration
    (unfinished runs: so far) against the longest."""
    now = now or timezone.now()
    # One reverse() for all the dots: a day holds thousands of runs, and reverse() each is slow.
    placeholder = "00000000-0000-0000-0000-000000000000"
    pattern = reverse("runs:detail", args=[placeholder])
    timed = [(r, ((r.ended_at or now) - r.started_at).total_seconds()) for r in runs if r.started_at is not None]
    longest = max((seconds for _, seconds in timed), default=0.0) or 1.0
    window = max((until - since).total_seconds(), 1.0)
    plot_width = SCATTER_WIDTH - SCATTER_LEFT - 6
    plot_height = SCATTER_HEIGHT - SCATTER_BOTTOM - SCATTER_TOP
    dots = [
        Dot(
            x=round(
                SCATTER_LEFT + 3 + plot_width * min(max((r.started_at - since).total_seconds(), 0), window) / window, 2
            ),
            y=round(SCATTER_HEIGHT - SCATTER_BOTTOM - plot_height * seconds / longest, 2),
            state_type=r.state_type,
            name=r.name,
            url=pattern.replace(placeholder, str(r.pk)),
            duration=_seconds_text(seconds),
            started=r.started_at,
        )
        for r, seconds in timed
    ]
    ticks = [
        Tick(
            round(SCATTER_LEFT + plot_width * i / 8, 2),
            timezone.localtime(since + timedelta(seconds=window * i / 8)).strftime("%H:%M"),
        )
        for i in range(8)  # the last one would be cut by the edge
    ]
    return Scatter(dots=dots, peak=_seconds_text(longest) if timed else "0 s", since=since, until=until, ticks=ticks)
