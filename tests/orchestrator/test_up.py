"""`manage.py up` (what `make up` runs), for real: a fresh data directory, the printed
credentials log in to the admin, and Ctrl-C stops every process it started."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(proc: subprocess.Popen, pattern: str, deadline: float, seen: list[str]) -> re.Match:
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"never saw {pattern!r}; output was:\n{''.join(seen)}")


def wait_for_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_up_serves_the_admin_and_the_printed_credentials_log_in(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "ORCHESTRATOR_ADMIN_PASSWORD"}
    }
    env["ORCHESTRATOR_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        match = read_until(proc, r"Log in as '(\w+)' with password '([^']+)'", deadline, seen)
        username, password = match.groups()
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", deadline)

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_page = opener.open(f"{base}/admin/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
        ).encode()
        request = urllib.request.Request(
            f"{base}/admin/login/?next=/admin/", data=body, headers={"Referer": f"{base}/admin/login/"}
        )
        admin_index = opener.open(request).read().decode()
        assert "Pools, deployments and runs" in admin_index
        assert "Work pools" in admin_index and "Flow runs" in admin_index
        # The admin's stylesheet is served (whitenoise), so the page looks right.
        assert opener.open(f"{base}/static/admin/css/base.css").status == 200

        # The example deployment is there, and the worker `up` started runs it: quick-run it
        # (rather than wait up to a minute for its schedule) and watch the admin list.
        read_until(proc, r"Deployed the example 'leonardo_dicapriflow/every-minute'.*every minute", deadline, seen)
        # Also a run in a pool no worker polls, due two minutes ago: Celery beat's late-runs
        # service must mark it Late (the console no longer shows Celery starting).
        quick_run = (
            "import django; django.setup(); from datetime import timedelta; from django.utils import timezone; "
            "from deployments.models import Deployment; from deployments.services import get_deployment; "
            "from deployments.services import create_flow_run; from workpools.services import create_work_pool; "
            "example = get_deployment('leonardo_dicapriflow/every-minute'); "
            "create_flow_run(example, created_by='test'); "
            "idle = Deployment.objects.create(flow=example.flow, name='unattended', entrypoint=example.entrypoint, "
            "path=example.path, work_pool=create_work_pool('nobody-polls')); "
            "create_flow_run(idle, scheduled_at=timezone.now() - timedelta(minutes=2), created_by='test')"
        )
        subprocess.run(
            [sys.executable, "-c", quick_run],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "orchestrator.settings"},
            check=True,
            timeout=60,
        )
        completed = f"{base}/admin/runs/flowrun/?state_type__exact=COMPLETED"
        while "leonardo_dicapriflow/every-minute" not in opener.open(completed).read().decode():
            assert time.monotonic() < deadline, "the example run never completed:\n" + "".join(seen)
            time.sleep(0.5)
        # Celery runs beside the web app, with beat for the periodic services.
        late = f"{base}/api/flow-runs/?pool=nobody-polls"
        while json.loads(opener.open(late).read())["results"][0]["state_name"] != "Late":
            assert time.monotonic() < deadline, "beat never marked the unattended run Late:\n" + "".join(seen)
            time.sleep(0.5)
        # Quiet by default: the worker's line per run started and finished, no INFO chatter.
        read_until(proc, r"worker \| .*final state Completed", deadline, seen)
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=15)  # a clean stop takes a few seconds
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    assert "Stopped." in rest
    assert re.search(r"worker \| .*submitting flow run", output)
    for noise in ("INFO", "ERROR", "Hello Leo!", "GET /", "Task runs.tasks", "-------------- [queues]"):
        assert noise not in output, f"{noise!r} in the quiet console:\n{output}"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
