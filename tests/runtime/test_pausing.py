"""Pausing for input (the process waits) and suspending (the process exits, a worker runs the
flow again once resumed): the API, validation with field errors, timeouts, cancelling."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pydantic
import pytest
from django.utils import timezone

from orchestrator import flow, get_run_logger, pause_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun, FlowRunInput
from runs.services import fail_expired_pauses, request_cancellation, set_state
from runs.services import pause_flow_run as pause_service
from tests.workpools.test_runworker import wait_for

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


class Approval(pydantic.BaseModel):
    approved: bool
    reviewer: str
    items: int = 1


def start_in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_paused_run_gets_typed_input_through_the_api_after_a_refused_one(api_as: Any) -> None:
    @flow
    def needs_approval() -> str:
        answer = pause_flow_run(wait_for_input=Approval, timeout=60, poll_interval=0.05)
        get_run_logger().info(f"approved={answer.approved} by {answer.reviewer}")
        return f"{type(answer).__name__}:{answer.reviewer}:{answer.items}"

    thread, outcome = start_in_thread(needs_approval)
    run = wait_for(lambda: FlowRun.objects.filter(state_type=S.PAUSED).first(), 30, "the pause")
    assert run.state_name == "Paused"
    operator, reader = api_as("trigger"), api_as("read")
    assert reader.post(f"/api/flow-runs/{run.pk}/resume/", json={"input": {}}).status_code == 403
    bad = operator.post(f"/api/flow-runs/{run.pk}/resume/", json={"input": {"approved": "perhaps", "items": "x"}})
    assert bad.status_code == 400, bad.text
    assert set(bad.json()["errors"]) == {"approved", "reviewer", "items"}
    assert FlowRun.objects.get(pk=run.pk).state_type == S.PAUSED
    good = operator.post(
        f"/api/flow-runs/{run.pk}/resume/", json={"input": {"approved": True, "reviewer": "Ada", "items": "3"}}
    )
    assert good.status_code == 200, good.text
    thread.join(30)
    assert outcome == {"value": "Approval:Ada:3"}
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED
    assert list(run.states.values_list("name", flat=True))[-4:] == ["Running", "Paused", "Running", "Completed"]
    again = operator.post(f"/api/flow-runs/{run.pk}/resume/", json={"input": {}})
    assert again.status_code == 409 and "not paused" in again.json()["detail"]


def test_a_pause_nobody_answers_fails_the_run_with_a_message() -> None:
    @flow
    def waits() -> None:
        pause_flow_run(timeout=0.3, poll_interval=0.05)

    with pytest.raises(TimeoutError, match="paused for 0.3 s without a resume"):
        waits()
    run = FlowRun.objects.get()
    assert run.state_type == S.FAILED and "paused for 0.3 s without a resume" in run.state_message


def test_suspending_a_run_with_no_deployment_fails_it_saying_why() -> None:
    from orchestrator import suspend_flow_run

    @flow
    def suspends() -> None:
        suspend_flow_run()

    with pytest.raises(Exception, match="Only a deployment's run can be suspended"):
        suspends()


def test_an_expired_suspension_fails_and_a_suspended_run_cancels_at_once(make_run: Any) -> None:
    expiring, cancelled = make_run(), make_run()
    for run in (expiring, cancelled):
        set_state(run, S.PENDING)
        set_state(run, S.RUNNING)
        pause_service(run, key="pause-0", schema=Approval.model_json_schema(), timeout_seconds=60, suspend=True)
        assert (run.state_type, run.state_name, run.worker_id) == (S.PAUSED, "Suspended", None)
    FlowRunInput.objects.filter(flow_run=expiring).update(timeout_at=timezone.now() - timedelta(seconds=1))
    assert fail_expired_pauses() == 1
    expiring.refresh_from_db()
    assert expiring.state_type == S.FAILED and "timed out after waiting" in expiring.state_message
    request_cancellation(cancelled, by="alice")
    assert cancelled.state_type == S.CANCELLED
