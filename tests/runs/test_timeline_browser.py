"""The run page's Gantt chart and the home page's duration scatter, in a real browser (Debian's
Chromium through Playwright). The Gantt screenshot is kept in test-artifacts/ to look at."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.models import FlowRun, TaskRun
from tests.browser import ARTIFACTS, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATES = ["COMPLETED"] * 14 + ["FAILED"] * 3 + ["RUNNING"] * 2 + ["CRASHED"]
COLOURS = {
    "COMPLETED": "rgb(21, 128, 61)",
    "FAILED": "rgb(220, 38, 38)",
    "RUNNING": "rgb(37, 99, 235)",
    "CRASHED": "rgb(234, 88, 12)",
}


def twenty_tasks(run: FlowRun) -> list[TaskRun]:
    start = timezone.now() - timedelta(minutes=5)
    FlowRun.objects.filter(pk=run.pk).update(state_type="RUNNING", state_name="Running", started_at=start)
    tasks = []
    for i, state in enumerate(STATES):
        began = start + timedelta(seconds=10 * i)
        ended = None if state == "RUNNING" else began + timedelta(seconds=5 + 3 * (i % 5))
        tasks.append(
            TaskRun.objects.create(
                flow_run=run,
                name=f"load-partition-{i:02d}",
                task_key=f"load-{i}",
                state_type=state,
                state_name=state.title(),
                state_at=ended or began,
                started_at=began,
                ended_at=ended,
            )
        )
    return tasks


def test_the_run_page_draws_twenty_task_runs_as_a_gantt_chart(signed_in: Any, run: FlowRun) -> None:
    tasks = twenty_tasks(run)
    page = signed_in
    page.goto(f"{page.base}{run.get_absolute_url()}")
    rows = page.locator(".gantt .ganttrow")
    expect(rows).to_have_count(20)
    bars = page.locator(".gantt .ganttrow rect.seg")
    expect(bars).to_have_count(20)
    # Rows in start order, labelled by task, each bar right of the one before (they start 10 s apart).
    labels = page.locator(".gantt .ganttlabel").all_text_contents()
    assert labels == [t.name for t in tasks]
    xs = [float(bars.nth(i).get_attribute("x")) for i in range(20)]
    assert xs == sorted(xs) and len(set(xs)) == 20
    for i, state in enumerate(STATES):
        fill = bars.nth(i).evaluate("el => getComputedStyle(el).fill")
        assert fill == COLOURS[state], (i, state, fill)
    box = page.locator(".gantt svg").bounding_box()
    assert box["width"] > 500 and box["height"] > 20 * 15, box
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#run-task-runs").screenshot(path=str(ARTIFACTS / "gantt-20-tasks.png"))


def test_the_home_chart_switches_to_a_duration_scatter(signed_in: Any, make_run: Any) -> None:
    now = timezone.now()
    runs = [make_run(scheduled_at=now - timedelta(hours=h)) for h in (1, 2, 3)]
    for i, r in enumerate(runs):
        FlowRun.objects.filter(pk=r.pk).update(
            state_type="COMPLETED" if i else "FAILED",
            started_at=r.expected_start_at,
            ended_at=r.expected_start_at + timedelta(seconds=30 * (i + 1)),
        )
    page = signed_in
    page.goto(f"{page.base}/")
    expect(page.locator(".chart .bar")).to_have_count(24)
    page.get_by_role("link", name="Duration per run").click()
    dots = page.locator(".scatter circle.dot")
    expect(dots).to_have_count(3)
    # The longest run is highest (smallest y); the failed one is red.
    ys = {
        dots.nth(i).evaluate("el => el.closest('a').getAttribute('href')"): float(dots.nth(i).get_attribute("cy"))
        for i in range(3)
    }
    assert ys[runs[2].get_absolute_url()] < ys[runs[1].get_absolute_url()] < ys[runs[0].get_absolute_url()]
    failed = page.locator(".scatter circle.dot[data-state=FAILED]")
    assert failed.evaluate("el => getComputedStyle(el).fill") == "rgb(220, 38, 38)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".scatter").screenshot(path=str(ARTIFACTS / "duration-scatter.png"))
