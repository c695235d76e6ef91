"""What a new user trips on in the dashboard, checked in a real browser (Debian's Chromium via
Playwright). Each test leaves a screenshot in test-artifacts/new-user-*.png to look at."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from deployments.models import Deployment, DeploymentSchedule, Flow
from deployments.services import create_flow_run
from orchestrator.core.states import StateType as S
from runs.services import set_state
from tests.browser import ARTIFACTS, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = "nightly-warehouse-backfill-for-european-customers_v2"

# The lines a text wraps into, as the browser laid them out: one string per line.
LINES_JS = """(el) => {
  const lines = [];
  let top = null;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i); range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      if (top === null || Math.abs(rect.top - top) > 2) { lines.push(""); top = rect.top; }
      lines[lines.length - 1] += node.data[i];
    }
  }
  return lines;
}"""


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"new-user-{name}.png"), full_page=True)


def failed_requests(page: Any) -> list[str]:
    failures: list[str] = []
    page.on(
        "response",
        lambda response: failures.append(f"{response.status} {response.url}") if response.status >= 400 else None,
    )
    return failures


def long_deployment(pool: Any) -> Deployment:
    return Deployment.objects.create(
        flow=Flow.objects.create(name="leonardo_dicapriflow"),
        name=LONG_NAME,
        work_pool=pool,
        entrypoint="hello.py:leonardo_dicapriflow",
        parameters={"name": "Leo"},
        enforce_parameter_schema=False,
    )


def test_the_favicon_is_served_on_the_dashboard_and_the_admin(signed_in: Any) -> None:
    page = signed_in
    failures = failed_requests(page)
    for path in ("/", "/deployments/", "/admin/"):
        page.goto(page.base + path)
        page.wait_for_load_state("networkidle")
    assert failures == []
    assert page.request.get(page.base + "/favicon.ico").status == 200
    icon = page.locator('link[rel="icon"]')
    page.goto(page.base + "/")
    assert page.request.get(page.base + icon.get_attribute("href")).status == 200
    shot(page, "home-favicon")


def test_the_deployments_table_keeps_next_run_on_one_line_with_its_day(signed_in: Any, pool: Any) -> None:
    page = signed_in
    page.set_viewport_size({"width": 980, "height": 800})
    dep = long_deployment(pool)
    dep.tags = ["tutorial", "nightly", "europe"]
    dep.save()
    DeploymentSchedule.objects.create(
        deployment=dep, slug="weekdays", kind="cron", cron="30 2 * * 1-5", timezone="Europe/Berlin"
    )
    # Later today (or tomorrow, near midnight): a time alone would not say which day.
    create_flow_run(dep, scheduled_at=timezone.now() + timedelta(hours=1))
    page.goto(page.base + "/deployments/")
    header = page.locator("table.deployments th", has_text="Next run")
    assert header.evaluate(LINES_JS) == ["Next run"]
    next_run = page.locator(f"#deployment-{dep.pk} td.nextrun time")
    expect(next_run).to_have_text(re.compile(r"^(Today|Tomorrow|[A-Z][a-z]{2} \d{1,2},|\d{4}-\d\d-\d\d) \d\d:\d\d$"))
    shot(page, "deployments")


def test_a_finished_runs_page_wraps_names_between_parts_shows_whole_loggers_and_is_not_live(
    signed_in: Any, pool: Any
) -> None:
    page = signed_in
    dep = long_deployment(pool)
    run, _ = create_flow_run(dep)
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    now = timezone.now()
    run.logs.create(message="Executing flow run", logger="orchestrator.runs.engine", timestamp=now, level=20)
    run.logs.create(message="Hello Leo!", logger="Task run 'log_message-dd6ef374-0'", timestamp=now, level=20)
    set_state(run, S.COMPLETED)
    page.goto(f"{page.base}/runs/{run.pk}/")
    expect(page.locator("#run-header .badge")).to_have_text("Completed")
    # Finished: the logs may still catch a last batch, but nothing claims the run is live.
    expect(page.locator("#run-logs .live")).to_have_count(0)

    link = page.locator("#run-header dd a", has_text="nightly")
    lines = link.evaluate(LINES_JS)
    assert "".join(lines) == f"leonardo_dicapriflow/{LONG_NAME}"
    assert len(lines) > 1, "the name is long enough to wrap in its column"
    for line in lines[:-1]:
        assert line[-1] in "/-_.", f"the name broke inside a word: {lines}"

    for source in page.locator("#run-logs .source").all():
        assert source.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), source.inner_text()
    expect(page.locator("#run-logs")).to_contain_text("orchestrator.runs.engine")
    shot(page, "run-page")


def test_the_admin_deployment_page_fits_the_window(signed_in: Any, pool: Any) -> None:
    page = signed_in
    dep = long_deployment(pool)
    DeploymentSchedule.objects.create(
        deployment=dep, slug="mornings", kind="cron", cron="0 9 * * *", timezone="Europe/Berlin"
    )
    page.goto(f"{page.base}/admin/deployments/deployment/{dep.pk}/change/")
    expect(page.locator("#content h2").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide"
    shot(page, "admin-deployment")


def test_the_home_chart_shows_a_new_installs_first_runs_at_a_finer_scale(signed_in: Any, pool: Any) -> None:
    page = signed_in
    dep = long_deployment(pool)
    now = timezone.now()
    for minutes_ago in (1, 4, 8, 13):
        run, _ = create_flow_run(dep, scheduled_at=now - timedelta(minutes=minutes_ago))
        set_state(run, S.PENDING)
        set_state(run, S.RUNNING)
        set_state(run, S.COMPLETED)
    page.goto(page.base + "/")
    expect(page.locator(".chart figcaption")).to_have_text("Runs per minute, last 24 minutes")
    expect(page.locator(".chart rect.seg")).to_have_count(4)
    heights = [
        float(h) for h in page.locator(".chart rect.seg").evaluate_all("els => els.map(e => e.getAttribute('height'))")
    ]
    assert min(heights) > 100, heights  # full-height bars, not slivers
    shot(page, "home-chart")
