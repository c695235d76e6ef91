"""`docker` work pools against a real Docker daemon: a real `manage.py runworker` starts one
container per run from a locally built image (nothing is pulled), the engine inside reaches the
orchestrator (pytest-django's live server) over HTTP with a token for its run alone.

Every test gets a pool of its own; the docker_pool_name fixture fails a test that leaves any
container of that pool behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from accounts.models import ApiKey, Scope
from deployments.models import Deployment, Flow
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.conftest import Api, wait_for
from tests.workpools.test_api_worker_remote import remote_env
from tests.workpools.test_runworker import ROOT, collect, stop
from workpools.infrastructure.docker import DEPLOYMENT_LABEL, FLOW_LABEL, RUN_LABEL, WORKER_LABEL
from workpools.models import WorkPool
from workpools.services import create_work_pool

S = StateType
pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

BEHAVIOURS = """
import sys
import time
from pathlib import Path

from orchestrator import flow, get_run_logger


@flow
def exits(code: int = 3) -> None:
    get_run_logger().info("about to exit with %s", code)
    sys.exit(code)


@flow
def raises() -> None:
    raise RuntimeError("boom in a container")


@flow
def waits(marker: str, seconds: float = 120) -> None:
    logger = get_run_logger()
    logger.info("waiting for %s", marker)
    deadline = time.monotonic() + seconds
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    logger.info("done waiting")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with the seed's flow and some test flows, mounted read-only at the
    same path in each container (the deployment's path is where the engine finds the code)."""
    (tmp_path / "flows").mkdir()
    shutil.copy(ROOT / "examples" / "hello.py", tmp_path / "flows" / "hello.py")
    (tmp_path / "flows" / "behaviours.py").write_text(BEHAVIOURS)
    (tmp_path / "markers").mkdir()
    return tmp_path


@pytest.fixture
def docker_pool(docker_pool_name: str, docker_image: str, project: Path, live_server: Any) -> WorkPool:
    return create_work_pool(
        docker_pool_name,
        type="docker",
        job_variables={
            "image": docker_image,
            "image_pull_policy": "Never",
            "volumes": [f"{project}:{project}:ro"],
            "api_url": live_server.url,
        },
    )


def deployment(pool: WorkPool, project: Path, function: str, **kwargs: Any) -> Deployment:
    flow, _ = Flow.objects.get_or_create(name=function)
    return Deployment.objects.create(
        flow=flow,
        name=f"{function}-in-docker",
        work_pool=pool,
        path=str(project),
        entrypoint=f"flows/behaviours.py:{function}",
        enforce_parameter_schema=False,
        **kwargs,
    )


def start_worker(env: dict[str, str], pool: WorkPool, *args: str) -> tuple[subprocess.Popen, list[str]]:
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runworker", "--pool", pool.name, "--poll-interval", "0.2", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = collect(worker)
    wait_for(lambda: "polling for work" in "".join(output), 60, "the worker to start")
    return worker, output


def remote_worker(
    pool: WorkPool, make_api_key: Any, live_server: Any, home: Path, *args: str
) -> tuple[subprocess.Popen, list[str]]:
    """A worker with no database: only the API, with a worker key of the pool."""
    key = make_api_key("worker", pool, name=f"{pool.name}-worker-{len(args)}-{home.name}")
    home.mkdir(exist_ok=True)
    return start_worker(remote_env(home), pool, "--api-url", live_server.url, "--api-key", key, *args)


def finish(worker: subprocess.Popen, output: list[str]) -> None:
    """Stop the worker; its console goes to the test's captured output (shown on failure)."""
    stop(worker)
    print("".join(output))


def containers_of(docker_client: Any, run: FlowRun) -> list[Any]:
    """The run's containers (ids only: one may be removed while we look)."""
    return docker_client.containers.list(all=True, sparse=True, filters={"label": f"{RUN_LABEL}={run.pk}"})


def state_of(run: FlowRun) -> str:
    return FlowRun.objects.get(pk=run.pk).state_type


def trigger(api: Api, deployment: Deployment, **body: Any) -> FlowRun:
    response = api.post(f"/api/deployments/{deployment.pk}/runs/", json=body)
    assert response.status_code == 201, response.text
    return FlowRun.objects.get(pk=response.json()["id"])


def test_the_seed_flow_says_hello_from_inside_a_container(
    docker_pool: WorkPool, project: Path, operator: Api, subprocess_env: dict[str, str], docker_client: Any
) -> None:
    # Deployed from a spec file with `manage.py deploy`, the way users do it.
    (project / "deployments.yaml").write_text(
        json.dumps(
            {
                "deployments": [
                    {
                        "name": "leonardo-in-docker",
                        "entrypoint": "flows/hello.py:leonardo_dicapriflow",
                        "work_pool": {
                            "name": docker_pool.name,
                            "job_variables": {"env": {"GREETING_FROM": "deployment"}},
                        },
                    }
                ]
            }
        )
    )
    deployed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "deploy", "--all"],
        cwd=project,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stderr
    dep = Deployment.objects.get(name="leonardo-in-docker")
    worker, output = start_worker(subprocess_env, docker_pool, "--name", "docker-worker-1")
    try:
        run = trigger(operator, dep, parameters={"name": "Leo"})
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 120, "the run to finish")
        wait_for(lambda: "final state Completed" in "".join(output), 30, "the worker to reap the run")
        wait_for(lambda: not containers_of(docker_client, run), 30, "the container to be removed")
    finally:
        finish(worker, output)
    text = "".join(output)
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    assert run.logs.filter(message="Hello Leo!").exists()  # shipped by the engine in the container
    assert f"{run.name} | " in text and "Hello Leo!" in text, text  # its output, prefixed, on the console
    # The container held a token for this run only, which no longer works now the run is final.
    token = ApiKey.objects.get(flow_run=run)
    assert token.scope == Scope.RUN
    assert run.task_runs.get().state_type == S.COMPLETED


def test_cancelling_stops_the_container_and_the_run_ends_cancelled(
    docker_pool: WorkPool,
    project: Path,
    operator: Api,
    make_api_key: Any,
    live_server: Any,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    dep = deployment(docker_pool, project, "waits", parameters={"marker": str(project / "markers" / "never")})
    worker, output = remote_worker(docker_pool, make_api_key, live_server, tmp_path / "home", "--name", "canceller")
    try:
        run = trigger(operator, dep)
        wait_for(lambda: state_of(run) == S.RUNNING, 120, "the run to be running")
        wait_for(lambda: run.logs.filter(message__startswith="waiting for").exists(), 30, "the flow to start waiting")
        (summary,) = containers_of(docker_client, run)
        container = docker_client.containers.get(summary.id)
        assert container.labels[WORKER_LABEL] == "canceller"
        assert container.labels[FLOW_LABEL] == "waits" and container.labels[DEPLOYMENT_LABEL] == str(dep.pk)
        assert operator.post(f"/api/flow-runs/{run.pk}/cancel/").status_code == 200
        wait_for(lambda: state_of(run) == S.CANCELLED, 60, "the run to be cancelled")
        wait_for(lambda: not containers_of(docker_client, run), 30, "the container to be removed")
    finally:
        finish(worker, output)
    run.refresh_from_db()
    assert "stopped the flow run's container" in run.state_message
    assert not run.logs.filter(message="done waiting").exists()


def test_a_flow_that_exits_3_or_raises_ends_failed(
    docker_pool: WorkPool,
    project: Path,
    operator: Api,
    make_api_key: Any,
    live_server: Any,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    exits = deployment(docker_pool, project, "exits", parameters={"code": 3})
    raises = deployment(docker_pool, project, "raises")
    worker, output = remote_worker(docker_pool, make_api_key, live_server, tmp_path / "home")
    try:
        runs = [trigger(operator, exits), trigger(operator, raises)]
        wait_for(lambda: all(FlowRun.objects.get(pk=r.pk).is_terminal for r in runs), 120, "both runs to finish")
        wait_for(lambda: not any(containers_of(docker_client, r) for r in runs), 30, "the containers to be removed")
    finally:
        finish(worker, output)
    exited, raised = (FlowRun.objects.get(pk=run.pk) for run in runs)
    text = "".join(output)
    assert exited.state_type == S.FAILED, f"{exited.state_message}\n{text}"
    assert exited.state_message == "SystemExit: 3"
    assert raised.state_type == S.FAILED, f"{raised.state_message}\n{text}"
    assert "RuntimeError: boom in a container" in raised.state_message


def test_a_container_killed_with_docker_kill_crashes_its_run(
    docker_pool: WorkPool, project: Path, operator: Api, subprocess_env: dict[str, str], docker_client: Any
) -> None:
    dep = deployment(docker_pool, project, "waits", parameters={"marker": str(project / "markers" / "never")})
    worker, output = start_worker(subprocess_env, docker_pool)
    try:
        run = trigger(operator, dep)
        wait_for(lambda: state_of(run) == S.RUNNING, 120, "the run to be running")
        (container,) = containers_of(docker_client, run)
        subprocess.run(["docker", "kill", container.id], check=True, capture_output=True, timeout=30)
        wait_for(lambda: state_of(run) == S.CRASHED, 60, "the run to crash")
        wait_for(lambda: not containers_of(docker_client, run), 30, "the container to be removed")
    finally:
        finish(worker, output)
    run.refresh_from_db()
    assert "container exited with code 137 (killed by SIGKILL)" in run.state_message, run.state_message


def test_a_worker_restarted_with_the_same_name_adopts_its_container(
    docker_pool: WorkPool,
    project: Path,
    operator: Api,
    make_api_key: Any,
    live_server: Any,
    docker_client: Any,
    tmp_path: Path,
) -> None:
    marker = project / "markers" / "go"
    dep = deployment(docker_pool, project, "waits", parameters={"marker": str(marker)})
    first, _ = remote_worker(docker_pool, make_api_key, live_server, tmp_path / "home", "--name", "steady")
    try:
        run = trigger(operator, dep)
        wait_for(lambda: state_of(run) == S.RUNNING, 120, "the run to be running")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the worker dies; its container carries on
        first.wait(timeout=30)
    (summary,) = containers_of(docker_client, run)
    assert docker_client.containers.get(summary.id).status == "running"
    second, output = remote_worker(docker_pool, make_api_key, live_server, tmp_path / "home2", "--name", "steady")
    try:
        wait_for(lambda: "adopting flow run" in "".join(output), 30, "the new worker to adopt the run")
        marker.touch()
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 60, "the run to finish")
        wait_for(lambda: not containers_of(docker_client, run), 30, "the container to be removed")
    finally:
        finish(second, output)
    run.refresh_from_db()
    text = "".join(output)
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    assert run.logs.filter(message="done waiting").exists()
    assert f"{run.name} | " in text, text  # the adopted container's output reaches the new worker's console
