"""POST /api/deployments/{id}/runs/: a run with custom parameters, validated, idempotent."""

from __future__ import annotations

from typing import Any

from deployments.models import Deployment
from runs.models import FlowRun
from tests.conftest import Api

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "greeting": {"type": "string"}},
    "required": ["name"],
}


def trigger(api: Api, deployment: Deployment, body: Any = None, **kwargs: Any) -> Any:
    return api.post(f"/api/deployments/{deployment.pk}/runs/", json=body, **kwargs)


def test_it_creates_a_run_with_parameters_merged_over_the_defaults(operator: Api, make_deployment: Any) -> None:
    dep = make_deployment(parameters={"name": "Leo", "greeting": "Hello"}, parameter_schema=SCHEMA, tags=["tutorial"])
    response = trigger(
        operator,
        dep,
        {
            "parameters": {"greeting": "Ciao"},
            "tags": ["adhoc"],
            "name": "my-run",
            "scheduled_time": "2030-01-02T03:04:05Z",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["parameters"] == {"name": "Leo", "greeting": "Ciao"}
    assert (body["name"], body["tags"], body["state_type"]) == ("my-run", ["tutorial", "adhoc"], "SCHEDULED")
    assert body["expected_start_at"] == "2030-01-02T03:04:05Z"
    assert body["work_queue"] == "default" and body["created_by"].startswith("api:trigger-key")
    assert operator.get(f"/api/flow-runs/{body['id']}/").json()["name"] == "my-run"


def test_an_empty_body_runs_with_the_defaults(operator: Api, deployment: Deployment) -> None:
    response = operator.post(f"/api/deployments/{deployment.pk}/runs/")
    assert response.status_code == 201
    assert response.json()["parameters"] == {"name": "Leo"}


def test_parameters_the_schema_refuses_get_a_message_each(operator: Api, make_deployment: Any) -> None:
    dep = make_deployment(parameter_schema=SCHEMA)
    response = trigger(operator, dep, {"parameters": {"nmae": "typo"}})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "nmae": ["The flow takes no parameter 'nmae'."],
        "name": ["This parameter is required."],
    }
    shape = trigger(operator, dep, {"parameters": [1], "tags": "x", "scheduled_time": "soon", "name": ""})
    assert set(shape.json()["errors"]) == {"parameters", "tags", "scheduled_time", "name"}
    assert shape.json()["errors"]["parameters"] == ["Expected a JSON object."]
    assert not FlowRun.objects.exists()


def test_a_repeated_idempotency_key_returns_the_first_run(operator: Api, deployment: Deployment) -> None:
    first = trigger(operator, deployment, {"idempotency_key": "deploy-42"})
    again = trigger(operator, deployment, {"idempotency_key": "deploy-42", "parameters": {"name": "Other"}})
    by_header = trigger(operator, deployment, {}, headers={"Idempotency-Key": "deploy-42"})
    assert (first.status_code, again.status_code, by_header.status_code) == (201, 200, 200)
    assert first.json()["id"] == again.json()["id"] == by_header.json()["id"]
    assert FlowRun.objects.count() == 1


def test_a_header_and_body_key_that_differ_are_refused(operator: Api, deployment: Deployment) -> None:
    response = trigger(operator, deployment, {"idempotency_key": "a"}, headers={"Idempotency-Key": "b"})
    assert response.status_code == 400
    assert "idempotency_key" in response.json()["errors"]


def test_triggering_needs_the_trigger_scope_and_a_real_deployment(
    api_as: Any, operator: Api, deployment: Deployment
) -> None:
    assert trigger(api_as("read"), deployment, {}).status_code == 403
    missing = operator.post("/api/deployments/00000000-0000-0000-0000-000000000000/runs/", json={})
    assert missing.status_code == 404
    assert not FlowRun.objects.exists()
