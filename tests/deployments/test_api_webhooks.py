"""Webhooks in: managed through the API, and a POST to /hooks/<slug>/ creates a run."""

from __future__ import annotations

from typing import Any

from deployments.models import Deployment, Webhook
from deployments.webhooks import create_webhook
from runs.models import FlowRun
from tests.conftest import Api

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "ref": {"type": "string"}}, "required": ["name"]}


def test_a_webhook_made_through_the_api_has_a_secret_url(writer: Api, deployment: Deployment) -> None:
    response = writer.post(
        "/api/webhooks/",
        json={"name": "github-push", "deployment": str(deployment.pk), "parameter_mapping": {"name": "$.pusher.name"}},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["slug"]) >= 32 and body["url"] == f"{writer.base_url}/hooks/{body['slug']}/"
    assert body["deployment_name"] == "leonardo_dicapriflow/leonardo-deployment"
    bad = writer.post(
        "/api/webhooks/", json={"name": "x", "deployment": str(deployment.pk), "parameter_mapping": {"name": "$.a..b"}}
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"parameter_mapping": ["'name': '$.a..b' has an empty step."]}
    taken = writer.post("/api/webhooks/", json={"name": "github-push", "deployment": str(deployment.pk)})
    assert taken.json()["errors"]["name"] == ["webhook with this name already exists."]
    assert writer.patch(f"/api/webhooks/{body['id']}/", json={"active": False}).json()["active"] is False


def test_a_post_to_the_hook_creates_a_run_with_mapped_parameters(anonymous: Api, make_deployment: Any) -> None:
    dep = make_deployment(parameters={"name": "Leo"}, parameter_schema=SCHEMA)
    hook = create_webhook(dep, name="push", parameter_mapping={"ref": "$.ref", "name": "$.commits.0.author"})
    response = anonymous.post(f"/hooks/{hook.slug}/", json={"ref": "main", "commits": [{"author": "Ada"}]})
    assert response.status_code == 201, response.text
    run = FlowRun.objects.get()
    assert run.parameters == {"name": "Ada", "ref": "main"}
    assert run.created_by == "webhook:push"
    assert response.json()["id"] == str(run.pk)


def test_a_redelivered_event_makes_no_second_run(anonymous: Api, deployment: Deployment) -> None:
    hook = create_webhook(deployment, name="push")
    first = anonymous.post(f"/hooks/{hook.slug}/", json={}, headers={"X-GitHub-Delivery": "72d3162e"})
    again = anonymous.post(f"/hooks/{hook.slug}/", json={}, headers={"X-GitHub-Delivery": "72d3162e"})
    other = anonymous.post(f"/hooks/{hook.slug}/", json={}, headers={"Idempotency-Key": "another"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert FlowRun.objects.count() == 2


def test_a_wrong_slug_is_404_and_makes_nothing(anonymous: Api, deployment: Deployment) -> None:
    hook = create_webhook(deployment, name="push", active=False)
    assert anonymous.post("/hooks/not-a-hook/", json={}).status_code == 404
    assert anonymous.post(f"/hooks/{hook.slug}/", json={}).status_code == 404  # switched off
    assert not FlowRun.objects.exists()


def test_payload_errors_are_400_with_what_is_missing(anonymous: Api, make_deployment: Any) -> None:
    dep = make_deployment(parameter_schema=SCHEMA)
    hook = create_webhook(dep, name="push", parameter_mapping={"name": "$.user.name"})
    missing = anonymous.post(f"/hooks/{hook.slug}/", json={"user": {}})
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"name": ["The body has no value at $.user.name."]}
    broken = anonymous.post(f"/hooks/{hook.slug}/", data="{oops", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "JSON parse error" in broken.json()["detail"]
    not_object = anonymous.post(f"/hooks/{hook.slug}/", json="just a string")
    assert not_object.json()["errors"] == {"body": ["Expected a JSON object."]}
    form = anonymous.post(f"/hooks/{hook.slug}/", data={"a": "b"})
    assert form.status_code == 415
    refused = create_webhook(dep, name="typo", parameter_mapping={"nmae": "x"})
    wrong_parameter = anonymous.post(f"/hooks/{refused.slug}/", json={})
    assert wrong_parameter.status_code == 400 and "nmae" in wrong_parameter.json()["errors"]
    assert not FlowRun.objects.exists()
    assert Webhook.objects.count() == 2
