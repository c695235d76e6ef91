"""/metrics: scraped over HTTP like Prometheus does, parsed with prometheus_client's parser, and
each figure checked against the database."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployments.models import DeploymentSchedule, SchedulerPass
from deployments.services import schedule_deployments
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.services import claim_runs, create_work_queue, record_worker_heartbeat, register_worker

S = StateType


def scrape(url: str, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(url + "/metrics", headers=headers, timeout=30)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.mark.django_db(transaction=True)
def test_metrics_match_the_database(
    live_server: Any, make_api_key: Any, pool: Any, make_deployment: Any, make_run: Any
) -> None:
    now = timezone.now()
    urgent = create_work_queue(pool, "urgent", priority=1)
    etl = make_deployment("etl")
    report = make_deployment("report", work_queue=urgent)
    DeploymentSchedule.objects.create(deployment=etl, slug="hourly", kind="interval", interval_seconds=3600)
    schedule_deployments()  # a full pass, recorded for the scheduler gauges

    worker = register_worker(pool.name, name="w1")[0]
    record_worker_heartbeat(worker)
    done = [make_run(etl, scheduled_at=now - timedelta(seconds=90 + i)) for i in range(3)]
    claim_runs(worker)
    for i, run in enumerate(done):
        run.refresh_from_db()
        set_state(run, S.RUNNING)
        # Durations of 10, 70 and 700 s: one in each of three buckets.
        FlowRun.objects.filter(pk=run.pk).update(started_at=now - timedelta(seconds=[10, 70, 700][i] + 5))
        run.refresh_from_db()
        set_state(run, S.COMPLETED if i < 2 else S.FAILED)
        FlowRun.objects.filter(pk=run.pk).update(ended_at=run.started_at + timedelta(seconds=[10, 70, 700][i]))
    waiting_urgent = [make_run(report, scheduled_at=now - timedelta(seconds=s)) for s in (120, 30)]
    make_run(report, scheduled_at=now + timedelta(hours=2))  # not due yet

    key = make_api_key("metrics")
    writer_key = make_api_key("write")
    requests.get(live_server.url + "/api/work-pools/", headers={"Authorization": f"Bearer {writer_key}"}, timeout=30)

    response = scrape(live_server.url, key)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(response.text)

    # Runs by state and deployment, from the database.
    for state in (S.SCHEDULED,):
        for dep in (etl, report):
            expected = FlowRun.objects.filter(deployment=dep, state_type=state).count()
            assert value(found, "orchestrator_flow_runs_unfinished", state=state, deployment=dep.full_name) == expected
    assert value(found, "orchestrator_flow_runs_finished_recent", state="COMPLETED", deployment=etl.full_name) == 2
    assert value(found, "orchestrator_flow_runs_finished_recent", state="FAILED", deployment=etl.full_name) == 1

    # Queue depth and the oldest due run.
    assert value(found, "orchestrator_work_queue_depth", pool=pool.name, queue="urgent") == 2
    oldest = value(found, "orchestrator_work_queue_oldest_due_seconds", pool=pool.name, queue="urgent")
    expected_wait = (timezone.now() - waiting_urgent[0].next_scheduled_start_at).total_seconds()
    assert expected_wait - 30 <= oldest <= expected_wait
    due_default = FlowRun.objects.filter(
        work_queue__name="default", state_type=S.SCHEDULED, next_scheduled_start_at__lte=timezone.now()
    ).count()
    assert value(found, "orchestrator_work_queue_depth", pool=pool.name, queue="default") == due_default

    # Histograms: durations 10, 70, 700 s.
    assert value(found, "orchestrator_flow_run_duration_seconds_count") == 3
    assert value(found, "orchestrator_flow_run_duration_seconds_sum") == pytest.approx(780)
    assert value(found, "orchestrator_flow_run_duration_seconds_bucket", le="10.0") == 1
    assert value(found, "orchestrator_flow_run_duration_seconds_bucket", le="300.0") == 2
    assert value(found, "orchestrator_flow_run_duration_seconds_bucket", le="+Inf") == 3
    assert value(found, "orchestrator_flow_run_pickup_latency_seconds_count") == 3

    assert value(found, "orchestrator_workers_online", pool=pool.name) == 1
    pass_row = SchedulerPass.objects.get()
    assert value(found, "orchestrator_scheduler_pass_duration_seconds") == pytest.approx(pass_row.duration_seconds)
    assert value(found, "orchestrator_scheduler_pass_runs_created") == pass_row.runs_created > 0

    assert value(found, "orchestrator_api_requests_total", method="GET", route="work-pools-list", status="200") >= 1
    assert value(found, "orchestrator_api_request_duration_seconds_count", method="GET", route="work-pools-list") >= 1


@pytest.mark.django_db(transaction=True)
def test_metrics_need_a_metrics_key_or_an_allowed_address(live_server: Any, make_api_key: Any, settings: Any) -> None:
    anonymous = scrape(live_server.url)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert scrape(live_server.url, "orch_not-a-key").status_code == 401
    refused = scrape(live_server.url, make_api_key("write"))
    assert refused.status_code == 403 and "needs a 'metrics' key" in refused.text
    assert "orchestrator_" not in refused.text
    metrics_key = make_api_key("metrics")
    api = requests.get(
        live_server.url + "/api/flow-runs/", headers={"Authorization": f"Bearer {metrics_key}"}, timeout=30
    )
    assert api.status_code == 403, "a metrics key reads nothing else"
    assert scrape(live_server.url, metrics_key).status_code == 200
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert scrape(live_server.url).status_code == 401
    settings.METRICS_ALLOWED_IPS = ["127.0.0.0/8", "::1"]
    assert scrape(live_server.url).status_code == 200


def test_json_logs_are_one_object_per_line(capsys: Any) -> None:
    from orchestrator.logformat import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    try:
        logger.warning("Claimed %d runs", 3, extra={"pool": "my-pool"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("It broke")
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.strip().splitlines()
    first = json.loads(lines[0])
    assert (first["level"], first["logger"], first["message"], first["pool"]) == (
        "WARNING",
        "tests.json",
        "Claimed 3 runs",
        "my-pool",
    )
    second = json.loads("\n".join(lines[1:]))
    assert second["message"] == "It broke" and "ValueError: boom" in second["exception"]


def test_a_junk_log_format_or_address_stops_the_server_with_a_clear_error(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOG_FORMAT": "xml", "ORCHESTRATOR_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "LOG_FORMAT must be plain or json, not 'xml'." in out.stderr
    env.update(LOG_FORMAT="json", METRICS_ALLOWED_IPS="10.0.0.0/33")
    out = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "METRICS_ALLOWED_IPS: '10.0.0.0/33' is not an address or network." in out.stderr
