"""A suspended run resumed from the dashboard's form in a real browser (Debian's Chromium through
Playwright): a real worker runs the flow, which suspends (its process exits); a person fills
the form generated from the flow's pydantic model, leaving a required field empty first; the worker runs the
flow again and it gets the typed input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.browser import expect
from tests.deployments.deploy_helpers import logged, start_worker, stop, wait_until_finished
from tests.workpools.test_runworker import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
S = StateType


def test_a_suspended_run_is_resumed_from_the_form_with_typed_input(
    signed_in: Any,
    pool: Any,
    deploy_runtime: Any,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    tab = signed_in
    run, _ = create_flow_run(deploy_runtime(pool, "approval"))
    worker, output = start_worker(subprocess_env, pool.name, cwd=tmp_path)
    try:
        wait_for(
            lambda: FlowRun.objects.filter(pk=run.pk, state_name="Suspended").exists(),
            60,
            "the suspension",
            processes=[worker],
        )
        wait_for(lambda: "final state Suspended" in "".join(output), 30, "the suspended process to exit")
        tab.goto(f"{tab.base}/runs/{run.pk}/")
        form = tab.locator("#resume-form")
        expect(tab.locator("#run-input h2")).to_contain_text("Suspended: the flow asks for input")
        expect(tab.locator("#run-input")).to_contain_text("Approve the shipment.")
        tab.fill('[name="parameters.items"]', "3")
        form.locator("button[type=submit]").click()  # no reviewer: the field says so, nothing resumes
        expect(tab.locator('[data-field="parameters.reviewer"] .errorlist')).to_contain_text("required")
        assert FlowRun.objects.get(pk=run.pk).state_name == "Suspended"
        tab.fill('[name="parameters.reviewer"]', "Grace")
        tab.check('[name="parameters.approved"]')
        tab.fill('[name="parameters.items"]', "3")
        tab.locator("#resume-form button[type=submit]").click()
        expect(tab.locator(".flash").first).to_contain_text("resumed")
        wait_until_finished(run)
    finally:
        stop(worker)
    text = "".join(output)
    assert run.state_type == S.COMPLETED, (run.state_message, text)
    assert logged(run, "got Approval: approved=True by Grace for 3 items")
    names = list(run.states.values_list("name", flat=True))
    assert names.count("Running") + names.count("Retrying") == 2 and "Suspended" in names, names
    assert run.inputs.get().provided_by == "ui:alice"
    tab.goto(f"{tab.base}/runs/{run.pk}/")
    expect(tab.locator("#run-input")).to_have_count(0)
