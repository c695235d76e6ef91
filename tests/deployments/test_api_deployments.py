"""Flows, deployments and schedules over HTTP."""

from __future__ import annotations

from typing import Any

from deployments.models import Deployment, DeploymentSchedule
from tests.conftest import Api


def test_deployments_are_listed_filtered_and_found_by_id_or_name(
    operator: Api, deployment: Deployment, make_deployment: Any
) -> None:
    make_deployment("other", flow="another_flow")
    listed = operator.get("/api/deployments/").json()["results"]
    assert [d["full_name"] for d in listed] == ["another_flow/other", "leonardo_dicapriflow/leonardo-deployment"]
    only = operator.get("/api/deployments/", params={"flow": "another_flow"}).json()["results"]
    assert [d["name"] for d in only] == ["other"]

    by_id = operator.get(f"/api/deployments/{deployment.pk}/").json()
    assert (by_id["work_pool"], by_id["parameters"], by_id["tags"]) == (
        "my-process-pool",
        {"name": "Leo"},
        ["tutorial", "test"],
    )
    by_name = operator.get("/api/deployments/name/leonardo_dicapriflow/leonardo-deployment/")
    assert by_name.json()["id"] == str(deployment.pk)
    missing = operator.get("/api/deployments/name/leonardo_dicapriflow/nope/")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No deployment named 'leonardo_dicapriflow/nope'."
    assert operator.get("/api/deployments/not-a-uuid/").status_code == 404


def test_it_edits_pauses_and_deletes_a_deployment(writer: Api, deployment: Deployment) -> None:
    url = f"/api/deployments/{deployment.pk}/"
    assert writer.patch(url, json={"tags": ["prod"], "concurrency_limit": 2}).json()["tags"] == ["prod"]
    assert writer.patch(url, json={"tags": "prod"}).json()["errors"] == {
        "tags": ['Expected a list of items but got type "str".']
    }
    assert writer.post(url + "pause/").json()["paused"] is True
    assert writer.post(url + "resume/").json()["paused"] is False
    assert writer.delete(url).status_code == 204
    assert not Deployment.objects.exists()


def test_a_deployments_schedules_and_the_flows_are_readable(operator: Api, deployment: Deployment) -> None:
    schedule = DeploymentSchedule.objects.create(
        deployment=deployment, slug="hourly", kind="interval", interval_seconds=3600
    )
    schedules = operator.get(f"/api/deployments/{deployment.pk}/schedules/").json()["results"]
    assert [(s["slug"], s["interval_seconds"]) for s in schedules] == [("hourly", 3600)]
    assert operator.get(f"/api/deployments/{deployment.pk}/schedules/{schedule.pk}/").json()["kind"] == "interval"
    assert operator.get("/api/deployments/00000000-0000-0000-0000-000000000000/schedules/").status_code == 404
    flows = operator.get("/api/flows/").json()["results"]
    assert [f["name"] for f in flows] == ["leonardo_dicapriflow"]
    assert operator.get(f"/api/flows/{flows[0]['id']}/").json()["name"] == "leonardo_dicapriflow"
