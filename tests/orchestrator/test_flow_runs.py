"""A flow called as a function: its ad-hoc run, parameters, failures, timeout, retries, cancel."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pydantic
import pytest

from orchestrator import flow, get_run_logger, task
from orchestrator.core.errors import ValidationError
from orchestrator.core.states import StateType
from orchestrator.sdk.execution import FlowRunStopped
from runs.models import FlowRun, TaskRun
from runs.services import request_cancellation

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


def only_run() -> FlowRun:
    return FlowRun.objects.get()


def test_a_called_flow_is_an_adhoc_run_that_completes() -> None:
    @flow(name="hello", description="Says hello.")
    def hello(name: str = "world") -> str:
        return f"Hello {name}"

    assert hello("Leo") == "Hello Leo"
    run = only_run()
    assert run.deployment is None and run.work_pool is None and run.created_by == "script"
    assert (run.flow.name, run.flow.description) == ("hello", "Says hello.")
    assert run.parameters == {"name": "Leo"}
    assert (run.state_type, run.state_message, run.run_count) == (S.COMPLETED, "All states completed.", 1)
    assert list(run.states.values_list("name", flat=True)) == ["Scheduled", "Pending", "Running", "Completed"]
    assert run.heartbeat_at is not None


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


def test_parameters_are_coerced_to_the_annotations_before_the_flow_starts() -> None:
    seen: dict[str, Any] = {}

    @flow
    def typed(n: int, when: date, point: Point, tags: list[str] | None = None) -> None:
        seen.update(n=n, when=when, point=point, tags=tags)

    typed("5", "2024-02-29", {"x": "3"})
    assert seen == {"n": 5, "when": date(2024, 2, 29), "point": Point(x=3), "tags": None}
    assert only_run().parameters == {"n": "5", "when": "2024-02-29", "point": {"x": "3"}}


def test_a_parameter_of_the_wrong_type_fails_the_run_before_it_starts_naming_it() -> None:
    called: list[int] = []

    @flow
    def counting(n: int) -> None:
        called.append(n)

    with pytest.raises(ValidationError, match="Invalid parameter 'n': Input should be a valid integer") as excinfo:
        counting("five")
    assert list(excinfo.value.errors) == ["n"]
    assert called == []
    run = only_run()
    assert run.state_type == S.FAILED and run.run_count == 0
    assert run.state_message.startswith("Invalid parameters: Invalid parameter 'n'")


def test_a_failing_flow_records_the_exception_and_its_traceback() -> None:
    @flow
    def explode() -> None:
        get_run_logger().info("about to fail")
        raise KeyError("missing-key")

    with pytest.raises(KeyError):
        explode()
    run = only_run()
    assert (run.state_type, run.state_message) == (S.FAILED, "KeyError: 'missing-key'")
    traceback_log = run.logs.get(message__startswith="Encountered exception during execution")
    assert "Traceback (most recent call last)" in traceback_log.message and "missing-key" in traceback_log.message
    assert traceback_log.level == 40
    assert run.logs.filter(message="about to fail").exists()


def test_a_flow_over_its_timeout_is_stopped_even_while_it_sleeps() -> None:
    @task
    def quick() -> int:
        return 1

    @flow(timeout_seconds=0.5)
    def sleepy() -> None:
        quick()
        time.sleep(30)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sleepy()
    assert time.monotonic() - started < 5
    run = only_run()
    assert (run.state_type, run.state_message) == (
        S.FAILED,
        "TimeoutError: Flow run exceeded its timeout of 0.5 seconds",
    )


def test_a_flow_over_its_timeout_while_waiting_for_tasks_leaves_no_task_run_running() -> None:
    @task
    def forever() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)

    @flow(timeout_seconds=0.5)
    def waiting() -> None:
        forever.submit().result()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        waiting()
    assert time.monotonic() - started < 5
    assert only_run().state_type == S.FAILED
    task_run = TaskRun.objects.get()
    assert task_run.state_type == S.CRASHED
    assert task_run.state_message == "Its flow run ended Failed."


def test_a_flow_with_retries_is_retried_here_after_its_delay_and_completes() -> None:
    attempts: list[int] = []

    @flow(retries=2, retry_delay_seconds=1)
    def shaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first attempt fails")
        return "second time lucky"

    started = time.monotonic()
    assert shaky() == "second time lucky"
    assert time.monotonic() - started >= 0.9  # waited for the retry delay
    run = only_run()
    assert (run.state_type, run.run_count, run.retries, run.retry_delay_seconds) == (S.COMPLETED, 2, 2, 1)
    assert list(run.states.values_list("name", flat=True)) == [
        "Scheduled",
        "Pending",
        "Running",
        "Failed",
        "AwaitingRetry",
        "Pending",
        "Retrying",
        "Completed",
    ]


def test_a_flow_cancelled_while_it_runs_stops_and_ends_cancelled(settings: Any) -> None:
    settings.RUN_HEARTBEAT_SECONDS = 0.1
    started = threading.Event()

    @flow
    def long_haul() -> None:
        started.set()
        time.sleep(30)

    def cancel_when_started() -> None:
        started.wait(10)
        request_cancellation(FlowRun.objects.get(), by="test")

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    began = time.monotonic()
    with pytest.raises(FlowRunStopped, match="did not finish"):
        long_haul()
    canceller.join()
    assert time.monotonic() - began < 10
    run = only_run()
    assert run.state_type == S.CANCELLED
    assert list(run.states.values_list("name", flat=True))[-2:] == ["Cancelling", "Cancelled"]


@pytest.mark.parametrize("options", [{"retries": -1}, {"timeout_seconds": -1}, {"retry_delay_seconds": "later"}])
def test_bad_flow_options_are_refused_when_the_decorator_runs(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        flow(**options)(lambda: None)


def test_async_functions_are_refused_with_a_clear_error() -> None:
    async def later() -> None: ...

    with pytest.raises(TypeError, match="async def later is not supported yet"):
        flow(later)
    with pytest.raises(TypeError, match="@task takes a plain function"):
        task(later)


def test_a_flow_knows_its_parameter_schema() -> None:
    @flow
    def leonardo_dicapriflow(name: str, times: int = 1) -> None:
        pass

    schema = leonardo_dicapriflow.parameter_schema
    assert schema["required"] == ["name"]
    assert schema["properties"]["times"]["default"] == 1
