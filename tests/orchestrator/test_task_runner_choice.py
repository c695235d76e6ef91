"""Choosing a task runner, and what every runner's futures offer (here on threads): wait_for,
.state, and clear errors for a bad runner or an unreachable cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from orchestrator import flow, task
from orchestrator.core.states import StateType
from orchestrator.task_runners import DaskTaskRunner, RayTaskRunner, ThreadTaskRunner
from runs.models import FlowRun, TaskRun

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)  # task threads have connections of their own


def test_wait_for_orders_task_runs_without_passing_data_and_a_failed_one_fails_its_followers() -> None:
    done: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.3)
        done.append("first")

    @task
    def second() -> list[str]:
        return list(done)

    @task
    def broken() -> None:
        raise ValueError("broken")

    @flow(task_runner=ThreadTaskRunner(max_workers=4))
    def ordered() -> tuple[list[str], str, str]:
        before = first.submit()
        after = second.submit(wait_for=[before])
        failing = broken.submit()
        follower = second.submit(wait_for=[failing])
        failing.wait()
        return after.result(), after.state.state_type, repr(follower.exception())

    seen, state, error = ordered()

    assert seen == ["first"] and state == S.COMPLETED
    assert error.startswith("UpstreamFailed(\"Task run 'broken-")
    follower = TaskRun.objects.filter(name__startswith="second-").order_by("dynamic_key").last()
    assert follower is not None and follower.state_type == S.FAILED
    assert follower.state_message.startswith("An upstream task run failed: UpstreamFailed: Task run 'broken-")


def test_a_future_s_state_is_the_task_run_s_state_in_the_orchestrator() -> None:
    @task
    def quick() -> int:
        return 1

    @flow
    def states() -> tuple[str, str]:
        future = quick.submit()
        future.result()
        return future.state.state_type, future.state.state_name

    assert states() == (S.COMPLETED, "Completed")


@pytest.mark.parametrize("runner", ["dask", DaskTaskRunner.__init__, 3])
def test_a_task_runner_that_is_not_one_is_refused_when_the_decorator_runs(runner: object) -> None:
    with pytest.raises(ValueError, match="task_runner must be a task runner such as ThreadTaskRunner()"):
        flow(task_runner=runner)(lambda: None)  # type: ignore[call-overload]  # the bad input under test


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DaskTaskRunner(address=""), "DaskTaskRunner: address must be a scheduler address"),
        (
            lambda: DaskTaskRunner(address="tcp://h:8786", cluster_kwargs={"n_workers": 2}),
            "cluster_kwargs start a temporary",
        ),
        (lambda: RayTaskRunner(address=" "), "RayTaskRunner: address must be a Ray address"),
        (lambda: ThreadTaskRunner(max_workers=0), "max_workers must be a whole number of at least 1"),
    ],
)
def test_bad_runner_options_are_one_clear_error(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.dask
def test_a_dask_cluster_that_cannot_be_reached_fails_the_flow_run_with_the_reason() -> None:
    pytest.importorskip("distributed")

    @task
    def never() -> None:
        raise AssertionError("ran without a cluster")

    @flow(task_runner=DaskTaskRunner(address="tcp://127.0.0.1:9", client_kwargs={"timeout": 1}))
    def stranded() -> None:
        never.submit().result()

    with pytest.raises(OSError, match="127.0.0.1:9"):
        stranded()
    run = FlowRun.objects.get()
    assert run.state_type == S.FAILED and "127.0.0.1:9" in run.state_message
    assert not run.task_runs.exists()
