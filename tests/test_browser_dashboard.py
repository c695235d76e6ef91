"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright against a live server. A failing test leaves a screenshot in test-artifacts/.

A real `runworker` process polls the pool and runs the Quick Run through the engine, so what
the pages show comes from the real worker, engine and logs.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from deployments.models import Deployment, Flow
from runs.models import FlowRun
from tests.browser import LIVE, PASSWORD, ROOT, expect, real_worker
from workpools.models import WorkQueue

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mark_page(page: Any) -> None:
    """Leave a mark in the page's JavaScript state: a reload would wipe it."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_a_person_signs_in_and_sees_home(page: Any, live_server: Any, admin_user: Any) -> None:
    page.goto(f"{live_server.url}/runs/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".errorlist")).to_be_visible()
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Flow runs")
    page.click(".mainnav >> text=Home")
    expect(page.locator("#counts-title")).to_contain_text("Last 24 hours")
    page.click(".usermenu summary")
    expect(page.locator(".usermenu-panel >> text=Admin")).to_be_visible()
    page.click("text=Log out")
    expect(page.locator("h1")).to_have_text("Sign in")


def test_a_pool_turns_ready_once_a_worker_polls(signed_in: Any, pool: Any, subprocess_env: dict[str, str]) -> None:
    page = signed_in
    page.goto(f"{page.base}/work-pools/")
    card = page.locator('section.pool[data-pool="my-process-pool"]')
    expect(card.locator(".cardhead .health")).to_have_attribute("data-status", "NOT_READY")
    expect(card.locator('tr[data-queue="default"]')).to_contain_text("no worker has polled it yet")
    mark_page(page)

    with real_worker(subprocess_env, "my-process-pool"):
        expect(card.locator(".cardhead .health")).to_have_attribute("data-status", "READY", timeout=LIVE)
        expect(card.locator(".cardhead .health")).to_have_text("Ready")
        expect(card.locator('tr[data-queue="default"] .health')).to_have_text("Ready")
        expect(card.locator('tr[data-worker="laptop-worker"] .health')).to_have_text("Online")
    assert_not_reloaded(page)


def test_quick_run_then_watch_the_run_complete_without_reloading(
    signed_in: Any, pool: Any, subprocess_env: dict[str, str]
) -> None:
    page = signed_in
    # The example flow make up deploys (examples/hello.py), run for real by the worker below.
    deployment = Deployment.objects.create(
        flow=Flow.objects.create(name="leonardo_dicapriflow"),
        name="leonardo-deployment",
        work_pool=pool,
        path=str(ROOT / "examples"),
        entrypoint="hello.py:leonardo_dicapriflow",
        parameters={"name": "Leo"},
        tags=["tutorial", "test"],
        enforce_parameter_schema=False,
    )
    page.goto(f"{page.base}/deployments/")
    row = page.locator(f"#deployment-{deployment.pk}")
    form = row.locator("form", has=page.locator("button", has_text="Quick Run"))
    fields = {
        name: form.locator(f'input[name="{name}"]').get_attribute("value")
        for name in ("csrfmiddlewaretoken", "idempotency_key")
    }
    # Chromium folds a double click on a submit button into one navigation, so send the
    # button's form twice more the way a slow network or an impatient person would.
    action = page.base + form.get_attribute("action")
    for _ in range(2):
        assert page.request.post(action, form=fields, headers={"Referer": page.url}, max_redirects=0).status == 302
    row.locator("button", has_text="Quick Run").dblclick()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    expect(page.locator("#run-header .badge")).to_have_text("Scheduled")
    run = FlowRun.objects.get()
    assert FlowRun.objects.count() == 1, "one button made two runs"
    assert run.parameters == {"name": "Leo"} and page.url.endswith(f"/runs/{run.pk}/")
    mark_page(page)

    # A real worker claims it and the engine runs the flow; the page follows without a reload.
    with real_worker(subprocess_env, "my-process-pool"):
        expect(page.locator("#run-header .badge")).to_have_text("Completed", timeout=LIVE * 3)
    expect(page.locator("#run-header")).to_contain_text("laptop-worker")
    expect(page.locator("#run-logs")).to_contain_text("Hello Leo!", timeout=LIVE)
    expect(page.locator("#run-timeline .badge")).to_have_text(["Scheduled", "Pending", "Running", "Completed"])
    assert_not_reloaded(page)

    # Once finished, every part stops polling (the logs a few seconds after the rest).
    expect(page.locator("[hx-trigger]")).to_have_count(0, timeout=LIVE + 5_000)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    page.wait_for_timeout(3_000)
    assert polls == []
    assert_not_reloaded(page)


def test_a_bad_value_in_the_custom_run_form_shows_next_to_the_field(signed_in: Any, make_deployment: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "times": {"type": "integer", "default": 1}},
        "required": ["name"],
    }
    dep = make_deployment("greeter", parameters={"name": "Leo"}, parameter_schema=schema)
    page = signed_in
    page.goto(f"{page.base}/deployments/")
    page.locator(f"#deployment-{dep.pk}").locator("text=Custom Run").click()
    expect(page.locator("h1")).to_have_text("Custom run")
    page.fill('[name="parameters.times"]', "1.5")
    page.click("button:has-text('Run')")

    field = page.locator('[data-field="parameters.times"]')
    expect(field.locator(".errorlist")).to_contain_text("Input should be a valid integer")
    expect(field.locator("input")).to_have_value("1.5")
    assert not FlowRun.objects.exists()


def test_pausing_a_queue_shows_it_paused(signed_in: Any, pool: Any) -> None:
    page = signed_in
    page.goto(f"{page.base}/work-pools/")
    row = page.locator('section.pool[data-pool="my-process-pool"] tr[data-queue="default"]')
    mark_page(page)
    row.locator("button", has_text="Pause").click()
    expect(row.locator(".health")).to_have_text("Paused")
    expect(row).to_contain_text("the queue is paused")
    assert WorkQueue.objects.get(pool=pool, name="default").paused
    row.locator("button", has_text="Resume").click()
    expect(row.locator(".health")).not_to_have_text("Paused")
    assert not WorkQueue.objects.get(pool=pool, name="default").paused
    assert_not_reloaded(page)
