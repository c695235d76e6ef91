"""Helpers for the task-runner tests on real clusters: flow scripts run as `python flow.py`,
and what their tasks record from inside (one O_APPEND line per execution, so a test counts what
really ran on the cluster rather than trusting our own states)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator.core.states import StateType
from runs.models import FlowRun, TaskRun

# Every flow script starts with this; RUNNER is filled in by the test (a Dask or Ray runner
# reaching the module's cluster).
PRELUDE = """
import os, sys, signal, threading, time
from orchestrator import flow, task, get_run_logger, task_input_hash
from orchestrator.task_runners import DaskTaskRunner, RayTaskRunner

MARKERS = {markers!r}
RUNNER = {runner}


def record(event, *details):
    # One short write with O_APPEND: atomic between processes.
    line = " ".join(str(p) for p in (event, os.getpid(), *details)) + "\\n"
    with open(os.path.join(MARKERS, "events.log"), "a") as f:
        f.write(line)


def seen(event):
    path = os.path.join(MARKERS, "events.log")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split()[0] == event)
"""


def write_script(tmp_path: Path, body: str, *, runner: str, name: str = "flow.py") -> Path:
    script = tmp_path / name
    script.write_text(PRELUDE.format(markers=str(tmp_path), runner=runner) + textwrap.dedent(body))
    return script


def script_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    # No DJANGO_SETTINGS_MODULE: the SDK sets Django up by itself, as for a user's script.
    return {**{k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}, **extra}


def run_script(script: Path, env: dict[str, str], *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=script.parent,
        env=script_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_script(script: Path, env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=script.parent,
        env=script_env(env, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def events(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "events.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def executions(tmp_path: Path, event: str) -> Counter[str]:
    """How often each item was executed: event lines are `event pid item`."""
    return Counter(row[2] for row in events(tmp_path) if row[0] == event)


def only_run() -> FlowRun:
    return FlowRun.objects.get()


def history(task_run: TaskRun) -> list[str]:
    return list(task_run.states.order_by("timestamp", "id").values_list("name", flat=True))


def by_name(run: FlowRun, prefix: str) -> list[TaskRun]:
    return sorted(run.task_runs.filter(name__startswith=prefix), key=lambda t: int(t.dynamic_key))


def describe(result: Any) -> str:
    return f"exit {result.returncode}\n--- stderr ---\n{result.stderr[-6000:]}"


# --- the flows the tests run on each cluster -----------------------------------------------------

MAP_200 = """
@task
def square(x):
    record("square", x)
    get_run_logger().info("squaring %s", x)
    return x * x

@flow(task_runner=RUNNER)
def fan_out(n: int = 200):
    record("flow", "main")
    return sum(f.result() for f in square.map(range(n)))

if __name__ == "__main__":
    print("total", fan_out())
"""

BEHAVIOURS = """
@task(retries=2, retry_delay_seconds=0.2)
def flaky():
    record("flaky", "x")
    if seen("flaky") < 3:
        raise ConnectionError(f"attempt {seen('flaky')} failed")
    return "ok"

@task(cache_key_fn=task_input_hash)
def expensive(x):
    record("expensive", x)
    return x + 1

@task(timeout_seconds=1)
def slow():
    for _ in range(100):
        time.sleep(0.1)
    record("slow-finished", "x")

@flow(task_runner=RUNNER)
def behaviours():
    flaky_future = flaky.submit()
    first = expensive.submit(41)
    second = expensive.submit(41, wait_for=[first])
    slow_future = slow.submit()
    slow_future.wait()
    return flaky_future.result(), first.result(), second.result(), repr(slow_future.exception()), slow_future.state.state_type

if __name__ == "__main__":
    print(repr(behaviours()))
"""

DEPENDENCIES = """
@task
def boom():
    raise ValueError("boom")

@task
def plus_one(x):
    record("plus_one", x)
    return x + 1

@task
def total(values):
    record("total", sum(values))
    return sum(values)

@task
def uses_lock(lock):
    return "never"

sys.path.insert(0, MARKERS)
from sibling_tasks import elsewhere  # a module only the flow's machine can import

@flow(task_runner=RUNNER)
def dependencies():
    summed = total.submit(plus_one.map([1, 2, 3]))     # a list of futures, resolved on the cluster
    ordered = plus_one.submit(100, wait_for=[summed])  # ordering only
    failing = boom.submit()
    after_failure = plus_one.submit(failing)
    locked = uses_lock.submit(threading.Lock())
    unimportable = elsewhere.submit()
    failing.exception()
    return (
        summed.result(), ordered.result(), repr(after_failure.exception()), str(locked.exception()),
        str(unimportable.exception()),
    )

if __name__ == "__main__":
    print(repr(dependencies()))
"""

LONG_MAP = """
@task
def nap(x):
    record("nap", x)
    time.sleep(0.5)
    return x

@flow(task_runner=RUNNER)
def long_map():
    return [f.result() for f in nap.map(range(200))]

if __name__ == "__main__":
    long_map()
"""

ROUGH = """
@task
def steady(x):
    record("steady", x)
    return x

def wait_for_workers():
    # Dask only: wait until the nanny restarted the killed worker (Ray starts new workers itself).
    if isinstance(RUNNER, DaskTaskRunner):
        from distributed import Client
        with Client(RUNNER.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=240)

@task
def doomed():
    record("doomed", "x")
    if seen("doomed") == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # the cluster worker dies mid-task
    return "doomed survived"

@task(retries=1)
def survivor():
    record("survivor", "x")
    if seen("survivor") == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"

@flow(task_runner=RUNNER)
def rough():
    before = [f.result() for f in steady.map(range(10))]
    lost = doomed.submit()
    lost.wait()
    wait_for_workers()  # one worker dies at a time: the other one takes the rerun
    retried = survivor.submit()
    retried.wait()
    after = [f.result() for f in steady.map(range(10, 20))]
    return before + after, type(lost.exception()).__name__, retried.result()

if __name__ == "__main__":
    print(repr(rough()))
"""


# --- what each of those flows must have done, whatever the cluster ---------------------------------


def check_map_200(tmp_path: Path, result: Any) -> set[int]:
    """200 task runs recorded (states, logs, results), each executed once, none in the flow
    process. Returns the pids that executed them."""
    assert result.returncode == 0, describe(result)
    assert f"total {sum(x * x for x in range(200))}" in result.stdout
    run = only_run()
    assert run.state_type == StateType.COMPLETED
    task_runs = by_name(run, "square-")
    assert len(task_runs) == 200
    assert [(t.state_type, t.result, t.run_count) for t in task_runs] == [
        (StateType.COMPLETED, x * x, 1) for x in range(200)
    ]
    assert all(history(t) == ["Pending", "Running", "Completed"] for t in task_runs)
    # Each task run logged from its worker, and the line is linked to it.
    logged = dict(run.logs.filter(message__startswith="squaring").values_list("task_run_id", "message"))
    assert {str(k): v for k, v in logged.items()} == {str(t.pk): f"squaring {t.dynamic_key}" for t in task_runs}
    assert executions(tmp_path, "square") == {str(x): 1 for x in range(200)}
    pids = {int(row[1]) for row in events(tmp_path) if row[0] == "square"}
    (flow_pid,) = {int(row[1]) for row in events(tmp_path) if row[0] == "flow"}
    assert flow_pid not in pids
    return pids


def check_behaviours(tmp_path: Path, result: Any) -> None:
    """Retries with their delays, a cache hit that did not execute, a timeout: as on threads."""
    assert result.returncode == 0, describe(result)
    expected = ("ok", 42, 42, "TimeoutError('Task run exceeded its timeout of 1 second')", "FAILED")
    assert repr(expected) in result.stdout, describe(result)
    run = only_run()
    assert run.state_type == StateType.COMPLETED
    (flaky,) = by_name(run, "flaky-")
    assert (flaky.state_type, flaky.run_count, flaky.result) == (StateType.COMPLETED, 3, "ok")
    assert history(flaky) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert executions(tmp_path, "flaky") == {"x": 3}
    first, second = by_name(run, "expensive-")
    assert (first.state_name, second.state_name) == ("Completed", "Cached")
    assert second.state_message == f"Cached result of task run '{first.name}'"
    assert executions(tmp_path, "expensive") == {"41": 1}  # the cached one did not run
    (slow,) = by_name(run, "slow-")
    assert (slow.state_type, slow.state_message) == (
        StateType.FAILED,
        "TimeoutError: Task run exceeded its timeout of 1 second",
    )
    assert executions(tmp_path, "slow-finished") == {}


def cancel_mid_map(tmp_path: Path, env: dict[str, str], runner: str, cluster_is_idle: Any) -> None:
    """Cancel LONG_MAP's run once a few task runs started: the run ends CANCELLED, the rest of
    the map never runs, and no task run is left unfinished."""
    from runs.services import request_cancellation
    from tests.conftest import wait_for

    process = start_script(write_script(tmp_path, LONG_MAP, runner=runner), env, RUN_HEARTBEAT_SECONDS="1")
    try:
        wait_for(lambda: len(events(tmp_path)) >= 6, 120, "six task runs to start on the cluster")
        request_cancellation(only_run(), by="a test")
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stderr = process.stderr.read() if process.stderr else ""
    wait_for(cluster_is_idle, 60, "the cluster to have nothing left to run")

    run = only_run()
    assert run.state_type == StateType.CANCELLED, stderr[-4000:]
    started = len(events(tmp_path))
    assert 6 <= started < 100, f"{started} of 200 started after the cancel"
    task_runs = TaskRun.objects.filter(flow_run=run)
    assert started <= task_runs.count() <= 200  # a cancel during the map's submits also cuts it short
    assert not task_runs.exclude(state_type__in=[StateType.COMPLETED, StateType.CANCELLED, StateType.CRASHED]).exists()
    assert task_runs.filter(state_type=StateType.COMPLETED).count() <= started
    assert code == 1, stderr[-4000:]  # the script's flow call raised: its run did not finish


def check_rough(tmp_path: Path, result: Any) -> None:
    """A worker killed mid-task: that task run CRASHED (no retries) or retried (retries=1);
    the flow run went on and the other task runs completed, each executed once."""
    assert result.returncode == 0, describe(result)
    assert repr((list(range(20)), "TaskRunCrashed", "survived")) in result.stdout, describe(result)
    run = only_run()
    assert run.state_type == StateType.COMPLETED
    (doomed,) = by_name(run, "doomed-")
    assert doomed.state_type == StateType.CRASHED and "The cluster worker running it died" in doomed.state_message
    assert history(doomed) == ["Pending", "Running", "Crashed"]
    (survivor,) = by_name(run, "survivor-")
    assert (survivor.state_type, survivor.run_count, survivor.result) == (StateType.COMPLETED, 2, "survived")
    assert history(survivor) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert survivor.states.get(name="AwaitingRetry").message.endswith("after: The cluster worker running it died")
    assert [t.state_type for t in by_name(run, "steady-")] == [StateType.COMPLETED] * 20
    assert executions(tmp_path, "doomed") == {"x": 1} and executions(tmp_path, "survivor") == {"x": 2}
    assert executions(tmp_path, "steady") == {str(x): 1 for x in range(20)}
