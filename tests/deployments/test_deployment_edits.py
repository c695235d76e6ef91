"""Editing a deployment after deploy: default parameters are checked against the flow's schema
on every surface (API, admin) as `deploy` checks them, and the API refuses fields it cannot
change instead of answering 200 and ignoring them."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse

from deployments.models import Deployment
from tests.conftest import Api

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "default": "world"}, "times": {"type": "integer"}},
    "required": ["times"],
}


def test_patching_default_parameters_that_break_the_schema_is_a_400_and_stores_nothing(
    writer: Api, make_deployment: Any
) -> None:
    dep = make_deployment(parameters={"name": "Leo"}, parameter_schema=SCHEMA)
    url = f"/api/deployments/{dep.pk}/"
    bad = writer.patch(url, json={"parameters": {"name": 5}})
    assert bad.status_code == 400
    assert bad.json()["errors"]["parameters"][0].startswith("Invalid parameter 'name'")
    unknown = writer.patch(url, json={"parameters": {"nmae": "Leo"}})
    assert unknown.status_code == 400 and "nmae" in unknown.json()["detail"]
    dep.refresh_from_db()
    assert dep.parameters == {"name": "Leo"}
    # A required parameter may be left to each run; a valid one is coerced and saved.
    ok = writer.patch(url, json={"parameters": {"name": "Marvin", "times": "3"}})
    assert ok.status_code == 200 and ok.json()["parameters"] == {"name": "Marvin", "times": 3}


def test_patching_fields_that_cannot_change_is_a_400_naming_them(writer: Api, deployment: Deployment) -> None:
    url = f"/api/deployments/{deployment.pk}/"
    response = writer.patch(url, json={"work_pool": "other", "name": "renamed", "description": "ok"})
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"name", "work_pool"}
    assert body["detail"].startswith("These fields cannot be changed here: name, work_pool")
    deployment.refresh_from_db()
    assert (deployment.name, deployment.description) == ("leonardo-deployment", "")


def _change_form(dep: Deployment, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "flow": dep.flow_id,
        "name": dep.name,
        "description": "",
        "version": "",
        "entrypoint": dep.entrypoint,
        "path": "",
        "pull_steps": "[]",
        "parameters": json.dumps(dep.parameters),
        "parameter_schema": json.dumps(dep.parameter_schema),
        "enforce_parameter_schema": "on",
        "tags": "[]",
        "work_pool": dep.work_pool_id,
        "work_queue": "",
        "job_variables": "{}",
        "concurrency_limit": "",
        "overlap_policy": "allow",
        "schedules-TOTAL_FORMS": "0",
        "schedules-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_the_admin_checks_default_parameters_against_the_schema(admin_client: Any, make_deployment: Any) -> None:
    dep = make_deployment(parameters={"name": "Leo"}, parameter_schema=SCHEMA)
    url = reverse("admin:deployments_deployment_change", args=[dep.pk])
    page = admin_client.post(url, _change_form(dep, parameters='{"name": 5}'))
    assert page.status_code == 200
    assert "Invalid parameter &#x27;name&#x27;" in page.content.decode()
    dep.refresh_from_db()
    assert dep.parameters == {"name": "Leo"}
    saved = admin_client.post(url, _change_form(dep, parameters='{"name": "Marvin"}'))
    assert saved.status_code == 302, saved.content.decode()[:3000]
    dep.refresh_from_db()
    assert dep.parameters == {"name": "Marvin"}
