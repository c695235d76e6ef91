"""The web app while a dependency is down: 503 with Retry-After (JSON on the API, a page on the
dashboard), never a 500; /healthz says which dependency is down; it recovers by itself.

A real gunicorn serves a private PostgreSQL cluster (tests/faults/pg_cluster.py) that the test
stops and starts again; the broker outage is a broker URL on a port nobody listens on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_for
from tests.faults.pg_cluster import PrivateCluster, free_port
from tests.faults.test_database_restart import Process, manage

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def serve(env: dict[str, str]) -> tuple[Process, str]:
    port = free_port()
    server = Process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "orchestrator.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--threads",
            "4",
            "--timeout",
            "60",
        ],
        env,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            requests.get(f"{base}/accounts/login/", timeout=10)
        except requests.RequestException:
            return False
        return True

    try:
        wait_for(answers, 60, "gunicorn to answer", processes=[server])
    except BaseException:
        server.stop()
        raise
    return server, base


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        ORCHESTRATOR_HOME=str(tmp_path / "home"),
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        CELERY_BROKER_URL="filesystem://",
    )
    env.update(extra)
    return env


@pytest.mark.postgres
def test_while_postgresql_is_down_the_api_and_dashboard_answer_503_and_recover(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    env = environment(tmp_path, DATABASE_URL=cluster.url)
    manage(env, "migrate", "--noinput", "-v", "0")
    key = manage(env, "apikey", "create", "reader", "--scope", "read").splitlines()[1].strip()
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_user('ada', password='pw-for-ada-42')",
    )
    server, base = serve(env)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    browser = requests.Session()
    try:
        assert api.get(f"{base}/api/flow-runs/", timeout=10).status_code == 200
        login = browser.get(f"{base}/accounts/login/", timeout=10)
        token = browser.cookies["csrftoken"]
        signed_in = browser.post(
            f"{base}/accounts/login/",
            data={"username": "ada", "password": "pw-for-ada-42", "csrfmiddlewaretoken": token},
            headers={"Referer": login.url},
            timeout=10,
        )
        assert signed_in.status_code == 200 and "sessionid" in browser.cookies
        assert requests.get(f"{base}/healthz", timeout=10).json()["database"] == {"ok": True}

        cluster.stop()
        down = api.get(f"{base}/api/flow-runs/", timeout=30)
        assert down.status_code == 503, down.text[:500]
        assert down.headers["Retry-After"] == "5"
        assert "database is unavailable" in down.json()["detail"]
        page = browser.get(f"{base}/runs/", timeout=30)
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        assert "Back in a moment" in page.text and "Traceback" not in page.text
        health = requests.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 503 and health.headers["Retry-After"] == "5"
        body = health.json()
        assert body["status"] == "unavailable" and body["database"]["ok"] is False and body["broker"] == {"ok": True}
        hook = requests.post(f"{base}/hooks/some-slug/", json={}, timeout=30)
        assert hook.status_code == 503

        cluster.start()
        assert api.get(f"{base}/api/flow-runs/", timeout=30).status_code == 200
        assert browser.get(f"{base}/runs/", timeout=30).status_code == 200
        assert requests.get(f"{base}/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]


def test_healthz_reports_a_broker_that_is_down_apart_from_the_database(tmp_path: Path) -> None:
    env = environment(tmp_path, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    env.pop("DATABASE_URL", None)
    manage(env, "migrate", "--noinput", "-v", "0")
    server, base = serve(env)
    try:
        health: Any = requests.get(f"{base}/healthz", timeout=30)
    finally:
        server.stop()
    assert health.status_code == 503
    body = health.json()
    assert body["database"] == {"ok": True}
    assert body["broker"]["ok"] is False and body["broker"]["error"]
