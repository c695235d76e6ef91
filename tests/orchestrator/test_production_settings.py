"""Production settings from the environment: HTTPS, HSTS, secure cookies, the proxy's header;
`manage.py check --deploy` is clean with them; a broker outage during `deploy` is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faults.pg_cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto:https",
    "ALLOWED_HOSTS": "orchestrator.example.com",
    "DEBUG": "false",
}

pytestmark = pytest.mark.subprocess


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SECURE_", "SESSION_", "CSRF_"))}
    base.update(ORCHESTRATOR_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_check_deploy_is_clean_with_the_production_environment(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_warns_without_it(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr + done.stdout


def test_a_malformed_proxy_header_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", SECURE_PROXY_SSL_HEADER="https")
    assert done.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER='https' must be Header-Name:value" in done.stderr


def test_https_is_enforced_behind_the_proxy_and_healthz_stays_reachable(client: Any, settings: Any, db: None) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = client.get("/runs/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200 and secure["Strict-Transport-Security"] == "max-age=3600"
    assert client.get("/healthz").status_code in (200, 503)  # answered, not redirected


@pytest.mark.django_db(transaction=True)
def test_deploying_while_the_broker_is_down_is_one_line_and_exit_0(
    tmp_path: Path, subprocess_env: dict[str, str], pool: Any
) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text((ROOT / "examples" / "hello.py").read_text())
    env = {**subprocess_env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "deploy",
            "flows/hello.py:leonardo_dicapriflow",
            "-n",
            "hourly",
            "-p",
            pool.name,
            "--interval",
            "3600",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "broker is unreachable" in warnings[0], done.stderr
    assert "Created deployment" in done.stdout
