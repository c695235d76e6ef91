"""What a flow run's engine calls over HTTP with its worker's key: the run's execution view,
set-state, heartbeat, retries, batched logs, task runs and their states, cached results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.core.states import StateType
from runs.models import FlowRun, Log, TaskRun
from runs.services import create_task_run, set_state, set_task_run_state
from tests.conftest import Api
from workpools.services import register_worker

S = StateType


@pytest.fixture
def claimed(run: FlowRun) -> FlowRun:
    """A run a worker of its pool claimed (PENDING), as the engine finds it."""
    worker, _ = register_worker(run.work_pool.name, name="w1")
    return set_state(run, S.PENDING, worker=worker)


def move(api: Api, run: FlowRun, to: str, expected: str, **body: Any) -> Any:
    return api.post(f"/api/flow-runs/{run.pk}/set-state/", json={"state_type": to, "expected": expected, **body})


def test_the_engine_reads_the_run_with_its_deployments_code_location(pool_worker: Api, claimed: FlowRun) -> None:
    body = pool_worker.get(f"/api/flow-runs/{claimed.pk}/execution/").json()
    assert body["id"] == str(claimed.pk) and body["parameters"] == {"name": "Leo"}
    assert (body["state_type"], body["run_count"], body["flow_name"]) == ("PENDING", 0, "leonardo_dicapriflow")
    assert body["worker_id"] == str(claimed.worker_id)
    assert body["deployment"]["entrypoint"] == "flows/hello.py:leonardo_dicapriflow"
    assert pool_worker.get("/api/flow-runs/00000000-0000-0000-0000-000000000000/execution/").status_code == 404


def test_set_state_moves_the_run_through_the_state_machine(pool_worker: Api, claimed: FlowRun) -> None:
    running = move(pool_worker, claimed, "RUNNING", "PENDING")
    assert running.status_code == 200
    assert (running.json()["state_type"], running.json()["run_count"]) == ("RUNNING", 1)
    done = move(pool_worker, claimed, "COMPLETED", "RUNNING", message="All states completed.")
    assert (done.json()["state_name"], done.json()["state_message"]) == ("Completed", "All states completed.")
    assert [s.name for s in claimed.states.order_by("id")] == ["Scheduled", "Pending", "Running", "Completed"]


def test_a_failure_with_retries_left_comes_back_awaiting_retry_unless_told_not_to(
    pool_worker: Api, claimed: FlowRun, make_run: Any
) -> None:
    FlowRun.objects.filter(pk=claimed.pk).update(retries=1)
    move(pool_worker, claimed, "RUNNING", "PENDING")
    failed = move(pool_worker, claimed, "FAILED", "RUNNING", message="ValueError: boom").json()
    assert (failed["state_type"], failed["state_name"]) == ("SCHEDULED", "AwaitingRetry")
    assert failed["next_scheduled_start_at"] is not None


def test_a_lost_compare_and_swap_is_409_with_the_states_in_it(pool_worker: Api, claimed: FlowRun) -> None:
    conflict = move(pool_worker, claimed, "CANCELLED", "SCHEDULED")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "detail": "A flow run cannot move from PENDING to CANCELLED: it is PENDING now, not SCHEDULED (another actor changed it first)",
        "conflict": {"kind": "state_conflict", "expected": "SCHEDULED", "actual": "PENDING", "to_type": "CANCELLED"},
    }
    forbidden = move(pool_worker, claimed, "COMPLETED", "PENDING")
    assert forbidden.status_code == 409
    assert forbidden.json()["conflict"] == {"kind": "invalid_transition", "from_type": "PENDING", "to_type": "COMPLETED"}


def test_bad_state_changes_get_a_message_per_field(pool_worker: Api, claimed: FlowRun) -> None:
    shape = pool_worker.post(f"/api/flow-runs/{claimed.pk}/set-state/", json={"state_type": "DONE", "retry": "maybe"})
    assert shape.status_code == 400
    assert set(shape.json()["errors"]) == {"state_type", "expected", "retry"}
    wrong_name = move(pool_worker, claimed, "RUNNING", "PENDING", name="Sprinting")
    assert wrong_name.status_code == 400
    assert wrong_name.json()["detail"] == "'Sprinting' is not a name of state RUNNING (use one of: Running, Retrying)."
    assert FlowRun.objects.get(pk=claimed.pk).state_type == S.PENDING


def test_a_heartbeat_says_whether_the_run_is_still_the_engines(pool_worker: Api, claimed: FlowRun) -> None:
    FlowRun.objects.filter(pk=claimed.pk).update(heartbeat_at=None)
    assert pool_worker.post(f"/api/flow-runs/{claimed.pk}/heartbeat/").json() == {"alive": True}
    assert FlowRun.objects.get(pk=claimed.pk).heartbeat_at is not None
    set_state(FlowRun.objects.get(pk=claimed.pk), S.CANCELLING)
    assert pool_worker.post(f"/api/flow-runs/{claimed.pk}/heartbeat/").json() == {"alive": False}


def test_the_flows_retries_and_the_process_are_recorded(pool_worker: Api, claimed: FlowRun) -> None:
    path = f"/api/flow-runs/{claimed.pk}"
    assert pool_worker.post(f"{path}/retries/", json={"retries": 3, "retry_delay_seconds": 1.6}).status_code == 204
    assert pool_worker.post(f"{path}/process/", json={"pid": 77, "hostname": "laptop"}).status_code == 204
    run = FlowRun.objects.get(pk=claimed.pk)
    assert (run.retries, run.retry_delay_seconds, run.pid, run.hostname) == (3, 2, 77, "laptop")
    bad = pool_worker.post(f"{path}/retries/", json={"retries": -1})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"retries", "retry_delay_seconds"}
    assert pool_worker.post(f"{path}/process/", json={"pid": 0, "hostname": "x"}).status_code == 400


def test_logs_arrive_in_one_batch(pool_worker: Api, claimed: FlowRun) -> None:
    task_run = create_task_run(claimed.pk, name="log_message-1", task_key="log_message")
    now = datetime.now(UTC)
    batch = [
        {"level": 20, "logger": "orchestrator.runs.flow_run", "message": f"line {i}", "timestamp": (now + timedelta(seconds=i)).isoformat()}
        for i in range(300)
    ]
    batch.append({"task_run": str(task_run.pk), "level": 40, "message": "  Traceback (indented)", "timestamp": now.isoformat()})
    response = pool_worker.post(f"/api/flow-runs/{claimed.pk}/logs/", json=batch)
    assert (response.status_code, response.json()) == (201, {"stored": 301})
    assert claimed.logs.count() == 301
    assert Log.objects.get(task_run=task_run).message == "  Traceback (indented)"  # whitespace kept


def test_bad_log_batches_store_nothing(pool_worker: Api, claimed: FlowRun, make_run: Any) -> None:
    logs = f"/api/flow-runs/{claimed.pk}/logs/"
    elsewhere = create_task_run(make_run().pk, name="t", task_key="t")
    now = datetime.now(UTC).isoformat()
    foreign = pool_worker.post(logs, json=[{"task_run": str(elsewhere.pk), "message": "x", "timestamp": now}])
    assert foreign.status_code == 400
    assert foreign.json()["errors"] == {"task_run": [f"No task run {elsewhere.pk} in this flow run."]}
    shape = pool_worker.post(logs, json=[{"message": "x", "timestamp": "yesterday", "level": "loud"}])
    assert shape.status_code == 400
    assert pool_worker.post(logs, json={"message": "not a list"}).status_code == 400
    assert pool_worker.post(logs, json=[{"message": "nul \x00", "timestamp": now}]).status_code == 400
    assert not Log.objects.exists()


def test_task_runs_are_created_moved_and_read(pool_worker: Api, claimed: FlowRun) -> None:
    created = pool_worker.post(
        f"/api/flow-runs/{claimed.pk}/task-runs/",
        json={"name": "log_message-1", "task_key": "log_message", "dynamic_key": "0", "tags": ["t"]},
    )
    assert created.status_code == 201
    task_run = created.json()
    assert (task_run["state_type"], task_run["tags"]) == ("PENDING", ["t"])
    path = f"/api/task-runs/{task_run['id']}/"
    running = pool_worker.post(f"{path}set-state/", json={"state_type": "RUNNING", "expected": "PENDING"})
    assert (running.json()["state_name"], running.json()["run_count"]) == ("Running", 1)
    done = pool_worker.post(
        f"{path}set-state/",
        json={"state_type": "COMPLETED", "expected": "RUNNING", "result": {"greeting": "Hello Leo"}, "cache_key": "k1"},
    )
    assert done.status_code == 200
    assert TaskRun.objects.get(pk=task_run["id"]).result == {"greeting": "Hello Leo"}
    assert pool_worker.get(path).json()["state_type"] == "COMPLETED"
    stale = pool_worker.post(f"{path}set-state/", json={"state_type": "FAILED", "expected": "RUNNING"})
    assert stale.status_code == 409 and stale.json()["conflict"]["actual"] == "COMPLETED"
    bad = pool_worker.post(f"/api/flow-runs/{claimed.pk}/task-runs/", json={"name": "", "tags": "x"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"name", "task_key", "tags"}


def test_a_cached_result_is_found_by_its_key_within_the_workers_pool(
    pool_worker: Api, claimed: FlowRun, make_pool: Any, make_deployment: Any, make_run: Any, writer: Api
) -> None:
    def completed(run: FlowRun, key: str, value: Any) -> TaskRun:
        task_run = create_task_run(run.pk, name=f"cached-{key}", task_key="cached")
        set_task_run_state(task_run, S.RUNNING)
        return set_task_run_state(task_run, S.COMPLETED, result=value, cache_key=key)

    mine = completed(claimed, "k1", {"greeting": "Hello Leo"})
    other_pool_run = make_run(make_deployment("elsewhere", work_pool=make_pool("someone-elses-pool")))
    completed(other_pool_run, "k2", "secret")
    hit = pool_worker.get("/api/task-runs/cached/", params={"cache_key": "k1"})
    assert hit.json() == {
        "task_run_id": str(mine.pk), "task_run_name": "cached-k1", "value": {"greeting": "Hello Leo"}, "result_uri": "",
    }
    assert pool_worker.get("/api/task-runs/cached/", params={"cache_key": "nope"}).status_code == 204
    assert pool_worker.get("/api/task-runs/cached/", params={"cache_key": "k2"}).status_code == 204  # not its pool's
    assert writer.get("/api/task-runs/cached/", params={"cache_key": "k2"}).json()["value"] == "secret"
    assert pool_worker.get("/api/task-runs/cached/").status_code == 400


def test_a_worker_key_acts_only_on_runs_of_its_own_pool(
    api_as: Any, anonymous: Api, claimed: FlowRun, make_pool: Any
) -> None:
    task_run = create_task_run(claimed.pk, name="t", task_key="t")
    other = api_as("worker", make_pool("someone-elses-pool"))
    now = datetime.now(UTC).isoformat()
    run_path, task_path = f"/api/flow-runs/{claimed.pk}", f"/api/task-runs/{task_run.pk}"
    calls = [
        ("get", f"{run_path}/execution/", None),
        ("post", f"{run_path}/set-state/", {"state_type": "RUNNING", "expected": "PENDING"}),
        ("post", f"{run_path}/heartbeat/", None),
        ("post", f"{run_path}/process/", {"pid": 1, "hostname": "x"}),
        ("post", f"{run_path}/retries/", {"retries": 1, "retry_delay_seconds": 0}),
        ("post", f"{run_path}/logs/", [{"message": "x", "timestamp": now}]),
        ("post", f"{run_path}/task-runs/", {"name": "t", "task_key": "t"}),
        ("get", f"{task_path}/", None),
        ("post", f"{task_path}/set-state/", {"state_type": "RUNNING", "expected": "PENDING"}),
    ]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        refused = getattr(other, method)(path, **kwargs)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["detail"] == "This worker key acts only on work pool 'someone-elses-pool'."
        assert getattr(anonymous, method)(path, **kwargs).status_code == 401, path
    assert api_as("read").post(f"{run_path}/set-state/", json={"state_type": "RUNNING", "expected": "PENDING"}).status_code == 403
    # Reading the run's lists stays for readers; the worker key has no business there.
    assert other.get(f"{run_path}/logs/").status_code == 403
    assert FlowRun.objects.get(pk=claimed.pk).state_type == S.PENDING
    assert not Log.objects.exists() and TaskRun.objects.get().state_type == S.PENDING
