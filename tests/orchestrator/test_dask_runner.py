"""DaskTaskRunner on real Dask clusters: one LocalCluster of 2 process workers for the module
(flow scripts reach it by address), and one test with `dask scheduler` + `dask worker` processes
started separately, reached by a deployment's run that `runworker` starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runs.models import TaskRun
from runs.services import request_cancellation
from runs.states import StateType
from tests.conftest import wait_for
from tests.orchestrator.cluster_helpers import (
    by_name,
    describe,
    events,
    executions,
    history,
    only_run,
    run_script,
    start_script,
    write_script,
)

S = StateType
pytestmark = [pytest.mark.dask, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="1GiB"
    ) as local:
        yield local


@pytest.fixture
def runner(cluster: Any) -> str:
    return f"DaskTaskRunner(address={cluster.scheduler_address!r})"


def worker_pids(cluster: Any) -> set[int]:
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        return set(client.run(os.getpid).values())


MAP_200 = '''
@task
def square(x):
    record("square", x)
    get_run_logger().info("squaring %s", x)
    return x * x

@flow(task_runner=RUNNER)
def fan_out(n: int = 200):
    return sum(f.result() for f in square.map(range(n)))

if __name__ == "__main__":
    print("total", fan_out())
'''


def test_a_flow_maps_a_task_over_200_inputs_on_two_process_workers(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    result = run_script(write_script(tmp_path, MAP_200, runner=runner), subprocess_env)

    assert result.returncode == 0, describe(result)
    assert f"total {sum(x * x for x in range(200))}" in result.stdout
    run = only_run()
    assert run.state_type == S.COMPLETED
    task_runs = by_name(run, "square-")
    assert len(task_runs) == 200
    assert [(t.state_type, t.result, t.run_count) for t in task_runs] == [(S.COMPLETED, x * x, 1) for x in range(200)]
    assert all(history(t) == ["Pending", "Running", "Completed"] for t in task_runs)
    # Each task run logged from its worker, and the line is linked to it.
    logged = dict(run.logs.filter(message__startswith="squaring").values_list("task_run_id", "message"))
    assert {str(k): v for k, v in logged.items()} == {str(t.pk): f"squaring {t.dynamic_key}" for t in task_runs}
    # Executed exactly once each, on the cluster's two worker processes (not in the flow process).
    assert executions(tmp_path, "square") == {str(x): 1 for x in range(200)}
    pids = {int(row[1]) for row in events(tmp_path)}
    assert pids == worker_pids(cluster)


BEHAVIOURS = '''
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
'''


def test_retries_the_cache_and_timeouts_behave_as_on_threads(tmp_path: Path, subprocess_env: dict[str, str], runner: str) -> None:
    result = run_script(write_script(tmp_path, BEHAVIOURS, runner=runner), subprocess_env)

    assert result.returncode == 0, describe(result)
    expected = ("ok", 42, 42, "TimeoutError('Task run exceeded its timeout of 1 second')", "FAILED")
    assert repr(expected) in result.stdout, describe(result)
    run = only_run()
    assert run.state_type == S.COMPLETED
    (flaky,) = by_name(run, "flaky-")
    assert (flaky.state_type, flaky.run_count, flaky.result) == (S.COMPLETED, 3, "ok")
    assert history(flaky) == ["Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed"]
    assert executions(tmp_path, "flaky") == {"x": 3}
    first, second = by_name(run, "expensive-")
    assert (first.state_name, second.state_name) == ("Completed", "Cached")
    assert second.state_message == f"Cached result of task run '{first.name}'"
    assert executions(tmp_path, "expensive") == {"41": 1}  # the cached one did not run
    (slow,) = by_name(run, "slow-")
    assert (slow.state_type, slow.state_message) == (S.FAILED, "TimeoutError: Task run exceeded its timeout of 1 second")
    assert executions(tmp_path, "slow-finished") == {}


DEPENDENCIES = '''
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

@flow(task_runner=RUNNER)
def dependencies():
    summed = total.submit(plus_one.map([1, 2, 3]))     # a list of futures, resolved on the cluster
    ordered = plus_one.submit(100, wait_for=[summed])  # ordering only
    failing = boom.submit()
    after_failure = plus_one.submit(failing)
    locked = uses_lock.submit(threading.Lock())
    failing.exception()
    return summed.result(), ordered.result(), repr(after_failure.exception()), str(locked.exception())

if __name__ == "__main__":
    print(repr(dependencies()))
'''


def test_futures_as_arguments_and_wait_for_are_resolved_on_the_cluster(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    result = run_script(write_script(tmp_path, DEPENDENCIES, runner=runner), subprocess_env)

    assert result.returncode == 0, describe(result)
    run = only_run()
    (locked,) = by_name(run, "uses_lock-")
    unpicklable = f"Argument 'lock' of task run '{locked.name}' cannot be sent to the cluster: TypeError: cannot pickle '_thread.lock' object"
    assert repr((9, 101, "ValueError('boom')", unpicklable)) in result.stdout, describe(result)
    assert (locked.state_type, locked.state_message) == (S.FAILED, unpicklable)
    after_failure = by_name(run, "plus_one-")[4]
    assert (after_failure.state_type, after_failure.state_message) == (S.FAILED, "An upstream task run failed: ValueError: boom")
    assert after_failure.run_count == 0  # never started
    order = [row[0] + row[2] for row in events(tmp_path)]
    assert order.index("total9") < order.index("plus_one100")  # wait_for held it back
    assert run.state_type == S.COMPLETED


LONG_MAP = '''
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
'''


def cluster_is_idle(cluster: Any) -> bool:
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        return not any(client.processing().values())


def test_cancelling_the_flow_run_mid_map_stops_the_rest_on_the_cluster(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    script = write_script(tmp_path, LONG_MAP, runner=runner)
    process = start_script(script, subprocess_env, RUN_HEARTBEAT_SECONDS="1")
    try:
        wait_for(lambda: len(events(tmp_path)) >= 6, 120, "six task runs to start on the cluster")
        request_cancellation(only_run(), by="a test")
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stderr = process.stderr.read() if process.stderr else ""
    wait_for(lambda: cluster_is_idle(cluster), 60, "the cluster to have nothing left to run")

    run = only_run()
    assert run.state_type == S.CANCELLED, stderr[-4000:]
    started = len(events(tmp_path))
    assert 6 <= started < 100, f"{started} of 200 started after the cancel"
    task_runs = TaskRun.objects.filter(flow_run=run)
    assert task_runs.count() == 200
    assert not task_runs.exclude(state_type__in=[S.COMPLETED, S.CANCELLED, S.CRASHED]).exists()
    assert task_runs.filter(state_type=S.COMPLETED).count() <= started
    assert code == 1, stderr[-4000:]  # the script's flow call raised: its run did not finish


ROUGH = '''
@task
def steady(x):
    record("steady", x)
    return x

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
    lost, retried = doomed.submit(), survivor.submit()
    lost.wait()
    retried.wait()
    after = [f.result() for f in steady.map(range(10, 20))]
    return before + after, type(lost.exception()).__name__, retried.result()

if __name__ == "__main__":
    print(repr(rough()))
'''


def test_a_worker_process_killed_mid_task_crashes_that_task_or_retries_it_and_the_rest_completes(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    result = run_script(write_script(tmp_path, ROUGH, runner=runner), subprocess_env)

    assert result.returncode == 0, describe(result)
    assert repr((list(range(20)), "TaskRunCrashed", "survived")) in result.stdout, describe(result)
    run = only_run()
    assert run.state_type == S.COMPLETED
    (doomed,) = by_name(run, "doomed-")
    assert doomed.state_type == S.CRASHED and "The cluster worker running it died" in doomed.state_message
    assert history(doomed) == ["Pending", "Running", "Crashed"]
    (survivor,) = by_name(run, "survivor-")
    assert (survivor.state_type, survivor.run_count, survivor.result) == (S.COMPLETED, 2, "survived")
    assert history(survivor) == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert survivor.states.get(name="AwaitingRetry").message.endswith("after: The cluster worker running it died")
    assert [t.state_type for t in by_name(run, "steady-")] == [S.COMPLETED] * 20
    assert executions(tmp_path, "doomed") == {"x": 1} and executions(tmp_path, "survivor") == {"x": 2}
    assert executions(tmp_path, "steady") == {str(x): 1 for x in range(20)}
    wait_for(lambda: len(worker_pids(cluster)) == 2, 60, "the nannies to restart the killed workers")


# --- a cluster of separately started processes, used by a deployment's run via runworker --------

DEPLOYED = '''
import os
from orchestrator import flow, task, get_run_logger
from orchestrator.task_runners import DaskTaskRunner


@task
def shout(word: str, markers: str) -> str:
    with open(os.path.join(markers, "events.log"), "a") as f:
        f.write(f"shout {os.getpid()} {word}\\n")
    get_run_logger().info("shouting %s", word)
    return word.upper()


@flow(task_runner=DaskTaskRunner(address=os.environ["DASK_SCHEDULER"]))
def shouting(words: list[str], markers: str) -> list[str]:
    return [f.result() for f in shout.map(words, markers=markers)]
'''


def test_a_deployment_run_by_runworker_uses_a_separately_started_scheduler_and_worker(
    tmp_path: Path, subprocess_env: dict[str, str], make_deployment: Any, pool: Any
) -> None:
    from distributed import Client

    from runs.services import create_flow_run
    from tests.workpools.test_runworker import ROOT, collect, stop

    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    quiet = {**subprocess_env, "DASK_LOGGING__DISTRIBUTED": "warning"}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    processes: list[subprocess.Popen[Any]] = [scheduler]
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.read_text().strip(), 60, "the scheduler to start")
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen(
            [dask, "worker", address, "--nworkers", "1", "--nthreads", "2", "--no-dashboard", "--memory-limit", "1GiB"],
            env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        processes.append(worker)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            dask_worker_pids = set(client.run(os.getpid).values())

        (tmp_path / "shouting.py").write_text(DEPLOYED)
        deployment = make_deployment("shouting", flow="shouting", path=str(tmp_path), entrypoint="shouting.py:shouting")
        run, _ = create_flow_run(deployment, parameters={"words": ["hello", "dask", "world"], "markers": str(tmp_path)})
        env = {**subprocess_env, "DASK_SCHEDULER": address}
        runworker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--pool", pool.name, "--poll-interval", "0.2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        processes.append(runworker)
        output = collect(runworker)
        wait_for(lambda: (run.refresh_from_db(), run.is_terminal)[1], 120, "the deployment's run to finish")
        assert stop(runworker) == 0, "".join(output)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    text = "".join(output)
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    task_runs = by_name(run, "shout-")
    assert [(t.state_type, t.result) for t in task_runs] == [(S.COMPLETED, w) for w in ["HELLO", "DASK", "WORLD"]]
    assert run.logs.filter(message="shouting dask", task_run=task_runs[1]).exists()
    assert run.logs.filter(message=f"Using the Dask cluster at {address}").exists()
    assert executions(tmp_path, "shout") == {"hello": 1, "dask": 1, "world": 1}
    assert {int(row[1]) for row in events(tmp_path)} <= dask_worker_pids
