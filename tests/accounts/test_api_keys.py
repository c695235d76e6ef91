"""API keys: created by a command (shown once, stored hashed), listed and revoked by name, and
what each scope may do over HTTP."""

from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey
from tests.conftest import Api
from workpools.models import WorkPool


def apikey(*args: str) -> str:
    out = StringIO()
    call_command("apikey", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_key_is_printed_once_and_only_its_hash_is_stored() -> None:
    output = apikey("create", "ci-bot", "--scope", "trigger")
    token = output.splitlines()[1]
    assert token.startswith("orch_") and len(token) > 40
    key = ApiKey.objects.get(name="ci-bot")
    assert key.scope == "trigger"
    assert key.hashed_key == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ApiKey.objects.values_list())
    listing = apikey("ls")
    assert "ci-bot" in listing and key.prefix in listing and token not in listing


@pytest.mark.django_db
def test_a_worker_key_needs_a_pool_and_other_keys_take_none(pool: WorkPool) -> None:
    with pytest.raises(CommandError, match="bound to one pool"):
        apikey("create", "w", "--scope", "worker")
    with pytest.raises(CommandError, match="No work pool named 'nope'"):
        apikey("create", "w", "--scope", "worker", "--pool", "nope")
    with pytest.raises(CommandError, match="Only worker keys"):
        apikey("create", "r", "--scope", "read", "--pool", pool.name)
    assert "on pool 'my-process-pool'" in apikey("create", "w", "--scope", "worker", "--pool", pool.name)
    with pytest.raises(CommandError, match="already exists"):
        apikey("create", "w", "--scope", "read")


def test_a_request_without_a_key_is_401_and_says_how_to_authenticate(anonymous: Api) -> None:
    response = anonymous.get("/api/work-pools/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "credentials were not provided" in response.json()["detail"]


def test_a_wrong_or_malformed_key_is_401(live_server: Any, make_api_key: Any) -> None:
    make_api_key("read")
    assert Api(live_server.url, "orch_not-a-real-key-at-all").get("/api/flows/").status_code == 401
    response = Api(live_server.url).get("/api/flows/", headers={"Authorization": "Bearer two words"})
    assert response.status_code == 401
    assert "Bearer <key>" in response.json()["detail"]


def test_a_revoked_key_stops_working_at_once(live_server: Any, make_api_key: Any) -> None:
    api = Api(live_server.url, make_api_key("read", name="old-laptop"))
    assert api.get("/api/flows/").status_code == 200
    assert "Revoked API key 'old-laptop'" in apikey("revoke", "old-laptop")
    assert api.get("/api/flows/").status_code == 401
    assert "revoked" in apikey("ls")
    with pytest.raises(CommandError, match="No API key named 'nope'"):
        apikey("revoke", "nope")


def test_a_read_key_reads_but_cannot_write(api_as: Any) -> None:
    reader = api_as("read")
    assert reader.get("/api/work-pools/").status_code == 200
    response = reader.post("/api/work-pools/", json={"name": "new-pool"})
    assert response.status_code == 403
    assert response.json()["detail"] == "This API key has scope 'read'; this needs 'write'."
    assert not WorkPool.objects.filter(name="new-pool").exists()


def test_an_operator_may_trigger_and_cancel_but_not_change_pools(operator: Api, deployment: Any) -> None:
    created = operator.post(f"/api/deployments/{deployment.pk}/runs/", json={})
    assert created.status_code == 201
    assert operator.post(f"/api/flow-runs/{created.json()['id']}/cancel/").status_code == 200
    assert operator.post("/api/work-pools/my-process-pool/pause/").status_code == 403


def test_a_worker_key_reads_its_own_pool_and_queues_only(pool_worker: Api, make_pool: Any, run: Any) -> None:
    make_pool("someone-elses-pool")
    assert pool_worker.get("/api/work-pools/my-process-pool/").status_code == 200
    assert pool_worker.get("/api/work-pools/my-process-pool/queues/").json()["results"][0]["name"] == "default"
    assert pool_worker.get("/api/work-pools/my-process-pool/workers/").status_code == 200

    other = pool_worker.get("/api/work-pools/someone-elses-pool/")
    assert other.status_code == 403
    assert other.json()["detail"] == "This worker key acts only on work pool 'my-process-pool'."
    assert pool_worker.get("/api/work-pools/someone-elses-pool/queues/").status_code == 403
    # Nothing outside its pool, and no writes through the operators' endpoints.
    assert pool_worker.get("/api/work-pools/").status_code == 403
    assert pool_worker.get("/api/flow-runs/").status_code == 403
    assert pool_worker.post("/api/work-pools/my-process-pool/pause/").status_code == 403


def test_can_act_on_pool_limits_only_worker_keys(pool: WorkPool, make_pool: Any) -> None:
    from accounts.permissions import can_act_on_pool
    from accounts.services import create_api_key

    other = make_pool("other")
    worker_key, _ = create_api_key("w", scope="worker", pool=pool)
    write_key, _ = create_api_key("x", scope="write")
    assert can_act_on_pool(worker_key, pool) and can_act_on_pool(worker_key, "my-process-pool")
    assert not can_act_on_pool(worker_key, other) and not can_act_on_pool(worker_key, None)
    assert can_act_on_pool(write_key, other) and can_act_on_pool(None, other)


def test_a_logged_in_user_can_use_the_browsable_api(live_server: Any, admin_user: Any) -> None:
    import requests

    session = requests.Session()
    login_url = live_server.url + "/admin/login/"
    session.get(login_url)
    session.post(
        login_url,
        data={
            "username": "alice",
            "password": "correct-horse-battery",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login_url},
    )
    page = session.get(live_server.url + "/api/work-pools/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Work Pool List" in page.text


def test_too_many_requests_with_one_key_are_429(writer: Api, operator: Api, settings: Any) -> None:
    cache.clear()
    settings.API_THROTTLE_RATE = "3/min"
    assert [writer.get("/api/flows/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert "throttled" in writer.get("/api/flows/").json()["detail"]
    assert operator.get("/api/flows/").status_code == 200  # another key, another budget
    cache.clear()


def test_a_body_over_the_limit_is_413(writer: Api, settings: Any) -> None:
    settings.API_MAX_BODY_BYTES = 1000
    response = writer.post("/api/work-pools/", json={"name": "big", "description": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["detail"] == "The request body is 2034 bytes; the limit is 1000 bytes."
    assert not WorkPool.objects.filter(name="big").exists()
