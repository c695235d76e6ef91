"""Tasks inside a flow run: task runs and their states, retries, caching, submit/map, timeouts."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from orchestrator import flow, get_run_logger, task, task_input_hash
from orchestrator.core.states import StateType
from orchestrator.sdk import MissingContextError
from runs.models import FlowRun, TaskRun

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)  # task threads and the log shipper have connections of their own


def only_run() -> FlowRun:
    return FlowRun.objects.get()


def history(task_run: TaskRun) -> list[str]:
    return list(task_run.states.values_list("name", flat=True))


def test_a_task_called_in_a_flow_is_recorded_as_a_completed_task_run() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    @flow
    def adder() -> int:
        return add(1, 2)

    assert adder() == 3
    task_run = TaskRun.objects.get()
    assert (task_run.state_type, task_run.run_count, task_run.result) == (S.COMPLETED, 1, 3)
    assert task_run.flow_run == only_run()
    assert task_run.name.startswith("add-") and task_run.name.endswith("-0")
    assert history(task_run) == ["Pending", "Running", "Completed"]
    assert task_run.started_at and task_run.ended_at


def test_a_task_that_fails_twice_then_succeeds_ends_completed_with_run_count_3() -> None:
    calls: list[int] = []

    @task(retries=3, retry_delay_seconds=0.1)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return "ok"

    @flow
    def retrying() -> str:
        return flaky()

    assert retrying() == "ok"
    task_run = TaskRun.objects.get()
    assert (task_run.state_type, task_run.run_count) == (S.COMPLETED, 3)
    assert history(task_run) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    retry_messages = list(task_run.states.filter(name="AwaitingRetry").values_list("message", flat=True))
    assert retry_messages[0] == "Retry 1 of 3 in 0.1 seconds after: ConnectionError: attempt 1 failed"
    assert only_run().state_type == S.COMPLETED


def test_a_task_out_of_retries_fails_and_so_does_its_flow() -> None:
    @task(retries=1)
    def broken() -> None:
        raise ValueError("still broken")

    @flow
    def doomed() -> None:
        broken()

    with pytest.raises(ValueError, match="still broken"):
        doomed()
    task_run = TaskRun.objects.get()
    assert (task_run.state_type, task_run.run_count, task_run.state_message) == (
        S.FAILED,
        2,
        "ValueError: still broken",
    )
    run = only_run()
    assert (run.state_type, run.state_message) == (S.FAILED, "ValueError: still broken")


def test_a_cached_result_is_reused_while_its_key_is_fresh() -> None:
    calls: list[str] = []

    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(minutes=5))
    def expensive(name: str) -> dict[str, str]:
        calls.append(name)
        return {"greeting": f"Hello {name}"}

    @flow
    def cached(name: str) -> dict[str, str]:
        return expensive(name)

    assert cached("Leo") == {"greeting": "Hello Leo"}
    assert cached("Leo") == {"greeting": "Hello Leo"}
    assert calls == ["Leo"], "the second run reused the first one's result"
    first, second = TaskRun.objects.order_by("created_at")
    assert (second.state_type, second.state_name, second.run_count) == (S.COMPLETED, "Cached", 0)
    assert second.state_message == f"Cached result of task run '{first.name}'"
    assert history(second) == ["Pending", "Cached"]

    cached("Marvin")  # other parameters, other key
    assert calls == ["Leo", "Marvin"]
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        cached("Leo")  # the cache expired
    assert calls == ["Leo", "Marvin", "Leo"]


def test_a_cached_none_is_still_a_result_but_an_unstorable_one_is_never_cached() -> None:
    calls: list[str] = []

    @task(cache_key_fn=lambda context, parameters: f"fixed-{parameters['kind']}")
    def produce(kind: str) -> Any:
        calls.append(kind)
        return None if kind == "none" else object()

    @flow
    def producer(kind: str) -> None:
        produce(kind)

    for kind in ("none", "none", "object", "object"):
        producer(kind)
    assert calls == ["none", "object", "object"]


def test_eight_submitted_tasks_that_each_sleep_half_a_second_run_concurrently() -> None:
    @task
    def nap(i: int) -> int:
        time.sleep(0.5)
        return i * 10

    @flow
    def napping() -> tuple[list[int], float]:
        started = time.monotonic()
        futures = [nap.submit(i) for i in range(8)]
        results = [f.result() for f in futures]
        return results, time.monotonic() - started

    results, elapsed = napping()
    assert results == [0, 10, 20, 30, 40, 50, 60, 70]
    # One after the other they would take 4 s; together, 0.5 s and the bookkeeping.
    assert elapsed < 3, f"8 x 0.5 s took {elapsed:.2f} s: they did not run concurrently"
    assert TaskRun.objects.filter(state_type=S.COMPLETED).count() == 8
    print(f"8 x 0.5 s submitted tasks took {elapsed:.2f} s")


def test_map_submits_one_task_run_per_item_and_passes_futures_on_as_results() -> None:
    @task
    def square(x: int) -> int:
        time.sleep(0.5)
        return x * x

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    def mapping() -> int:
        squares = square.map(range(8))
        return total.submit(squares).result()

    assert mapping() == sum(x * x for x in range(8))
    assert TaskRun.objects.filter(name__startswith="square-").count() == 8
    names = sorted(TaskRun.objects.filter(name__startswith="square-").values_list("dynamic_key", flat=True), key=int)
    assert names == [str(i) for i in range(8)]


def test_a_submitted_task_that_fails_unnoticed_fails_the_flow() -> None:
    @task
    def fine() -> int:
        return 1

    @task
    def bad() -> None:
        raise RuntimeError("nobody looked")

    @flow
    def careless() -> None:
        fine.submit()
        bad.submit()

    with pytest.raises(RuntimeError, match="nobody looked"):
        careless()
    run = only_run()
    assert run.state_type == S.FAILED
    assert run.state_message.startswith("1 of 2 submitted task runs failed: 'bad-")


def test_a_task_over_its_timeout_fails_with_a_timeout_error_at_once() -> None:
    @task(timeout_seconds=0.3)
    def slow() -> None:
        time.sleep(10)

    @flow
    def impatient() -> None:
        slow()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        impatient()
    assert time.monotonic() - started < 5
    task_run = TaskRun.objects.get()
    assert (task_run.state_type, task_run.state_message) == (
        S.FAILED,
        "TimeoutError: Task run exceeded its timeout of 0.3 seconds",
    )


def test_a_timed_out_task_may_be_retried() -> None:
    attempts: list[int] = []

    @task(timeout_seconds=0.3, retries=1)
    def sometimes_slow() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            time.sleep(10)
        return "fast enough"

    @flow
    def patient() -> str:
        return sometimes_slow()

    assert patient() == "fast enough"
    assert TaskRun.objects.get().run_count == 2


def test_a_submitted_task_over_its_timeout_fails() -> None:
    @task(timeout_seconds=0.3)
    def spin() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # Python code: the thread sees the interrupt at once
            pass

    @flow
    def spinning() -> None:
        spin.submit().result()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        spinning()
    assert time.monotonic() - started < 5
    assert TaskRun.objects.get().state_type == S.FAILED


def test_the_run_logger_of_a_task_logs_to_the_console_and_the_task_run(capsys: Any) -> None:
    @task
    def log_message(name: str) -> None:
        get_run_logger().info(f"Hello {name}!")

    @flow
    def greeter(name: str) -> None:
        log_message(name)
        get_run_logger().warning("flow-level line")

    greeter("Leo")
    err = capsys.readouterr().err
    assert "| INFO    | Task run 'log_message-" in err and "- Hello Leo!" in err
    run = only_run()
    hello = run.logs.get(message="Hello Leo!")
    assert hello.task_run == TaskRun.objects.get() and hello.level == 20
    assert run.logs.get(message="flow-level line").task_run is None


def test_log_prints_sends_print_to_the_run_logs_and_leaves_other_prints_alone(capsys: Any) -> None:
    @task
    def shout() -> None:
        print("from the task")

    @flow(log_prints=True)
    def printing() -> None:
        print("from the flow", 42)
        shout()

    @flow
    def plain() -> None:
        print("not captured")

    printing()
    plain()
    print("outside")
    captured = capsys.readouterr()
    messages = set(FlowRun.objects.get(flow__name="printing").logs.values_list("message", flat=True))
    assert {"from the flow 42", "from the task"} <= messages
    assert "not captured" in captured.out and "outside" in captured.out
    assert not FlowRun.objects.get(flow__name="plain").logs.filter(message="not captured").exists()


def test_outside_a_flow_a_task_is_its_function_and_the_run_logger_is_an_error() -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    assert not TaskRun.objects.exists()
    with pytest.raises(MissingContextError):
        get_run_logger()
    with pytest.raises(MissingContextError):
        double.submit(1)


@pytest.mark.parametrize(
    "options",
    [{"retries": -1}, {"retry_delay_seconds": -2}, {"timeout_seconds": "soon"}, {"cache_expiration": 60}],
)
def test_bad_decorator_options_are_refused_when_the_decorator_runs(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        task(**options)(lambda: None)
