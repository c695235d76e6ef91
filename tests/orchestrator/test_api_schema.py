"""The OpenAPI schema, the offline docs, and a property-based fuzz of every operation."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
import requests
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from accounts.models import AuditEntry
from automations.services import create_automation
from deployments.models import DeploymentSchedule
from deployments.services import create_flow_run
from deployments.webhooks import create_webhook
from runs.services import create_task_run
from tests.conftest import Api
from workpools.models import Worker


def test_the_schema_is_generated_without_warnings() -> None:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    assert '"/api/deployments/{id}/runs/"' in out.getvalue()


def test_the_schema_needs_a_key_and_describes_bearer_keys(anonymous: Api, api_as: Any) -> None:
    assert anonymous.get("/api/schema/").status_code == 401
    schema = api_as("read").get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}).json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "/api/flow-runs/{id}/cancel/" in schema["paths"]


def test_the_docs_page_loads_its_assets_from_us_not_a_cdn(live_server: Any, admin_user: Any, client: Any) -> None:
    client.force_login(admin_user)
    session = requests.Session()
    session.cookies["sessionid"] = client.cookies["sessionid"].value
    page = session.get(live_server.url + "/api/docs/", timeout=30)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    scripts = [a for a in assets if a.endswith(".js")]
    assert any("swagger-ui-bundle" in s for s in scripts)
    for asset in assets:
        assert session.get(live_server.url + asset, timeout=30).status_code == 200, asset


# --- fuzzing: every operation, generated inputs, no 5xx and no answer outside the schema ------


@pytest.fixture
def api_schema(live_server: Any, make_api_key: Any, deployment: Any, settings: Any) -> Any:
    """The live schema, and real objects for path parameters, so that generated bodies and
    queries reach the serializers and services instead of stopping at a 404."""
    settings.CLAIM_MAX_WAIT_SECONDS = 0.5  # generated claims may ask to wait a minute
    token = make_api_key("write", name="fuzzer")
    run, _ = create_flow_run(deployment, tags=["fuzz"])
    Worker.objects.create(pool=deployment.work_pool, name="w1")
    task_run = create_task_run(run.pk, name="t", task_key="t")
    schedule = DeploymentSchedule.objects.create(deployment=deployment, slug="s", kind="interval", interval_seconds=60)
    hook = create_webhook(deployment, name="hook")
    automation = create_automation(name="a", tag="x", state_type="FAILED", action="notify", url="http://127.0.0.1:9/")
    pool, dep = deployment.work_pool.name, str(deployment.pk)
    headers = {"Authorization": f"Bearer {token}"}
    loaded = schemathesis.openapi.from_url(live_server.url + "/api/schema/?format=json", headers=headers)
    loaded.fuzz_headers = headers
    loaded.fuzz_objects = {
        "name": lambda path: "w1" if "/workers/" in path else "default" if "/queues/" in path else pool,
        "pool_name": pool,
        "deployment_pk": dep,
        "run_pk": str(run.pk),
        "flow_name": deployment.flow.name,
        "deployment_name": deployment.name,
        "id": lambda path: {
            "/api/deployments/{deployment_pk}/schedules/": str(schedule.pk),
            "/api/deployments/": dep,
            "/api/flow-runs/": str(run.pk),
            "/api/flows/": str(deployment.flow_id),
            "/api/webhooks/": str(hook.pk),
            "/api/automations/": str(automation.pk),
            "/api/task-runs/": str(task_run.pk),
            "/api/audit-log/": str(AuditEntry.objects.order_by("-id").values_list("pk", flat=True).first()),
        }.get(path[: path.index("{id}")], "00000000-0000-4000-8000-000000000000"),  # others: a 404 at worst
    }
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_generated_request_gets_a_server_error_or_an_answer_outside_the_schema(case: Any, api_schema: Any) -> None:
    if case.method != "DELETE":  # deletes keep their generated ids, so the objects stay for the rest
        objects = api_schema.fuzz_objects
        case.path_parameters = {
            name: (objects[name](case.path) if callable(objects[name]) else objects[name])
            for name in case.path_parameters or {}
        }
    case.call_and_validate(
        headers=api_schema.fuzz_headers,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
