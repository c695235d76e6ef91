"""The worker endpoints over HTTP: register, heartbeat, claim (with its long poll), held runs,
stopped; who may call them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import request_cancellation, set_state
from tests.conftest import Api, wait_for
from workpools.models import Worker, WorkPool
from workpools.services import create_work_queue
from workpools.services.claiming import claims_waiting

S = StateType
POOL = "/api/work-pools/my-process-pool"


def register(api: Api, name: str = "w1", **body: Any) -> Any:
    return api.post(f"{POOL}/workers/", json={"name": name, **body})


def test_a_worker_key_registers_its_worker_and_learns_the_heartbeat_interval(pool_worker: Api, pool: WorkPool) -> None:
    response = register(pool_worker, hostname="laptop", pid=4242, limit=2)
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["pool_name"], body["pool_type"], body["limit"]) == (
        "w1",
        "my-process-pool",
        "process",
        2,
    )
    assert body["queue_ids"] is None and body["pool_created"] is False
    assert body["heartbeat_seconds"] == 10.0 and body["run_heartbeat_seconds"] == 10.0
    worker = Worker.objects.get(name="w1")
    assert (worker.hostname, worker.pid, worker.limit) == ("laptop", 4242, 2)
    # Registering again under the same name is the same worker, restarted.
    assert register(pool_worker, limit=None).json()["id"] == body["id"]
    assert Worker.objects.get().limit is None


def test_registering_with_queues_returns_their_ids_and_refuses_unknown_ones(pool_worker: Api, pool: WorkPool) -> None:
    tutorial = create_work_queue(pool, "tutorial")
    response = register(pool_worker, queues=["tutorial"])
    assert response.json()["queue_ids"] == [str(tutorial.pk)]
    unknown = register(pool_worker, "w2", queues=["nope"])
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "Work pool 'my-process-pool' has no queue 'nope'."
    assert not Worker.objects.filter(name="w2").exists()


def test_bad_registrations_get_a_message_per_field(pool_worker: Api, pool: WorkPool) -> None:
    response = pool_worker.post(f"{POOL}/workers/", json={"name": "", "limit": -1, "pid": "many", "queues": "default"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "limit", "pid", "queues"}
    slash = register(pool_worker, "laptop/1")  # it could not be named in the worker's URLs
    assert (slash.status_code, slash.json()["errors"]) == (400, {"name": ["No '/' allowed."]})
    assert pool_worker.post("/api/work-pools/nope/workers/", json={"name": "w"}).status_code == 403  # not its pool


def test_a_heartbeat_and_a_goodbye_are_recorded(pool_worker: Api, pool: WorkPool) -> None:
    register(pool_worker)
    Worker.objects.update(last_heartbeat_at=None)
    assert pool_worker.post(f"{POOL}/workers/w1/heartbeat/").status_code == 204
    assert Worker.objects.get().last_heartbeat_at is not None
    assert pool_worker.post(f"{POOL}/workers/w1/stopped/").status_code == 204
    assert Worker.objects.get().stopped_at is not None
    assert pool_worker.post(f"{POOL}/workers/ghost/heartbeat/").status_code == 404


def test_a_claim_hands_out_due_runs_with_what_the_worker_needs_to_start_them(
    pool_worker: Api, pool: WorkPool, make_deployment: Any, make_run: Any
) -> None:
    pool.job_variables = {"env": {"A": "pool"}}
    pool.save()
    dep = make_deployment(
        "jv",
        path="/srv/flows",
        job_variables={"env": {"B": "deployment"}},
        pull_steps=[{"set_working_directory": {"directory": "hello"}}],
    )
    run = make_run(dep)
    register(pool_worker)
    response = pool_worker.post(f"{POOL}/workers/w1/claim/", json={})
    assert response.status_code == 200
    assert response.json() == {
        "runs": [
            {
                "id": str(run.pk),
                "name": run.name,
                "job_variables": {
                    "env": {"A": "pool", "B": "deployment"},
                    "working_dir": None,
                    "command": None,
                    "stream_output": True,
                },
                # The pool's (default) base job template, rendered with those variables.
                "job_configuration": {
                    "env": {"A": "pool", "B": "deployment"},
                    "working_dir": None,
                    "command": None,
                    "stream_output": True,
                },
                "configuration_error": "",
                "deployment": {
                    "id": str(dep.pk),
                    "full_name": "leonardo_dicapriflow/jv",
                    "entrypoint": "flows/hello.py:leonardo_dicapriflow",
                    "path": "/srv/flows",
                    "pull_steps": [{"set_working_directory": {"directory": "hello"}}],
                },
            }
        ]
    }
    run.refresh_from_db()
    assert run.state_type == S.PENDING and run.worker.name == "w1"


def test_a_claimed_run_is_handed_out_again_until_the_worker_records_its_process(
    pool_worker: Api, pool: WorkPool, run: FlowRun
) -> None:
    # The first answer may have been lost on the way: the run is not lost with it.
    register(pool_worker)
    claim = f"{POOL}/workers/w1/claim/"
    assert [r["id"] for r in pool_worker.post(claim).json()["runs"]] == [str(run.pk)]
    assert [r["id"] for r in pool_worker.post(claim).json()["runs"]] == [str(run.pk)]
    recorded = pool_worker.post(f"/api/flow-runs/{run.pk}/process/", json={"pid": 4242, "hostname": "laptop"})
    assert recorded.status_code == 204
    assert pool_worker.post(claim).json()["runs"] == []
    run.refresh_from_db()
    assert (run.pid, run.hostname) == (4242, "laptop")


def test_an_idle_claim_waits_and_answers_as_soon_as_a_run_is_due(
    pool_worker: Api, pool: WorkPool, make_run: Any
) -> None:
    register(pool_worker)
    claim = f"{POOL}/workers/w1/claim/"
    started = time.monotonic()
    assert pool_worker.post(claim, json={"wait_seconds": 1}).json()["runs"] == []
    assert 0.9 <= time.monotonic() - started < 5  # it waited, then gave up

    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["runs"] = pool_worker.post(claim, json={"wait_seconds": 15}).json()["runs"]
        answer["at"] = time.monotonic()

    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_for(lambda: claims_waiting() == 1, 10, "the claim to wait in its long poll")
    created_at = time.monotonic()
    run = make_run()
    poller.join(timeout=20)
    assert [r["id"] for r in answer["runs"]] == [str(run.pk)]
    assert answer["at"] - created_at < 1.0  # picked up at once, not at the end of the wait


def test_claims_wait_at_most_the_server_allows_and_only_so_many_at_once(
    pool_worker: Api, pool: WorkPool, settings: Any
) -> None:
    register(pool_worker)
    claim = f"{POOL}/workers/w1/claim/"
    settings.CLAIM_MAX_WAIT_SECONDS = 0.5
    started = time.monotonic()
    pool_worker.post(claim, json={"wait_seconds": 30})
    assert time.monotonic() - started < 3
    settings.CLAIM_MAX_WAIT_SECONDS, settings.CLAIM_MAX_WAITERS = 20, 0  # every web thread is taken
    started = time.monotonic()
    assert pool_worker.post(claim, json={"wait_seconds": 30}).json()["runs"] == []
    assert time.monotonic() - started < 3  # answered at once: the worker polls again later


def test_claiming_input_is_checked(pool_worker: Api, pool: WorkPool) -> None:
    register(pool_worker)
    response = pool_worker.post(
        f"{POOL}/workers/w1/claim/", json={"wait_seconds": -1, "prefetch_seconds": "soon", "queue_ids": ["x"]}
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"wait_seconds", "prefetch_seconds", "queue_ids"}
    assert pool_worker.post(f"{POOL}/workers/w1/claim/", json={"wait_seconds": 61}).status_code == 400


def test_a_worker_reads_its_unfinished_runs_by_state(pool_worker: Api, pool: WorkPool, make_run: Any) -> None:
    register(pool_worker)
    first, second, _ = make_run(), make_run(), make_run()
    worker = Worker.objects.get()
    for run in (first, second):
        set_state(run, S.PENDING, worker=worker)
    request_cancellation(FlowRun.objects.get(pk=second.pk), by="alice")
    held = pool_worker.get(f"{POOL}/workers/w1/runs/").json()
    assert {r["id"]: r["state_type"] for r in held} == {str(first.pk): "PENDING", str(second.pk): "CANCELLING"}
    cancelling = pool_worker.get(f"{POOL}/workers/w1/runs/", params={"state": "CANCELLING"}).json()
    assert [(r["id"], r["state_name"], r["pid"]) for r in cancelling] == [(str(second.pk), "Cancelling", None)]
    bad = pool_worker.get(f"{POOL}/workers/w1/runs/", params={"state": "COMPLETED"})
    assert bad.status_code == 400 and "state" in bad.json()["errors"]


@pytest.mark.parametrize(
    "call",
    [
        ("post", "/workers/", {"name": "w9"}),
        ("post", "/workers/w1/heartbeat/", None),
        ("post", "/workers/w1/stopped/", None),
        ("post", "/workers/w1/claim/", {}),
        ("get", "/workers/w1/runs/", None),
    ],
)
def test_worker_endpoints_refuse_other_pools_keys_and_strangers(
    call: tuple[str, str, Any], api_as: Any, anonymous: Api, pool_worker: Api, make_pool: Any, run: FlowRun
) -> None:
    method, path, body = call
    register(pool_worker)
    other_pools_worker = api_as("worker", make_pool("someone-elses-pool"))
    kwargs = {"json": body} if body is not None else {}
    refused = getattr(other_pools_worker, method)(POOL + path, **kwargs)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This worker key acts only on work pool 'someone-elses-pool'."
    assert getattr(anonymous, method)(POOL + path, **kwargs).status_code == 401
    assert getattr(api_as("read"), method)(POOL + path, **kwargs).status_code == (200 if method == "get" else 403)
    assert getattr(pool_worker, method)(POOL + path, **kwargs).status_code in (200, 204)  # its own pool


def test_worker_keys_have_a_request_rate_of_their_own(
    pool_worker: Api, operator: Api, pool: WorkPool, settings: Any
) -> None:
    # A worker and its flow runs call the API for every state and batch of logs.
    settings.API_THROTTLE_RATE = "3/min"
    assert [operator.get("/api/work-pools/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert {pool_worker.get(f"{POOL}/").status_code for _ in range(10)} == {200}
    settings.API_WORKER_THROTTLE_RATE = "2/min"
    assert [pool_worker.get(f"{POOL}/").status_code for _ in range(3)] == [200, 200, 429]
