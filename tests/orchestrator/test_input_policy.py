"""Hostile input gets a 400 naming the field, never a 500: every input of issue 14's point 4,
over real HTTP (the live server), on SQLite and on PostgreSQL (which refuses NUL, lone
surrogates and UTC offsets beyond ±15:59 in its own way)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from deployments.models import Deployment
from deployments.webhooks import create_webhook
from orchestrator.core.errors import ValidationError
from orchestrator.input_policy import MAX_JSON_DEPTH, json_problem, loads, timestamp_problem
from runs.models import FlowRun
from tests.conftest import Api


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def post_raw(api: Api, path: str, text: str) -> Any:
    return api.post(path, data=text.encode(), headers={"Content-Type": "application/json"})


def assert_400(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.text[:500])
    body = response.json()
    assert any(key == field or key.startswith(field + ".") for key in body.get("errors", {})), body
    return body


# --- the policy itself ------------------------------------------------------------------------


def test_the_policy_names_the_path_of_what_it_refuses() -> None:
    assert json_problem({"a": [{"b": "x\x00y"}]}) == ("a.0.b", "The text contains a NUL character (\\u0000).")
    assert json_problem({"k\ud800": 1})[0] == "k\ud800"  # type: ignore[index]
    assert json_problem(loads(nested(MAX_JSON_DEPTH), field="p")) is None
    with pytest.raises(ValidationError) as refused:
        loads(nested(10_000), field="parameters")
    assert refused.value.errors == {"parameters": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}


def test_timestamps_outside_postgresqls_range_are_refused() -> None:
    from datetime import datetime

    assert timestamp_problem(datetime.fromisoformat("2026-01-01T00:00:00+15:59")) is None
    assert "UTC offset" in (timestamp_problem(datetime.fromisoformat("2026-01-01T00:00:00+16:00")) or "")
    assert "UTC offset" in (timestamp_problem(datetime.fromisoformat("2026-01-01T00:00:00-16:00")) or "")
    assert "out of range" in (timestamp_problem(datetime.fromisoformat("0001-01-01T00:00:00+01:00")) or "")


# --- the API and webhooks ---------------------------------------------------------------------


@pytest.fixture
def hook_slug(make_deployment: Any) -> str:
    dep = make_deployment(parameters={"name": "Leo"}, enforce_parameter_schema=False)
    return create_webhook(dep, name="push", parameter_mapping={"name": "$.name"}).slug


@pytest.fixture
def open_deployment(make_deployment: Any) -> Deployment:
    return make_deployment(parameters={"name": "Leo"}, enforce_parameter_schema=False)


def test_json_nested_10000_deep_is_a_400_on_the_api(writer: Api, open_deployment: Deployment) -> None:
    response = post_raw(
        writer, f"/api/deployments/{open_deployment.pk}/runs/", '{"parameters": ' + nested(10_000) + "}"
    )
    assert response.status_code == 400, response.text[:300]
    assert "deeper than" in response.json()["detail"]
    assert not FlowRun.objects.exists()


def test_json_nested_10000_deep_is_a_400_on_a_webhook(anonymous: Api, hook_slug: str) -> None:
    response = post_raw(anonymous, f"/hooks/{hook_slug}/", nested_object(10_000))
    assert response.status_code == 400, response.text[:300]
    assert "deeper than" in response.json()["detail"]
    assert not FlowRun.objects.exists()


@pytest.mark.parametrize(("depth", "field"), [(65, "parameters.deep"), (350, "parameters.deep"), (1000, "body")])
def test_parameters_nested_hundreds_deep_are_a_400_naming_where(
    writer: Api, open_deployment: Deployment, depth: int, field: str
) -> None:
    response = post_raw(
        writer, f"/api/deployments/{open_deployment.pk}/runs/", '{"parameters": {"deep": ' + nested(depth) + "}}"
    )
    assert_400(response, field)
    assert not FlowRun.objects.exists()


def test_a_lone_surrogate_in_a_parameter_is_a_400_naming_it(writer: Api, open_deployment: Deployment) -> None:
    response = post_raw(writer, f"/api/deployments/{open_deployment.pk}/runs/", '{"parameters": {"name": "\\ud800"}}')
    body = assert_400(response, "parameters.name")
    assert "surrogate" in body["detail"]
    assert not FlowRun.objects.exists()


def test_a_nul_in_a_webhook_body_is_a_400(anonymous: Api, hook_slug: str) -> None:
    response = post_raw(anonymous, f"/hooks/{hook_slug}/", '{"name": "a\\u0000b"}')
    body = assert_400(response, "name")
    assert "NUL" in body["detail"]
    assert not FlowRun.objects.exists()


def test_a_nul_in_the_url_is_a_400(writer: Api, open_deployment: Deployment) -> None:
    response = writer.get("/api/deployments/name/a%00b/c/")
    assert response.status_code == 400, response.text[:300]
    assert "NUL" in response.json()["detail"]
    assert writer.get("/api/flow-runs/?tag=a%00b").status_code == 400


OFFSETS = ["2026-01-01T00:00:00+16:00", "2026-01-01T00:00:00-23:59", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("value", OFFSETS)
@pytest.mark.parametrize("name", ["since", "until"])
def test_a_timestamp_beyond_the_range_is_a_400_on_the_runs_list(
    writer: Api, run: FlowRun, name: str, value: str
) -> None:
    response = writer.get(f"/api/flow-runs/?{name}={quote(value)}")
    assert_400(response, name)


@pytest.mark.parametrize("value", OFFSETS)
def test_a_timestamp_beyond_the_range_is_a_400_on_a_runs_logs(writer: Api, run: FlowRun, value: str) -> None:
    response = writer.get(f"/api/flow-runs/{run.pk}/logs/?since={quote(value)}")
    assert_400(response, "since")


def test_a_timestamp_within_the_range_still_filters(writer: Api, run: FlowRun) -> None:
    response = writer.get(f"/api/flow-runs/?since={quote('2000-01-01T00:00:00+15:59')}")
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(run.pk)]


def test_a_timestamp_beyond_the_range_in_a_log_batch_is_a_400(
    make_api_key: Any, live_server: Any, run: FlowRun
) -> None:
    worker = Api(live_server.url, make_api_key("worker", run.work_pool))
    line = {"level": 20, "logger": "x", "message": "hi", "timestamp": "2026-01-01T00:00:00+16:00"}
    response = worker.post(f"/api/flow-runs/{run.pk}/logs/", json=[line])
    assert response.status_code == 400, response.text[:300]
    assert "UTC offset" in response.text
    line["timestamp"] = "2026-01-01T00:00:00+15:00"
    assert worker.post(f"/api/flow-runs/{run.pk}/logs/", json=[line]).json() == {"stored": 1}


# --- the dashboard ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+16:00", "0001-01-01 00:00:00+01:00"])
def test_the_dashboards_runs_list_shows_an_out_of_range_time_as_a_form_error(
    admin_client: Any, run: FlowRun, value: str
) -> None:
    response = admin_client.get("/runs/", {"since": value})
    assert response.status_code == 200
    assert "UTC offset" in response.content.decode() or "out of range" in response.content.decode()


def test_the_custom_run_form_refuses_json_nested_too_deep(admin_client: Any, make_deployment: Any) -> None:
    schema = {"type": "object", "properties": {"data": {"type": "object"}}}
    dep = make_deployment(parameters={}, parameter_schema=schema)
    response = admin_client.post(f"/deployments/{dep.pk}/run/", {"parameters.data": nested_object(1000)})
    assert response.status_code in (200, 400), response.status_code
    assert "deeper than" in response.content.decode()
    assert not FlowRun.objects.exists()


def test_a_log_line_with_a_nul_or_a_lone_surrogate_is_stored_escaped(run: FlowRun) -> None:
    from django.utils import timezone

    from runs.services import write_logs

    write_logs([{"flow_run_id": run.pk, "message": "a\x00b \ud800 c", "timestamp": timezone.now()}])
    assert run.logs.get().message == "a\\x00b \\ud800 c"
