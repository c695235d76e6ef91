"""Flow runs over HTTP: filters, keyset pages, history, task runs, logs, cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.core.states import StateType
from runs.models import FlowRun, Log, TaskRun
from runs.services import set_state
from tests.conftest import Api

S = StateType


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["name"] for run in response.json()["results"]]


def test_runs_are_filtered_by_state_deployment_pool_queue_tag_and_time(
    operator: Api, make_run: Any, make_deployment: Any, make_pool: Any
) -> None:
    now = timezone.now()
    old = make_run(name="old", scheduled_at=now - timedelta(days=2))
    tagged = make_run(name="tagged", tags=["nightly"], scheduled_at=now - timedelta(hours=1))
    elsewhere = make_deployment("elsewhere", work_pool=make_pool("gpu-pool"))
    other = make_run(elsewhere, name="other-pool", scheduled_at=now)
    set_state(old, S.CANCELLED)

    assert names(operator.get("/api/flow-runs/")) == ["other-pool", "tagged", "old"]
    assert names(operator.get("/api/flow-runs/", params={"state": "CANCELLED"})) == ["old"]
    assert names(operator.get("/api/flow-runs/", params=[("state", "CANCELLED"), ("state", "SCHEDULED")])) == [
        "other-pool",
        "tagged",
        "old",
    ]
    assert names(operator.get("/api/flow-runs/", params={"deployment": str(other.deployment_id)})) == ["other-pool"]
    assert names(operator.get("/api/flow-runs/", params={"pool": "gpu-pool"})) == ["other-pool"]
    assert names(operator.get("/api/flow-runs/", params={"pool": "my-process-pool", "queue": "default"})) == [
        "tagged",
        "old",
    ]
    assert names(operator.get("/api/flow-runs/", params={"tag": "nightly"})) == ["tagged"]
    assert names(operator.get("/api/flow-runs/", params={"tag": "tutorial", "pool": "my-process-pool"})) == [
        "tagged",
        "old",
    ]
    window = {"since": (now - timedelta(days=1)).isoformat(), "until": (now - timedelta(minutes=1)).isoformat()}
    assert names(operator.get("/api/flow-runs/", params=window)) == ["tagged"]
    assert tagged.pk and old.pk


def test_bad_filters_are_400_with_a_message_per_filter(operator: Api) -> None:
    response = operator.get("/api/flow-runs/", params={"state": "DONE", "deployment": "x", "since": "yesterday"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"state", "deployment", "since"}


def test_cursor_pages_walk_every_run_once_newest_first(operator: Api, make_run: Any) -> None:
    start = timezone.now()
    # Two runs share each start time: the cursor must neither skip nor repeat ties.
    made = [make_run(name=f"run-{i:02d}", scheduled_at=start + timedelta(minutes=i // 2)) for i in range(11)]
    seen: list[str] = []
    url: str | None = "/api/flow-runs/?limit=3"
    while url:
        page = operator.get(url.removeprefix(operator.base_url)).json()
        assert "count" not in page  # nothing counts the table
        seen += [run["id"] for run in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 11
    expected = sorted(made, key=lambda r: (r.expected_start_at, str(r.pk)), reverse=True)
    assert seen == [str(r.pk) for r in expected]


@pytest.mark.django_db
def test_a_page_of_runs_costs_a_fixed_number_of_queries_and_no_count(make_run: Any, admin_user: Any) -> None:
    for i in range(30):
        make_run(name=f"r{i}")
    client = APIClient()
    client.force_authenticate(admin_user)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/flow-runs/?limit=5").status_code == 200
    with CaptureQueriesContext(connection) as many:
        assert client.get("/api/flow-runs/?limit=25").status_code == 200
    assert len(few) == len(many)
    assert not any("COUNT(" in q["sql"].upper() for q in many.captured_queries)


def test_a_runs_history_task_runs_and_logs_are_nested_under_it(operator: Api, run: FlowRun) -> None:
    set_state(run, S.PENDING, message="claimed")
    set_state(run, S.RUNNING)
    now = timezone.now()
    TaskRun.objects.create(flow_run=run, name="say_hello-0", task_key="say_hello", state_at=now)
    for i, level in enumerate([10, 20, 30, 40, 20]):
        Log.objects.create(flow_run=run, level=level, message=f"line {i}", timestamp=now + timedelta(seconds=i))

    states = operator.get(f"/api/flow-runs/{run.pk}/states/").json()
    assert [(s["type"], s["message"]) for s in states] == [("SCHEDULED", ""), ("PENDING", "claimed"), ("RUNNING", "")]
    tasks = operator.get(f"/api/flow-runs/{run.pk}/task-runs/").json()["results"]
    assert [t["name"] for t in tasks] == ["say_hello-0"]

    logs = operator.get(f"/api/flow-runs/{run.pk}/logs/", params={"limit": 2}).json()
    assert [entry["message"] for entry in logs["results"]] == ["line 0", "line 1"]
    rest = operator.get(logs["next"].removeprefix(operator.base_url)).json()
    assert [entry["message"] for entry in rest["results"]] == ["line 2", "line 3"]
    warnings = operator.get(f"/api/flow-runs/{run.pk}/logs/", params={"level": 30}).json()["results"]
    assert [entry["message"] for entry in warnings] == ["line 2", "line 3"]
    since = (now + timedelta(seconds=3)).isoformat()
    recent = operator.get(f"/api/flow-runs/{run.pk}/logs/", params={"since": since}).json()["results"]
    assert [entry["message"] for entry in recent] == ["line 3", "line 4"]
    assert operator.get(f"/api/flow-runs/{run.pk}/logs/", params={"level": "loud"}).status_code == 400
    assert operator.get("/api/flow-runs/00000000-0000-0000-0000-000000000000/logs/").status_code == 404


def test_cancel_goes_through_the_service_and_a_finished_run_is_409(operator: Api, make_run: Any) -> None:
    scheduled, running = make_run(), make_run()
    set_state(running, S.PENDING)
    set_state(running, S.RUNNING)
    assert operator.post(f"/api/flow-runs/{scheduled.pk}/cancel/").json()["state_type"] == "CANCELLED"
    cancelling = operator.post(f"/api/flow-runs/{running.pk}/cancel/").json()
    assert (cancelling["state_type"], cancelling["state_message"]) == (
        "CANCELLING",
        "Cancellation requested by api:trigger-key-0",
    )
    again = operator.post(f"/api/flow-runs/{scheduled.pk}/cancel/")
    assert again.status_code == 409
    assert (
        again.json()["detail"]
        == "A flow run cannot move from CANCELLED to CANCELLING: the run already ended as Cancelled"
    )
