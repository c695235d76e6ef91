"""Subflows and results in this process (the direct transport, a real database): a flow called
inside a flow is a child run with a placeholder task run; results go to result storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import flow, get_flow_run_result, task
from orchestrator.core.errors import NotFound
from orchestrator.core.states import StateType
from runs.models import FlowRun, TaskRun
from runs.services import request_cancellation

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


@flow
def double(n: int) -> int:
    return n * 2


@flow
def explode(reason: str) -> None:
    raise ValueError(reason)


def test_a_flow_called_in_a_flow_is_a_child_run_with_a_placeholder_task_run_in_its_parent() -> None:
    @flow
    def parent() -> int:
        return double(3) + double("4")  # type: ignore[arg-type]  # "4" is coerced, as for any run

    assert parent() == 14
    top = FlowRun.objects.get(parent_flow_run__isnull=True)
    children = list(top.child_runs.order_by("created_at"))
    assert [c.flow.name for c in children] == ["double", "double"]
    assert [c.parameters for c in children] == [{"n": 3}, {"n": "4"}]
    assert all(c.state_type == S.COMPLETED for c in children)
    placeholders = list(TaskRun.objects.filter(flow_run=top).order_by("created_at"))
    assert [p.name for p in placeholders] == ["double-0", "double-1"]
    assert [p.state_type for p in placeholders] == [S.COMPLETED, S.COMPLETED]
    assert {c.parent_task_run_id for c in children} == {p.pk for p in placeholders}


def test_a_failing_subflow_raises_in_its_parent_unless_return_state_and_invalid_parameters_fail_it() -> None:
    seen: dict[str, Any] = {}

    @flow
    def parent() -> str:
        state = explode("boom", return_state=True)
        seen["state"] = (state.type, state.message, state.is_failed())
        try:
            explode("caught")
        except ValueError as error:
            seen["caught"] = str(error)
        bad = double("not a number", return_state=True)  # type: ignore[arg-type]
        seen["bad"] = (bad.type, bad.message)
        return "survived"

    assert parent() == "survived"
    assert seen["state"] == (S.FAILED, "ValueError: boom", True)
    assert seen["caught"] == "caught"
    assert seen["bad"][0] == S.FAILED and "Invalid parameters" in seen["bad"][1] and "n" in seen["bad"][1]
    top = FlowRun.objects.get(parent_flow_run__isnull=True)
    assert top.state_type == S.COMPLETED
    assert sorted(TaskRun.objects.filter(flow_run=top).values_list("state_type", flat=True)) == [S.FAILED] * 3


def test_an_uncaught_subflow_failure_fails_the_parent() -> None:
    @flow
    def parent() -> None:
        explode("not caught")

    with pytest.raises(ValueError, match="not caught"):
        parent()
    top = FlowRun.objects.get(parent_flow_run__isnull=True)
    assert (top.state_type, top.state_message) == (S.FAILED, "ValueError: not caught")


def test_cancelling_a_parent_cancels_its_children(run: FlowRun) -> None:
    from deployments.services.subflows import create_subflow_run
    from runs.services import set_state

    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    waiting = create_subflow_run(run, "child", parameters={})
    running = create_subflow_run(run, "child", parameters={}, dynamic_key="1")
    set_state(running, S.PENDING)
    set_state(running, S.RUNNING)
    request_cancellation(run, by="alice")
    waiting.refresh_from_db()
    running.refresh_from_db()
    assert (waiting.state_type, running.state_type) == (S.CANCELLED, S.CANCELLING)
    assert "its parent" in running.state_message


@pytest.mark.parametrize("storage", ["local", "memory", "file"])
def test_a_persisted_result_is_read_back_by_a_later_run(storage: str, tmp_path: Path, monkeypatch: Any) -> None:
    url = {"local": "", "memory": f"memory://results-{tmp_path.name}", "file": (tmp_path / "store").as_uri()}[storage]
    if url:
        monkeypatch.setenv("RESULT_STORAGE", url)

    class Point:  # no JSON form: cloudpickle
        def __init__(self, x: int) -> None:
            self.x = x

    @flow(persist_result=True)
    def produce() -> dict[str, Any]:
        return {"answer": 42, "point": Point(7)}

    produce()
    first = FlowRun.objects.get()
    expected_prefix = url or (Path(__import__("os").environ["ORCHESTRATOR_HOME"]).resolve() / "results").as_uri()
    assert first.result_uri.startswith(expected_prefix)

    @flow
    def consume(run_id: str) -> int:
        value = get_flow_run_result(run_id)
        return value["answer"] + value["point"].x

    assert consume(str(first.pk)) == 49


def test_results_are_not_persisted_unless_asked_and_reading_one_says_so(monkeypatch: Any) -> None:
    @flow
    def quiet() -> int:
        return 1

    quiet()
    run = FlowRun.objects.get()
    assert run.result_uri == ""
    with pytest.raises(NotFound, match="no persisted result"):
        get_flow_run_result(str(run.pk))
    monkeypatch.setenv("PERSIST_RESULTS", "true")
    quiet()
    assert FlowRun.objects.exclude(pk=run.pk).get().result_uri


def test_a_cached_task_reuses_its_persisted_result_even_without_a_json_form(tmp_path: Path, monkeypatch: Any) -> None:
    from orchestrator import task_input_hash

    monkeypatch.setenv("RESULT_STORAGE", (tmp_path / "r").as_uri())
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, persist_result=True)
    def costly(n: int) -> set[int]:
        calls.append(n)
        return {n, n + 1}

    @flow
    def twice() -> list[set[int]]:
        return [costly(1), costly(1)]

    assert twice() == [{1, 2}, {1, 2}]
    assert calls == [1]
    first, second = TaskRun.objects.order_by("created_at")
    assert first.result is None and first.result_uri  # in storage, not the database
    assert (second.state_name, second.result_uri) == ("Cached", first.result_uri)
