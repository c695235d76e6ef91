"""Work pools, their queues and workers over HTTP."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tests.conftest import Api
from workpools.models import Worker, WorkPool


def test_it_creates_a_pool_with_its_default_queue(writer: Api) -> None:
    response = writer.post("/api/work-pools/", json={"name": "my-process-pool", "concurrency_limit": 4})
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["type"], body["concurrency_limit"]) == ("my-process-pool", "process", 4)
    assert body["health"] == {"status": "NOT_READY", "reason": "no online worker"}
    queues = writer.get("/api/work-pools/my-process-pool/queues/").json()["results"]
    assert [q["name"] for q in queues] == ["default"]


def test_bad_pool_input_gets_a_message_per_field(writer: Api, pool: WorkPool) -> None:
    response = writer.post("/api/work-pools/", json={"name": "", "type": "mainframe", "concurrency_limit": -1})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"name", "type", "concurrency_limit"}
    assert errors["type"] == ['"mainframe" is not a valid choice.']
    taken = writer.post("/api/work-pools/", json={"name": "my-process-pool"})
    assert taken.status_code == 400
    assert taken.json() == {
        "detail": "A work pool named 'my-process-pool' already exists.",
        "errors": {"name": ["Already taken."]},
    }
    assert (
        writer.post("/api/work-pools/", data="{not json", headers={"Content-Type": "application/json"}).status_code
        == 400
    )


def test_a_pool_is_read_by_name_with_its_health(writer: Api, pool: WorkPool) -> None:
    Worker.objects.create(pool=pool, name="w1", last_heartbeat_at=timezone.now())
    body = writer.get("/api/work-pools/my-process-pool/").json()
    assert body["health"] == {"status": "READY", "reason": "1 online worker"}
    workers = writer.get("/api/work-pools/my-process-pool/workers/").json()["results"]
    assert [(w["name"], w["health"]["status"]) for w in workers] == [("w1", "ONLINE")]
    assert writer.get("/api/work-pools/my-process-pool/workers/w1/").json()["pool"] == "my-process-pool"
    missing = writer.get("/api/work-pools/nope/")
    assert missing.status_code == 404 and missing.json()["detail"]
    assert writer.get("/api/work-pools/nope/queues/").status_code == 404


def test_pools_and_queues_are_paused_and_resumed_through_the_services(writer: Api, pool: WorkPool) -> None:
    assert writer.post("/api/work-pools/my-process-pool/pause/").json()["health"]["status"] == "PAUSED"
    assert writer.post("/api/work-pools/my-process-pool/resume/").json()["paused"] is False
    queue = writer.post("/api/work-pools/my-process-pool/queues/default/pause/").json()
    assert queue["paused"] is True and queue["health"]["reason"] == "the queue is paused"


def test_it_edits_a_pool(writer: Api, pool: WorkPool) -> None:
    response = writer.patch(
        "/api/work-pools/my-process-pool/", json={"description": "laptops", "job_variables": {"env": {"A": "1"}}}
    )
    assert response.status_code == 200
    assert (response.json()["description"], response.json()["job_variables"]) == ("laptops", {"env": {"A": "1"}})
    bad = writer.patch("/api/work-pools/my-process-pool/", json={"job_variables": [1], "concurrency_limit": "many"})
    assert bad.status_code == 400
    assert bad.json()["errors"] == {
        "job_variables": ["Expected a JSON object."],
        "concurrency_limit": ["A valid integer is required."],
    }


def test_a_pool_in_use_by_a_deployment_cannot_be_deleted(writer: Api, deployment: Any, make_pool: Any) -> None:
    response = writer.delete("/api/work-pools/my-process-pool/")
    assert response.status_code == 409
    assert "still in use" in response.json()["detail"]
    make_pool("spare")
    assert writer.delete("/api/work-pools/spare/").status_code == 204
    assert not WorkPool.objects.filter(name="spare").exists()


def test_it_adds_edits_and_removes_queues(writer: Api, pool: WorkPool) -> None:
    created = writer.post(
        "/api/work-pools/my-process-pool/queues/", json={"name": "tutorial_queue", "priority": 10, "tags": ["tutorial"]}
    )
    assert created.status_code == 201
    assert (created.json()["pool"], created.json()["tags"]) == ("my-process-pool", ["tutorial"])
    again = writer.post("/api/work-pools/my-process-pool/queues/", json={"name": "tutorial_queue"})
    assert again.json()["errors"] == {"name": ["Already taken."]}
    edited = writer.patch("/api/work-pools/my-process-pool/queues/tutorial_queue/", json={"priority": 2})
    assert edited.json()["priority"] == 2
    assert writer.delete("/api/work-pools/my-process-pool/queues/tutorial_queue/").status_code == 204
    default = writer.delete("/api/work-pools/my-process-pool/queues/default/")
    assert default.status_code == 400
    assert default.json()["detail"] == "The 'default' queue of a pool cannot be deleted."
