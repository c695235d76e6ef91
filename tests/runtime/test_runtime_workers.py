"""Subflows and results through real workers: `runworker` on this host (direct transport) and a
remote one with no database (HTTP transport, a worker key)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun, TaskRun
from tests.conftest import Api
from tests.deployments.deploy_helpers import logged, start_worker, stop, wait_until_finished
from tests.workpools.test_api_worker_remote import ROOT, remote_env
from tests.workpools.test_runworker import collect, wait_for

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


def start_remote_worker(url: str, key: str, pool: str, env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    """`runworker --api-url URL --api-key KEY` with no database settings, and its collected output."""
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool, "--name", "remote-1", "--api-url", url]
        + ["--api-key", key, "--poll-interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return worker, collect(worker)


def check_parent_and_children(parent: FlowRun, output: str) -> None:
    assert parent.state_type == S.COMPLETED, (parent.state_message, output)
    children = {(c.flow.name, c.parameters.get("reason", "")): c for c in parent.child_runs.all()}
    assert {name for name, _ in children} == {"child_ok", "child_bad"} and len(children) == 3
    assert children[("child_ok", "")].state_type == S.COMPLETED
    assert children[("child_bad", "expected failure")].state_type == S.FAILED
    assert children[("child_bad", "raised and caught")].state_message == "RuntimeError: raised and caught"
    placeholders = TaskRun.objects.filter(flow_run=parent)
    assert sorted(placeholders.values_list("state_type", flat=True)) == [S.COMPLETED, S.FAILED, S.FAILED]
    assert logged(parent, "children: ok=10 bad=FAILED caught=raised and caught")


@pytest.mark.parametrize("storage", ["default", "file"])
def test_a_parent_with_two_subflows_on_a_worker_and_its_result_read_back_by_a_later_run(
    storage: str, subprocess_env: dict[str, str], tmp_path: Path, pool: Any, deploy_runtime: Any
) -> None:
    if storage == "file":
        subprocess_env["RESULT_STORAGE"] = (tmp_path / "shared-results").as_uri()
    parent_run, _ = create_flow_run(deploy_runtime(pool, "parent"))
    worker, output = start_worker(subprocess_env, pool.name, cwd=tmp_path)
    try:
        wait_until_finished(parent_run)
        check_parent_and_children(parent_run, "".join(output))
        if storage == "file":
            assert parent_run.result_uri.startswith((tmp_path / "shared-results").as_uri())
            assert Path(parent_run.result_uri.removeprefix("file://")).is_file()
        reader_run, _ = create_flow_run(deploy_runtime(pool, "reader"), parameters={"run_id": str(parent_run.pk)})
        wait_until_finished(reader_run)
    finally:
        stop(worker)
    assert reader_run.state_type == S.COMPLETED, (reader_run.state_message, "".join(output))
    assert logged(reader_run, "read back: {'ok': 10, 'bad': 'FAILED', 'caught': 'raised and caught'}")


def test_subflows_and_results_over_http_on_a_worker_without_a_database(
    live_server: Any, operator: Api, make_api_key: Any, pool: Any, deploy_runtime: Any, tmp_path: Path
) -> None:
    home = tmp_path / "remote-home"
    home.mkdir()
    storage = (tmp_path / "remote-results").as_uri()
    key = make_api_key("worker", pool, name="remote-worker")
    worker, output = start_remote_worker(live_server.url, key, pool.name, remote_env(home, RESULT_STORAGE=storage))
    try:
        parent_run, _ = create_flow_run(deploy_runtime(pool, "parent"))
        wait_for(lambda: FlowRun.objects.get(pk=parent_run.pk).is_terminal, 90, "the parent run", processes=[])
    finally:
        stop(worker)
    parent_run.refresh_from_db()
    check_parent_and_children(parent_run, "".join(output))
    answer = operator.get(f"/api/flow-runs/{parent_run.pk}/result/")
    assert answer.status_code == 200, answer.text
    assert answer.json()["value"] == {"ok": 10, "bad": "FAILED", "caught": "raised and caught"}
    child = parent_run.child_runs.first()
    detail = operator.get(f"/api/flow-runs/{child.pk}/").json()
    assert detail["parent_flow_run"] == str(parent_run.pk) and detail["parent_task_run"]
    none = operator.get(f"/api/flow-runs/{child.pk}/result/")
    assert none.status_code == 404 and "no persisted result" in none.json()["detail"]


def test_a_remote_run_reads_a_variable_and_a_secret_with_its_credential_and_the_secret_is_masked(
    live_server: Any, api_as: Any, make_api_key: Any, pool: Any, deploy_runtime: Any, tmp_path: Path
) -> None:
    from blocks.services import set_secret, set_variable

    set_variable("region", "eu-west-1")
    set_secret("api-token", "tok-9f8e7d6c")
    assert api_as("read").get("/api/secrets/api-token/value/").status_code == 403
    home = tmp_path / "remote-home"
    home.mkdir()
    key = make_api_key("worker", pool, name="remote-worker")
    worker, output = start_remote_worker(live_server.url, key, pool.name, remote_env(home))
    try:
        run, _ = create_flow_run(deploy_runtime(pool, "uses_blocks"))
        wait_for(lambda: FlowRun.objects.get(pk=run.pk).is_terminal, 90, "the run")
        assert logged(run, "again: ********")
    finally:
        stop(worker)
    run.refresh_from_db()
    text = "".join(output)
    assert run.state_type == S.COMPLETED, (run.state_message, text)
    messages = list(run.logs.values_list("message", flat=True))
    assert "region=eu-west-1 missing=[1]" in messages
    assert "calling the API with token=********" in messages
    assert not any("tok-9f8e7d6c" in m for m in messages)
    assert "tok-9f8e7d6c" not in text and "token=********" in text


def test_artifacts_published_on_a_worker_show_on_the_run_page_with_a_script_as_text(
    subprocess_env: dict[str, str], tmp_path: Path, pool: Any, deploy_runtime: Any, admin_client: Any
) -> None:
    from tests.html import element

    run, _ = create_flow_run(deploy_runtime(pool, "reports"))
    worker, output = start_worker(subprocess_env, pool.name, cwd=tmp_path)
    try:
        wait_until_finished(run)
    finally:
        stop(worker)
    assert run.state_type == S.COMPLETED, (run.state_message, "".join(output))
    assert {a.key: a.type for a in run.artifacts.all()} == {
        "progress": "progress",
        "daily-report": "markdown",
        "rain": "table",
        "dashboard": "link",
    }
    assert run.artifacts.get(key="rain").task_run.name.startswith("rain_table-")
    card = element(admin_client.get(run.get_absolute_url()).content.decode(), "section", 'id="run-artifacts"')
    assert "<h1>Daily report</h1>" in card and "<strong>good</strong>" in card
    assert "<script>" not in card and "&lt;script&gt;alert('x')&lt;/script&gt;" in card
    assert 'href="javascript' not in card  # an unsafe link scheme is not linked
    assert "<td>Oslo</td>" in card and "<td>11</td>" in card
    assert '<a href="https://example.com/dashboards/7"' in card and 'value="100"' in card
