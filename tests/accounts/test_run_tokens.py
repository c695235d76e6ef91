"""Run tokens: what a worker hands a run's job (a container, a process on another machine)
instead of its own key. A token acts on its own run only, only through the engine's endpoints,
and stops working once the run is final."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Scope
from accounts.services import issue_run_token
from deployments.services import create_flow_run
from orchestrator.core.errors import ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import create_task_run, set_state
from tests.conftest import Api
from workpools.services import register_worker

S = StateType
LOG = {"level": 20, "logger": "flow", "message": "hello", "timestamp": "2026-01-01T00:00:00Z", "task_run": None}


@pytest.fixture
def claimed(make_run: Any) -> Any:
    def claim() -> FlowRun:
        run = make_run()
        worker, _ = register_worker(run.work_pool.name, name="w1")
        return set_state(run, S.PENDING, worker=worker)

    return claim


@pytest.fixture
def mine(claimed: Any) -> FlowRun:
    return claimed()


@pytest.fixture
def token_api(live_server: Any, mine: FlowRun) -> Api:
    return Api(live_server.url, issue_run_token(mine)[1])


def move(api: Api, run: FlowRun, to: str, expected: str) -> Any:
    return api.post(f"/api/flow-runs/{run.pk}/set-state/", json={"state_type": to, "expected": expected})


def test_a_run_token_does_what_the_engine_does_with_its_own_run(token_api: Api, mine: FlowRun) -> None:
    assert token_api.get(f"/api/flow-runs/{mine.pk}/execution/").json()["id"] == str(mine.pk)
    assert move(token_api, mine, "RUNNING", "PENDING").json()["state_type"] == "RUNNING"
    assert token_api.post(f"/api/flow-runs/{mine.pk}/heartbeat/").json() == {"alive": True}
    task = token_api.post(f"/api/flow-runs/{mine.pk}/task-runs/", json={"name": "say-1", "task_key": "say"})
    assert task.status_code == 201, task.text
    task_id = task.json()["id"]
    assert token_api.get(f"/api/task-runs/{task_id}/").status_code == 200
    moved = token_api.post(
        f"/api/task-runs/{task_id}/set-state/", json={"state_type": "RUNNING", "expected": "PENDING"}
    )
    assert moved.status_code == 200, moved.text
    assert token_api.post(f"/api/flow-runs/{mine.pk}/logs/", json=[LOG]).status_code == 201
    assert mine.logs.filter(message="hello").exists()
    assert token_api.get("/api/task-runs/cached/", params={"cache_key": "nothing"}).status_code == 204


def test_a_run_token_cannot_touch_another_run(token_api: Api, mine: FlowRun, claimed: Any) -> None:
    other = claimed()
    assert token_api.get(f"/api/flow-runs/{other.pk}/execution/").status_code == 403
    refused = move(token_api, other, "RUNNING", "PENDING")
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"This run token acts only on flow run {mine.name!r}."
    assert token_api.post(f"/api/flow-runs/{other.pk}/logs/", json=[LOG]).status_code == 403
    assert (
        token_api.post(f"/api/flow-runs/{other.pk}/task-runs/", json={"name": "t", "task_key": "t"}).status_code == 403
    )
    # A task run of the other run, named by its own id, is refused as well.
    task = create_task_run(other.pk, name="theirs", task_key="theirs")
    assert token_api.get(f"/api/task-runs/{task.pk}/").status_code == 403
    moved = token_api.post(
        f"/api/task-runs/{task.pk}/set-state/", json={"state_type": "RUNNING", "expected": "PENDING"}
    )
    assert moved.status_code == 403
    assert not other.logs.exists() and FlowRun.objects.get(pk=other.pk).state_type == S.PENDING


def test_a_run_token_cannot_claim_list_or_mint_tokens(token_api: Api, mine: FlowRun) -> None:
    pool = mine.work_pool.name
    claim = token_api.post(f"/api/work-pools/{pool}/workers/w1/claim/", json={})
    assert claim.status_code == 403
    assert claim.json()["detail"] == "A run token may only act on its own flow run's execution."
    assert token_api.post(f"/api/work-pools/{pool}/workers/", json={"name": "sneaky"}).status_code == 403
    assert token_api.get("/api/flow-runs/").status_code == 403
    assert token_api.get(f"/api/flow-runs/{mine.pk}/").status_code == 403
    assert token_api.post(f"/api/flow-runs/{mine.pk}/cancel/").status_code == 403
    assert token_api.post(f"/api/flow-runs/{mine.pk}/token/").status_code == 403
    assert token_api.get("/api/deployments/").status_code == 403


def test_a_run_token_is_refused_once_the_run_is_final(token_api: Api, mine: FlowRun, settings: Any) -> None:
    move(token_api, mine, "RUNNING", "PENDING")
    assert move(token_api, mine, "COMPLETED", "RUNNING").status_code == 200
    refused = token_api.get(f"/api/flow-runs/{mine.pk}/execution/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"Flow run {mine.name!r} is COMPLETED: its run token no longer works."
    assert token_api.post(f"/api/flow-runs/{mine.pk}/heartbeat/").status_code == 403
    # The engine's last log lines, sent just after the final state, are still taken...
    assert token_api.post(f"/api/flow-runs/{mine.pk}/logs/", json=[LOG]).status_code == 201
    # ...but not once the grace period is over.
    FlowRun.objects.filter(pk=mine.pk).update(state_at=timezone.now() - timedelta(seconds=61))
    assert token_api.post(f"/api/flow-runs/{mine.pk}/logs/", json=[LOG]).status_code == 403
    with pytest.raises(ValidationError, match="a finished run gets no token"):
        issue_run_token(FlowRun.objects.get(pk=mine.pk))


def test_an_expired_run_token_is_401(live_server: Any, mine: FlowRun) -> None:
    key, token = issue_run_token(mine)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Api(live_server.url, token).get(f"/api/flow-runs/{mine.pk}/execution/")
    assert response.status_code == 401


def test_a_worker_key_mints_tokens_for_its_own_pools_unfinished_runs(
    pool_worker: Api, mine: FlowRun, make_pool: Any, api_as: Any, live_server: Any
) -> None:
    response = pool_worker.post(f"/api/flow-runs/{mine.pk}/token/")
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert ApiKey.objects.get(flow_run=mine).scope == Scope.RUN
    assert Api(live_server.url, token).get(f"/api/flow-runs/{mine.pk}/execution/").status_code == 200
    other_pool_worker = api_as("worker", make_pool("elsewhere"))
    assert other_pool_worker.post(f"/api/flow-runs/{mine.pk}/token/").status_code == 403
    set_state(FlowRun.objects.get(pk=mine.pk), S.CRASHED, message="gone")
    finished = pool_worker.post(f"/api/flow-runs/{mine.pk}/token/")
    assert finished.status_code == 400 and "a finished run gets no token" in finished.json()["detail"]


WHICH_KEY = """
import os

from orchestrator import flow, get_run_logger


@flow
def which_key() -> None:
    get_run_logger().info("key prefix %s", os.environ["ORCHESTRATOR_API_KEY"][:12])
"""


@pytest.mark.parametrize("start", ["prewarmed", "cold"])
@pytest.mark.django_db(transaction=True)
def test_a_remote_workers_process_runs_hold_a_run_token_not_the_workers_key(
    start: str, live_server: Any, make_api_key: Any, make_deployment: Any, tmp_path: Any
) -> None:
    import subprocess
    import sys

    from tests.conftest import wait_for
    from tests.workpools.test_api_worker_remote import remote_env
    from tests.workpools.test_runworker import ROOT, collect, stop

    (tmp_path / "which_key.py").write_text(WHICH_KEY)
    dep = make_deployment("which-key", flow="which_key", path=str(tmp_path), entrypoint="which_key.py:which_key")
    worker_key = make_api_key("worker", dep.work_pool, name="remote-worker")
    home = tmp_path / "home"
    home.mkdir()
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runworker",
            "--pool",
            dep.work_pool.name,
            "--api-url",
            live_server.url,
            "--api-key",
            worker_key,
            "--poll-interval",
            "0.2",
            *(["--cold-start"] if start == "cold" else []),
        ],
        cwd=ROOT,
        env=remote_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = collect(worker)
    try:
        run, _ = create_flow_run(dep)
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 60, "the run to finish")
    finally:
        stop(worker)
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{''.join(output)}"
    logged = run.logs.get(message__startswith="key prefix ").message.removeprefix("key prefix ")
    key = ApiKey.objects.get(prefix=logged)
    assert (key.scope, key.flow_run_id) == (Scope.RUN, run.pk)
    assert not worker_key.startswith(logged)
