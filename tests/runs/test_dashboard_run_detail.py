"""A run's page: parameters, state timeline, task runs, logs; live until the run ends."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun, Log, TaskRun
from runs.services import set_state
from workpools.models import Worker

pytestmark = pytest.mark.django_db
S = StateType
FRAGMENTS = [
    "runs:header_fragment",
    "runs:timeline_fragment",
    "runs:task_runs_fragment",
    "runs:logs_fragment",
    "runs:artifacts_fragment",
    "runs:input_fragment",
]


def polling_urls(html: str) -> list[str]:
    return re.findall(r'hx-get="([^"]+)" hx-trigger="every 2s"', html)


@pytest.fixture
def running(run: FlowRun, pool: Any) -> FlowRun:
    worker = Worker.objects.create(pool=pool, name="laptop-worker", last_heartbeat_at=timezone.now())
    set_state(run, S.PENDING, worker=worker)
    set_state(run, S.RUNNING)
    now = timezone.now()
    task = TaskRun.objects.create(
        flow_run=run,
        name="log_message-0",
        task_key="log_message",
        state_type=S.COMPLETED,
        state_name="Completed",
        state_at=now,
        started_at=now - timedelta(seconds=2),
        ended_at=now,
    )
    Log.objects.create(flow_run=run, task_run=task, level=20, logger="task", message="Hello Leo!", timestamp=now)
    Log.objects.create(flow_run=run, level=30, logger="flow", message="Careful now", timestamp=now)
    return run


def test_the_page_shows_parameters_timeline_task_runs_and_logs(admin_client: Any, running: FlowRun) -> None:
    html = admin_client.get(reverse("runs:detail", args=[running.pk])).content.decode()
    assert f"<h1>{running.name} " in html and 'data-state="RUNNING">Running</span>' in html
    assert "&quot;name&quot;: &quot;Leo&quot;" in html
    timeline = html[html.index('id="run-timeline"') :]
    assert [m for m in re.findall(r'data-state="(\w+)"', timeline)][:3] == ["SCHEDULED", "PENDING", "RUNNING"]
    assert "log_message-0" in html and "2.0 s" in html
    assert re.search(r'class="log level-info">.*?INFO.*?Hello Leo!', html, re.S)
    assert re.search(r'class="log level-warning">.*?WARNING.*?Careful now', html, re.S)


def test_it_links_to_its_deployment_and_worker(admin_client: Any, running: FlowRun) -> None:
    html = admin_client.get(reverse("runs:detail", args=[running.pk])).content.decode()
    assert f'href="{reverse("deployments:detail", args=[running.deployment_id])}"' in html
    assert f'href="{reverse("workpools:list")}#worker-{running.worker_id}">laptop-worker</a>' in html


def test_while_the_run_goes_on_each_part_polls_every_2_seconds(admin_client: Any, running: FlowRun) -> None:
    html = admin_client.get(reverse("runs:detail", args=[running.pk])).content.decode()
    assert sorted(polling_urls(html)) == sorted(reverse(name, args=[running.pk]) for name in FRAGMENTS)
    for name in FRAGMENTS:
        fragment = admin_client.get(reverse(name, args=[running.pk])).content.decode()
        assert "<html" not in fragment
        assert polling_urls(fragment) == [reverse(name, args=[running.pk])]


def test_the_fragments_show_what_changed_and_stop_polling_when_the_run_ends(
    admin_client: Any, running: FlowRun
) -> None:
    set_state(running, S.COMPLETED)
    Log.objects.create(flow_run=running, level=20, message="Finished in state Completed()", timestamp=timezone.now())

    header = admin_client.get(reverse("runs:header_fragment", args=[running.pk])).content.decode()
    assert 'data-state="COMPLETED">Completed</span>' in header and polling_urls(header) == []
    assert "Cancel run" not in header
    timeline = admin_client.get(reverse("runs:timeline_fragment", args=[running.pk])).content.decode()
    assert 'data-state="COMPLETED"' in timeline and polling_urls(timeline) == []
    tasks = admin_client.get(reverse("runs:task_runs_fragment", args=[running.pk])).content.decode()
    assert polling_urls(tasks) == []

    # Logs keep polling a few seconds more, for a last batch sent just after the end.
    logs = admin_client.get(reverse("runs:logs_fragment", args=[running.pk])).content.decode()
    assert "Finished in state Completed()" in logs and len(polling_urls(logs)) == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        logs = admin_client.get(reverse("runs:logs_fragment", args=[running.pk])).content.decode()
        assert polling_urls(logs) == []
        assert polling_urls(admin_client.get(reverse("runs:detail", args=[running.pk])).content.decode()) == []


def test_cancelling_a_scheduled_run_cancels_it_at_once(admin_client: Any, run: FlowRun) -> None:
    response = admin_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.state_type == S.CANCELLED and run.state_message == "Cancelled by ui:alice"
    assert f"{run.name} cancelled." in response.content.decode()


def test_cancelling_a_running_run_asks_its_worker_to_stop_it(admin_client: Any, running: FlowRun) -> None:
    html = admin_client.get(reverse("runs:detail", args=[running.pk])).content.decode()
    assert f'action="{reverse("runs:cancel", args=[running.pk])}"' in html
    response = admin_client.post(reverse("runs:cancel", args=[running.pk]), follow=True)
    running.refresh_from_db()
    assert running.state_type == S.CANCELLING
    assert "Cancellation of" in response.content.decode()


def test_cancelling_a_finished_run_explains_why_not(admin_client: Any, running: FlowRun) -> None:
    set_state(running, S.COMPLETED)
    response = admin_client.post(reverse("runs:cancel", args=[running.pk]), follow=True)
    assert response.status_code == 200
    assert "the run already ended as Completed" in response.content.decode()


def test_an_unknown_run_is_a_404(admin_client: Any) -> None:
    assert admin_client.get("/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert admin_client.get("/runs/00000000-0000-0000-0000-000000000000/_logs").status_code == 404


def test_the_page_costs_the_same_queries_for_many_logs_and_tasks(
    admin_client: Any, running: FlowRun, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    for i in range(20):
        task = TaskRun.objects.create(flow_run=running, name=f"t-{i}", task_key="t", state_at=now)
        Log.objects.create(flow_run=running, task_run=task, message=f"line {i}", timestamp=now)
    # + subflow runs, their placeholder task runs, artifacts, a pause's input: one query each, whatever their number
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("runs:detail", args=[running.pk])).status_code == 200
