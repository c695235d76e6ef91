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

from orchestrator.core.states import StateType
from tests.conftest import wait_for
from tests.orchestrator.cluster_helpers import (
    BEHAVIOURS,
    DEPENDENCIES,
    MAP_200,
    ROUGH,
    by_name,
    cancel_mid_map,
    check_behaviours,
    check_map_200,
    check_rough,
    describe,
    events,
    executions,
    only_run,
    run_script,
    write_script,
)

S = StateType
pytestmark = [pytest.mark.dask, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    import dask

    # As DaskTaskRunner starts its temporary clusters: no worker profiler (see dask_runner.py).
    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="1GiB"
        ) as local,
    ):
        yield local


@pytest.fixture
def runner(cluster: Any) -> str:
    return f"DaskTaskRunner(address={cluster.scheduler_address!r})"


def worker_pids(cluster: Any) -> set[int]:
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        return set(client.run(os.getpid).values())


def test_a_flow_maps_a_task_over_200_inputs_on_two_process_workers(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    result = run_script(write_script(tmp_path, MAP_200, runner=runner), subprocess_env)

    pids = check_map_200(tmp_path, result)
    assert pids == worker_pids(cluster)  # both of the cluster's worker processes, nothing else


def test_retries_the_cache_and_timeouts_behave_as_on_threads(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    check_behaviours(tmp_path, run_script(write_script(tmp_path, BEHAVIOURS, runner=runner), subprocess_env))


def test_futures_as_arguments_and_wait_for_are_resolved_on_the_cluster(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str
) -> None:
    # The task travels by value; the plain helper it calls is looked up by module on the worker.
    sibling = (
        "from orchestrator import task\n\ndef helper():\n    return 1\n\n@task\ndef elsewhere():\n    return helper()\n"
    )
    (tmp_path / "sibling_tasks.py").write_text(sibling)
    result = run_script(write_script(tmp_path, DEPENDENCIES, runner=runner), subprocess_env)

    assert result.returncode == 0, describe(result)
    run = only_run()
    (locked,) = by_name(run, "uses_lock-")
    unpicklable = f"Argument 'lock' of task run '{locked.name}' cannot be sent to the cluster: TypeError: cannot pickle '_thread.lock' object"
    (elsewhere,) = by_name(run, "elsewhere-")
    unimportable = (
        f"The cluster worker could not load the task of '{elsewhere.name}' (is its code importable there?): "
        "ModuleNotFoundError: No module named 'sibling_tasks'"
    )
    assert repr((9, 101, "ValueError('boom')", unpicklable, unimportable)) in result.stdout, describe(result)
    assert (locked.state_type, locked.state_message) == (S.FAILED, unpicklable)
    assert (elsewhere.state_type, elsewhere.state_message) == (S.FAILED, unimportable)
    after_failure = by_name(run, "plus_one-")[4]
    assert (after_failure.state_type, after_failure.state_message) == (
        S.FAILED,
        "An upstream task run failed: ValueError: boom",
    )
    assert after_failure.run_count == 0  # never started
    order = [row[0] + row[2] for row in events(tmp_path)]
    assert order.index("total9") < order.index("plus_one100")  # wait_for held it back
    assert run.state_type == S.COMPLETED


def test_cancelling_the_flow_run_mid_map_stops_the_rest_on_the_cluster(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    from distributed import Client

    def cluster_is_idle() -> bool:
        with Client(cluster.scheduler_address) as client:
            return not any(client.processing().values())

    cancel_mid_map(tmp_path, subprocess_env, runner, cluster_is_idle)


def test_a_worker_process_killed_mid_task_crashes_that_task_or_retries_it_and_the_rest_completes(
    tmp_path: Path, subprocess_env: dict[str, str], runner: str, cluster: Any
) -> None:
    check_rough(tmp_path, run_script(write_script(tmp_path, ROUGH, runner=runner), subprocess_env))
    # The module's later tests need a worker (a nanny's second restart can take minutes on a busy machine).
    wait_for(lambda: len(worker_pids(cluster)) >= 1, 180, "a nanny to restart a killed worker")


# --- a cluster of separately started processes, used by a deployment's run via runworker --------

DEPLOYED = """
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
"""


def run_shouting_deployment(
    tmp_path: Path, make_deployment: Any, pool: Any, worker_args: list[str], worker_env: dict[str, str]
) -> Any:
    """Deploy DEPLOYED, create a run, let a real `runworker` run it to its end; the run."""
    from deployments.services import create_flow_run
    from tests.workpools.test_runworker import ROOT, collect, stop

    (tmp_path / "shouting.py").write_text(DEPLOYED)
    deployment = make_deployment("shouting", flow="shouting", path=str(tmp_path), entrypoint="shouting.py:shouting")
    run, _ = create_flow_run(deployment, parameters={"words": ["hello", "dask", "world"], "markers": str(tmp_path)})
    runworker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool.name, "--poll-interval", "0.2", *worker_args],
        cwd=ROOT,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = collect(runworker)
    try:
        wait_for(lambda: (run.refresh_from_db(), run.is_terminal)[1], 120, "the deployment's run to finish")
    finally:
        code = stop(runworker)
    text = "".join(output)
    assert code == 0, text
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    task_runs = by_name(run, "shout-")
    assert [(t.state_type, t.result) for t in task_runs] == [(S.COMPLETED, w) for w in ["HELLO", "DASK", "WORLD"]]
    assert run.logs.filter(message="shouting dask", task_run=task_runs[1]).exists()
    assert executions(tmp_path, "shout") == {"hello": 1, "dask": 1, "world": 1}
    return run


def test_a_deployment_run_by_runworker_uses_a_separately_started_scheduler_and_worker(
    tmp_path: Path, subprocess_env: dict[str, str], make_deployment: Any, pool: Any
) -> None:
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    quiet = {**subprocess_env, "DASK_LOGGING__DISTRIBUTED": "warning"}
    scheduler = subprocess.Popen(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],
        env=quiet,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes: list[subprocess.Popen[Any]] = [scheduler]
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.read_text().strip(), 60, "the scheduler to start")
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                    "--memory-limit",
                    "1GiB",
                ],
                env=quiet,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            dask_worker_pids = set(client.run(os.getpid).values())
        run = run_shouting_deployment(
            tmp_path, make_deployment, pool, [], {**subprocess_env, "DASK_SCHEDULER": address}
        )
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    assert run.logs.filter(message=f"Using the Dask cluster at {address}").exists()
    assert {int(row[1]) for row in events(tmp_path)} <= dask_worker_pids


def test_over_http_tasks_on_the_cluster_report_with_the_flow_run_s_credential_and_no_database(
    tmp_path: Path, live_server: Any, make_api_key: Any, make_deployment: Any, pool: Any, cluster: Any
) -> None:
    from tests.workpools.test_api_worker_remote import databases_in, remote_env

    home = tmp_path / "remote-home"
    home.mkdir()
    key = make_api_key("worker", pool, name="remote-worker")
    env = remote_env(home, DASK_SCHEDULER=cluster.scheduler_address)
    run_shouting_deployment(tmp_path, make_deployment, pool, ["--api-url", live_server.url, "--api-key", key], env)

    # Executed on the cluster's workers, whose task runs reached the orchestrator over HTTP.
    assert {int(row[1]) for row in events(tmp_path)} <= worker_pids(cluster)
    assert databases_in(home) == []
