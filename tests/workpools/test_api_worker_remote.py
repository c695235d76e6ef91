"""A remote worker: `runworker --api-url URL --api-key KEY` on a machine with no database.

The worker and the flow runs it starts get no DATABASE_URL and an ORCHESTRATOR_HOME of their own
that holds no database; they reach the orchestrator (pytest-django's live server) only over
HTTP with a worker key.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deployments.services import create_flow_run
from orchestrator.core.parameters import parameter_schema
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.conftest import Api
from tests.orchestrator.conftest import HEADER, HELLO_FLOW
from tests.workpools.test_runworker import ROOT, collect, deployment, events, stop, wait_for
from workpools.services.claiming import claims_waiting

S = StateType
pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


def _signature(name: str) -> None: ...


def remote_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a machine that has the project installed and nothing else: no
    database settings, a data directory of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "ORCHESTRATOR_", "DATABASE_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    return env


def databases_in(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.suffix in (".sqlite3", ".db") or "sqlite" in p.name]


def runworker(env: dict[str, str], *args: str, **kwargs: Any) -> Any:
    return subprocess.run(
        [sys.executable, "manage.py", "runworker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@pytest.fixture
def hello_deployment(make_deployment: Any, tmp_path: Path) -> Any:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text(HEADER + HELLO_FLOW)
    return make_deployment(
        path=str(tmp_path), parameters={"name": "Leo"}, parameter_schema=parameter_schema(_signature)
    )


@pytest.mark.parametrize("start", ["prewarmed", "cold"])
def test_a_worker_without_a_database_runs_a_run_triggered_with_custom_parameters(
    start: str, live_server: Any, operator: Api, make_api_key: Any, hello_deployment: Any, tmp_path: Path
) -> None:
    home = tmp_path / "remote-home"
    home.mkdir()
    key = make_api_key("worker", hello_deployment.work_pool, name="laptop-worker")
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runworker",
            "--pool",
            "my-process-pool",
            "--name",
            "remote-1",
            "--api-url",
            live_server.url,
            "--api-key",
            key,
            "--poll-interval",
            "0.2",
            *(["--cold-start"] if start == "cold" else []),
        ],
        cwd=ROOT,
        env=remote_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = collect(worker)
    try:
        wait_for(lambda: "polling for work" in "".join(output), 60, "the worker to start")
        wait_for(lambda: claims_waiting() == 1, 30, "the worker's claim to wait in its long poll")
        response = operator.post(
            f"/api/deployments/{hello_deployment.pk}/runs/", json={"parameters": {"name": "Marvin"}}
        )
        assert response.status_code == 201, response.text
        run = FlowRun.objects.get(pk=response.json()["id"])
        wait_for(lambda: FlowRun.objects.filter(pk=run.pk).exclude(state_type=S.SCHEDULED).exists(), 30, "the claim")
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 60, "the run to finish")
        wait_for(lambda: "final state Completed" in "".join(output), 30, "the worker to reap the run")
    finally:
        code = stop(worker)
    text = "".join(output)
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    assert run.parameters == {"name": "Marvin"}
    assert run.worker.name == "remote-1" and run.pid and run.hostname
    assert run.logs.filter(message="Hello Marvin!").exists()  # shipped over HTTP by the engine
    assert run.task_runs.get().state_type == S.COMPLETED
    assert "Hello Marvin!" in text and "Traceback" not in text, text
    assert code == 0 and text.rstrip().endswith("Done."), text
    assert run.worker.stopped_at is not None
    # The worker and the flow run touched no database on the remote side.
    assert databases_in(home) == []


def test_a_wrong_key_is_one_line_and_exit_1(live_server: Any, pool: Any, tmp_path: Path) -> None:
    env = remote_env(tmp_path, ORCHESTRATOR_API_URL=live_server.url, ORCHESTRATOR_API_KEY="not-a-key")
    result = runworker(env, "--pool", "my-process-pool")
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: The orchestrator refused the request: Invalid or revoked API key."
    assert databases_in(tmp_path) == []


def test_a_worker_key_of_another_pool_is_one_line_and_exit_1(
    live_server: Any, make_api_key: Any, make_pool: Any, pool: Any, tmp_path: Path
) -> None:
    other = make_api_key("worker", make_pool("someone-elses-pool"))
    result = runworker(
        remote_env(tmp_path), "--pool", "my-process-pool", "--api-url", live_server.url, "--api-key", other
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: The orchestrator refused the request: This worker key acts only on work pool 'someone-elses-pool'."
    )


def test_an_unreachable_orchestrator_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = runworker(remote_env(tmp_path), "--pool", "p", "--api-url", "http://127.0.0.1:9", "--api-key", "k")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "CommandError: Cannot reach the orchestrator at http://127.0.0.1:9: connection failed"
    )


class Link:
    """A TCP link between the remote machine and the orchestrator that can be cut: a relay on
    a port of its own to `target`, which `cut()` takes down (open connections included) and
    `restore()` brings back on the same port."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.port = 0
        self.connections: list[socket.socket] = []
        self.restore()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def restore(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        self.listener.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.connections += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (src, dst):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_a_remote_worker_and_its_run_ride_out_a_network_outage(
    live_server: Any, make_api_key: Any, pool: Any, tmp_path: Path
) -> None:
    link = Link(live_server.url)
    key = make_api_key("worker", pool)
    run, _ = create_flow_run(deployment(pool, "slow", "sleepy", {"marker_dir": str(tmp_path), "seconds": 3}))
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runworker",
            "--pool",
            pool.name,
            "--api-url",
            link.url,
            "--api-key",
            key,
            "--poll-interval",
            "0.2",
        ],
        cwd=ROOT,
        env=remote_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = collect(worker)
    try:
        wait_for(lambda: events(tmp_path), 60, "the flow to start")
        link.cut()  # while the flow runs, and past its end: its last calls must wait it out
        time.sleep(5)
        assert worker.poll() is None, "".join(output)
        link.restore()
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 90, "the run to finish")
        wait_for(lambda: "final state" in "".join(output), 30, "the worker to reap the run")
        created_after, _ = create_flow_run(run.deployment, parameters={"seconds": 0})
        wait_for(lambda: FlowRun.objects.get(pk=created_after.pk).is_terminal, 60, "a run after the outage")
    finally:
        code = stop(worker)
        link.cut()
    text = "".join(output)
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, f"{run.state_message}\n{text}"
    assert FlowRun.objects.get(pk=created_after.pk).state_type == S.COMPLETED
    assert "Cannot reach the orchestrator" in text and "retrying in" in text, text  # logged, one line each
    assert "Traceback" not in text, text
    assert code == 0, text
