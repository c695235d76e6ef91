"""Automations: when a run enters a state, run another deployment or POST a notice; exactly
once per transition, and a failing URL never holds up the state change."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings as django_settings

from automations.models import Automation, AutomationFiring, FiringStatus
from automations.services import backoff_seconds, create_automation
from orchestrator.core.states import StateType
from runs import hooks
from runs.models import FlowRun
from runs.services import set_state
from tests.conftest import Api

S = StateType


class Receiver:
    """A tiny local HTTP server standing in for a notification URL: answers each POST with
    the next status in `statuses` (the last one repeats) and records what it got, and when."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[float, dict[str, Any], dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append((time.monotonic(), body, dict(self.headers)))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(list(statuses) or [200]))
        return made[-1]

    yield make
    for r in made:
        r.close()


def finish(run: FlowRun, to: StateType = S.COMPLETED) -> FlowRun:
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    return set_state(run, to, message="boom" if to == S.FAILED else "")


@pytest.mark.django_db(transaction=True)
def test_a_completed_run_starts_the_target_deployment_once_with_values_from_it(
    make_deployment: Any, deployment: Any, make_run: Any
) -> None:
    report = make_deployment("report", flow="reporting")
    create_automation(
        name="then-report",
        deployment=deployment,
        state_type=S.COMPLETED,
        action="run_deployment",
        target_deployment=report,
        parameters={"who": "$.flow_run.parameters.name", "upstream": "$.flow_run.id", "kind": "daily"},
    )
    run = finish(make_run(parameters={"name": "Ada"}))

    follow_up = FlowRun.objects.get(deployment=report)
    assert follow_up.parameters == {"who": "Ada", "upstream": str(run.pk), "kind": "daily"}
    assert follow_up.created_by == "automation:then-report"
    firing = AutomationFiring.objects.get()
    assert (firing.status, firing.created_run_id, firing.state.type) == (FiringStatus.DONE, follow_up.pk, S.COMPLETED)

    # The same transition reported again (a second hook call) fires nothing more.
    state = run.states.get(type=S.COMPLETED)
    hooks.fire(run, hooks.StateChange(run.pk, S.RUNNING, S.COMPLETED, "Completed", "", state_id=state.pk))
    assert FlowRun.objects.filter(deployment=report).count() == 1
    assert AutomationFiring.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_tag_automation_watches_runs_of_any_deployment_carrying_the_tag(
    make_deployment: Any, make_run: Any, receiver: Any, settings: Any
) -> None:
    from orchestrator.celery import app

    app.conf.task_always_eager = True
    try:
        notices = receiver(200)
        create_automation(name="page-me", tag="nightly", state_type=S.FAILED, action="notify", url=notices.url)
        finish(make_run(make_deployment("a", tags=["nightly"])), S.FAILED)
        finish(make_run(make_deployment("b", tags=["adhoc"])), S.FAILED)
    finally:
        app.conf.task_always_eager = False
    assert len(notices.received) == 1
    _, body, headers = notices.received[0]
    assert body["automation"] == "page-me"
    assert (body["state"]["type"], body["state"]["message"], body["flow_run"]["tags"]) == (
        "FAILED",
        "boom",
        ["nightly"],
    )
    assert headers["Idempotency-Key"].startswith("automation-firing-")
    assert AutomationFiring.objects.get().status == FiringStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_a_dead_notification_url_never_blocks_or_undoes_the_state_change(deployment: Any, make_run: Any) -> None:
    create_automation(
        name="dead-url",
        deployment=deployment,
        state_type=S.COMPLETED,
        action="notify",
        url="http://127.0.0.1:9/nothing",
    )
    started = time.monotonic()
    run = finish(make_run())
    assert time.monotonic() - started < 2
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED
    firing = AutomationFiring.objects.get()
    assert (firing.status, firing.attempts) == (FiringStatus.PENDING, 0)  # queued for a Celery worker


def test_retries_wait_longer_each_time_up_to_a_cap(settings: Any) -> None:
    settings.NOTIFICATION_BACKOFF_SECONDS, settings.NOTIFICATION_BACKOFF_MAX_SECONDS = 10, 60
    assert [backoff_seconds(n) for n in range(5)] == [10, 20, 40, 60, 60]


def _redis_url() -> str:
    return "redis://127.0.0.1:6379/13"


@pytest.fixture
def celery_on_redis() -> Iterator[str]:
    """Point this process's Celery app at Redis db 13 (what the worker subprocess uses)."""
    redis = pytest.importorskip("redis")
    url = _redis_url()
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    from kombu import pools as kombu_pools

    from orchestrator.celery import app

    def drop_pooled_connections() -> None:
        # Not app.close(): that also deregisters the app, and shared tasks imported later would
        # then never register with it (NotRegistered in every test after this one). And not
        # only app._pool: it is kombu's global pool for the broker, which would stay registered
        # closed ("Acquire on closed pool" in every later test that sends a task); reset() closes
        # and forgets them all.
        kombu_pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    keys = ("broker_url", "broker_read_url", "broker_write_url", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    drop_pooled_connections()
    app.conf.update(broker_url=url, broker_read_url=url, broker_write_url=url, broker_transport_options={})
    yield url
    drop_pooled_connections()
    app.conf.update(saved)


@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_retries_a_failing_url_with_backoff_until_it_answers(
    deployment: Any, make_run: Any, receiver: Any, celery_on_redis: str, subprocess_env: dict[str, str]
) -> None:
    notices = receiver(500, 503, 200)
    create_automation(name="flaky", deployment=deployment, state_type=S.COMPLETED, action="notify", url=notices.url)
    env = {**subprocess_env, "CELERY_BROKER_URL": celery_on_redis, "NOTIFICATION_BACKOFF_SECONDS": "0.5"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestrator",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=str(django_settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run = finish(make_run())
        assert run.state_type == S.COMPLETED
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if AutomationFiring.objects.filter(status=FiringStatus.DONE).exists():
                break
            assert worker.poll() is None, worker.communicate()[0]
            time.sleep(0.2)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    firing = AutomationFiring.objects.get()
    assert firing.status == FiringStatus.DONE, output
    assert firing.attempts == 3 and len(notices.received) == 3
    times = [t for t, _, _ in notices.received]
    assert times[1] - times[0] >= 0.5 and times[2] - times[1] >= 1.0  # 0.5 s, then 1 s
    assert {body["flow_run"]["id"] for _, body, _ in notices.received} == {str(run.pk)}


def test_automations_are_managed_through_the_api_with_their_rules(writer: Api, deployment: Any) -> None:
    missing = writer.post("/api/automations/", json={"name": "x", "state_type": "COMPLETED", "action": "notify"})
    assert missing.status_code == 400
    assert missing.json()["errors"]["non_field_errors"] == [
        "Say which runs to watch: a deployment, a tag, or both.",
        "run_deployment needs target_deployment (and no url); notify needs url (and no target_deployment).",
    ]
    created = writer.post(
        "/api/automations/",
        json={
            "name": "then-again",
            "deployment": str(deployment.pk),
            "state_type": "FAILED",
            "action": "run_deployment",
            "target_deployment": str(deployment.pk),
        },
    )
    assert created.status_code == 201, created.text
    url = f"/api/automations/{created.json()['id']}/"
    assert writer.patch(url, json={"enabled": False}).json()["enabled"] is False
    assert writer.patch(url, json={"parameters": {"a": "$."}}).status_code == 400
    assert writer.get(url + "firings/").json() == []
    assert writer.delete(url).status_code == 204
    assert not Automation.objects.exists()
