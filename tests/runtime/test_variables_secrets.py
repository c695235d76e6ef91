"""Variables and secrets: API, CLI, admin; encrypted at rest; read in flows; masked in logs;
a secret's value only for a run's credential or a `secrets` key."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from blocks.models import Secret, Variable
from blocks.services import read_secret_value, set_secret, set_variable
from orchestrator import Secret as SdkSecret
from orchestrator import Variable as SdkVariable
from orchestrator import flow, get_run_logger
from runs.models import FlowRun
from tests.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_variables_through_the_api_read_and_write_keys_and_field_errors(api_as: Any) -> None:
    writer, reader = api_as("write"), api_as("read")
    created = writer.post("/api/variables/", json={"name": "region", "value": {"name": "eu", "zones": [1, 2]}})
    assert created.status_code == 201, created.text
    assert writer.post("/api/variables/", json={"name": "region", "value": "us"}).status_code == 200
    assert reader.get("/api/variables/region/").json()["value"] == "us"
    assert [v["name"] for v in reader.get("/api/variables/").json()["results"]] == ["region"]
    refused = reader.post("/api/variables/", json={"name": "x", "value": 1})
    assert refused.status_code == 403
    bad = writer.post("/api/variables/", json={"name": "no spaces/here", "value": 1})
    assert bad.status_code == 400 and "name" in bad.json()["errors"]
    missing = writer.post("/api/variables/", json={"name": "ok"})
    assert missing.status_code == 400 and "value" in missing.json()["errors"]
    huge = writer.request("PUT", "/api/variables/big/", json={"value": "x" * 70000})
    assert huge.status_code == 400 and "value" in huge.json()["errors"]
    assert writer.post("/api/variables/", json={"name": "nothing", "value": None}).status_code == 201
    assert reader.get("/api/variables/nothing/").json()["value"] is None
    assert writer.delete("/api/variables/region/").status_code == 204
    assert reader.get("/api/variables/region/").status_code == 404


def test_the_variable_command_sets_gets_lists_and_deletes() -> None:
    assert "Created variable 'limits'" in manage("variable", "set", "limits", '{"max": 3}')
    assert "Updated variable 'limits'" in manage("variable", "set", "limits", "[1, 2]")
    manage("variable", "set", "greeting", "hello world")
    assert manage("variable", "get", "limits").strip() == "[1, 2]"
    assert manage("variable", "get", "greeting").strip() == '"hello world"'
    listing = manage("variable", "ls")
    assert "limits" in listing and "greeting" in listing
    assert "Deleted variable 'limits'" in manage("variable", "delete", "limits")
    with pytest.raises(CommandError, match="No variable named 'limits'"):
        manage("variable", "get", "limits")
    with pytest.raises(CommandError, match="not a valid variable name"):
        manage("variable", "set", "bad name", "1")


def test_a_secret_is_stored_encrypted_and_its_value_is_never_listed(api_as: Any, admin_client: Any) -> None:
    writer = api_as("write")
    assert writer.post("/api/secrets/", json={"name": "api-token", "value": "s3cr3t-value"}).status_code == 201
    stored = Secret.objects.get(name="api-token")
    assert "s3cr3t-value" not in stored.encrypted_value and stored.encrypted_value.startswith("gAAAA")
    assert read_secret_value("api-token") == "s3cr3t-value"
    assert "s3cr3t-value" not in writer.get("/api/secrets/").text
    assert "s3cr3t-value" not in writer.get("/api/secrets/api-token/").text
    page = admin_client.get(f"/admin/blocks/secret/{stored.pk}/change/").content.decode()
    assert "s3cr3t-value" not in page and 'type="password"' in page
    # The admin changes the value through its password field.
    admin_client.post(f"/admin/blocks/secret/{stored.pk}/change/", {"name": "api-token", "value": "rotated"})
    assert read_secret_value("api-token") == "rotated"
    added = admin_client.post("/admin/blocks/secret/add/", {"name": "empty", "value": ""})
    assert added.status_code == 200 and "This field is required" in added.content.decode()


def test_only_a_secrets_key_a_worker_key_or_a_superuser_reads_a_secret_value(
    api_as: Any, pool: Any, anonymous: Api
) -> None:
    set_secret("db-password", "hunter22")
    for scope in ("read", "trigger", "write"):
        answer = api_as(scope).get("/api/secrets/db-password/value/")
        assert answer.status_code == 403, scope
        assert "needs the 'secrets' scope" in answer.json()["detail"]
    assert api_as("secrets").get("/api/secrets/db-password/value/").json()["value"] == "hunter22"
    assert api_as("worker", pool).get("/api/secrets/db-password/value/").json()["value"] == "hunter22"
    assert anonymous.get("/api/secrets/db-password/value/").status_code == 401
    assert api_as("secrets").get("/api/secrets/nope/value/").status_code == 404
    # A secrets key reads names too, but writes nothing.
    assert api_as("secrets").post("/api/secrets/", json={"name": "x", "value": "y"}).status_code == 403


def test_a_flow_reads_variables_and_secrets_and_the_secret_is_masked_in_its_logs(capsys: Any) -> None:
    set_variable("region", "eu-west-1")
    set_secret("api-token", "tok-123456")

    @flow
    def uses() -> str:
        token = SdkSecret.load("api-token").get()
        get_run_logger().info(f"region={SdkVariable.get('region')} other={SdkVariable.get('nope', default=7)}")
        get_run_logger().info(f"Authorization: Bearer {token}")
        return token

    assert uses() == "tok-123456"
    messages = list(FlowRun.objects.get().logs.values_list("message", flat=True))
    assert "region=eu-west-1 other=7" in messages
    assert "Authorization: Bearer ********" in messages
    assert not any("tok-123456" in m for m in messages)
    assert "tok-123456" not in capsys.readouterr().err


def test_a_malformed_secrets_key_is_a_clear_error(monkeypatch: Any, api_as: Any) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SECRETS_KEY", "not-a-key")
    answer = api_as("write").post("/api/secrets/", json={"name": "x", "value": "y"})
    assert answer.status_code == 400 and "not a Fernet key" in answer.json()["detail"]
    assert not Variable.objects.exists() and not Secret.objects.exists()
