"""A viewer in a real browser (Debian's Chromium through Playwright) sees every page and no
control; an operator on the same pages sees theirs."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.roles import add_role
from deployments.models import Deployment
from runs.models import FlowRun
from tests.browser import PASSWORD, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHANGES = "form[method=post]:not([action$='/logout/'])"


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".usermenu")).to_contain_text(username)


def pages(base: str, deployment: Deployment, run: FlowRun) -> list[str]:
    return [
        f"{base}/",
        f"{base}/deployments/",
        f"{base}/deployments/{deployment.pk}/",
        f"{base}/runs/",
        f"{base}{run.get_absolute_url()}",
        f"{base}/work-pools/",
    ]


def test_a_viewer_sees_every_page_and_no_control(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    deployment: Deployment,
    run: FlowRun,
) -> None:
    django_user_model.objects.create_user("vera", password=PASSWORD)
    add_role("vera", "viewer")
    sign_in(page, live_server.url, "vera")
    for url in pages(live_server.url, deployment, run):
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        assert page.locator(CHANGES).count() == 0, f"a control on {url}"
        for label in ("Quick Run", "Custom Run", "Cancel run", "Pause pool"):
            assert page.get_by_text(label, exact=True).count() == 0, f"{label} on {url}"
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/")
    expect(page.get_by_text(deployment.name).first).to_be_visible()  # the page is there, only read-only


def test_an_operator_sees_the_controls_of_their_role(
    page: Any,
    live_server: Any,
    django_user_model: Any,
    deployment: Deployment,
    run: FlowRun,
) -> None:
    django_user_model.objects.create_user("otto", password=PASSWORD)
    add_role("otto", "operator")
    sign_in(page, live_server.url, "otto")
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/")
    expect(page.get_by_role("button", name="Quick Run")).to_be_visible()
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("body")).to_contain_text("Cancelled")
    assert FlowRun.objects.get(pk=run.pk).state_type == "CANCELLED"
