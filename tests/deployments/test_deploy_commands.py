"""`manage.py deployment ls|inspect|run|pause|resume|delete` and `manage.py flowrun
ls|inspect|logs|cancel`: each wired to its service; `deployment run --watch` against a real worker."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from deployments.models import Deployment
from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from tests.deployments.deploy_helpers import HELLO, manage, start_worker, stop

S = StateType


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def leo(make_deployment: Any) -> Deployment:
    dep = make_deployment(parameters={"name": "Leo"}, tags=["tutorial"])
    dep.schedules.create(slug="mornings", kind="cron", cron="0 9 * * *", timezone="Europe/Berlin")
    return dep


def test_ls_lists_deployments_with_pool_and_schedule_in_words(leo: Deployment) -> None:
    out = run_command("deployment", "ls")
    assert "leonardo_dicapriflow/leonardo-deployment" in out and str(leo.pk) in out
    assert "my-process-pool" in out and "At 09:00 (Europe/Berlin)" in out


def test_inspect_shows_fields_schedules_and_next_fire_times(leo: Deployment) -> None:
    out = run_command("deployment", "inspect", "leonardo_dicapriflow/leonardo-deployment")
    assert 'Parameters                {"name": "Leo"}' in out
    assert "mornings: At 09:00 (Europe/Berlin)" in out and "next: " in out


def test_run_creates_a_run_for_a_worker_with_parameters_and_a_start_time(leo: Deployment) -> None:
    before = timezone.now()
    out = run_command(
        "deployment", "run", "leonardo_dicapriflow/leonardo-deployment", "--param", "name=Marvin", "--start-in", "10m"
    )
    run = FlowRun.objects.get()
    assert f"Created flow run '{run.name}'" in out
    assert run.parameters == {"name": "Marvin"} and run.state_type == S.SCHEDULED and run.created_by == "cli"
    assert timedelta(minutes=9) < run.expected_start_at - before < timedelta(minutes=11)
    run_command(
        "deployment",
        "run",
        "leonardo_dicapriflow/leonardo-deployment",
        "--params",
        '{"name": "Zed"}',
        "--start-at",
        "2031-01-01T09:00:00+00:00",
    )
    later = FlowRun.objects.get(parameters={"name": "Zed"})
    assert later.expected_start_at.year == 2031


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--start-in", "soon"), "--start-in takes a duration like 30s, 10m, 2h or 1d, not 'soon'."),
        (
            ("--start-at", "tomorrow"),
            "--start-at takes an ISO 8601 date and time like 2026-05-01T09:00, not 'tomorrow'.",
        ),
        (("--params", "{nope"), "--params is not valid JSON"),
        (("--param", "nope"), "--param takes KEY=VALUE, not 'nope'."),
    ],
)
def test_run_refuses_bad_options_in_one_line(leo: Deployment, args: tuple[str, ...], expected: str) -> None:
    with pytest.raises(CommandError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        run_command("deployment", "run", "leonardo_dicapriflow/leonardo-deployment", *args)
    assert not FlowRun.objects.exists()


def test_pause_resume_and_delete(leo: Deployment) -> None:
    name = "leonardo_dicapriflow/leonardo-deployment"
    assert "Paused deployment" in run_command("deployment", "pause", name)
    leo.refresh_from_db()
    assert leo.paused
    run_command("deployment", "resume", name)
    leo.refresh_from_db()
    assert not leo.paused
    create_flow_run(leo)
    assert "and 1 run(s) that had not started" in run_command("deployment", "delete", name)
    assert not Deployment.objects.exists() and not FlowRun.objects.exists()
    with pytest.raises(CommandError, match="No deployment named"):
        run_command("deployment", "inspect", name)


def test_a_deployment_with_a_run_in_flight_is_not_deleted(leo: Deployment) -> None:
    run, _ = create_flow_run(leo)
    set_state(run, S.PENDING)
    with pytest.raises(CommandError, match="has 1 run\\(s\\) in flight"):
        run_command("deployment", "delete", "leonardo_dicapriflow/leonardo-deployment")
    assert Deployment.objects.exists()


def test_flowrun_ls_inspect_logs_and_cancel(leo: Deployment) -> None:
    first, _ = create_flow_run(leo)
    second, _ = create_flow_run(leo, scheduled_at=timezone.now() + timedelta(hours=1))
    set_state(first, S.PENDING)
    set_state(first, S.RUNNING)
    first.logs.create(message="Hello Leo!", logger="Task run 'log_message'", timestamp=timezone.now())

    listed = run_command(
        "flowrun", "ls", "--state", "running", "--deployment", "leonardo_dicapriflow/leonardo-deployment"
    )
    assert first.name in listed and second.name not in listed
    assert second.name in run_command("flowrun", "ls", "--all", "--limit", "1")
    inspected = run_command("flowrun", "inspect", first.name)
    assert "Running (RUNNING)" in inspected and "Pending (PENDING)" in inspected
    assert "| INFO    | Task run 'log_message' - Hello Leo!" in run_command("flowrun", "logs", str(first.pk))
    assert "Cancelling (CANCELLING)" in run_command("flowrun", "cancel", first.name)
    assert "Cancelled (CANCELLED)" in run_command("flowrun", "cancel", str(second.pk))
    with pytest.raises(CommandError, match="No flow run with the id or name 'ghost'"):
        run_command("flowrun", "logs", "ghost")


@pytest.mark.django_db(transaction=True)
def test_run_watch_follows_a_worker_to_completed_and_exits_0_or_1_on_failure(
    subprocess_env: dict[str, str], tmp_path: Path, make_pool: Any
) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text(
        HELLO + "\n\n@flow\ndef broken():\n    raise RuntimeError('no greeting today')\n"
    )
    make_pool("my-process-pool")
    for args in (
        ("flows/hello.py:leonardo_dicapriflow", "-n", "leo", "--param", "name=Leo"),
        ("flows/hello.py:broken", "-n", "broken"),
    ):
        assert manage(subprocess_env, tmp_path, "deploy", *args, "-p", "my-process-pool").returncode == 0
    worker, output = start_worker(subprocess_env, "my-process-pool", cwd=tmp_path)
    try:
        good = manage(subprocess_env, tmp_path, "deployment", "run", "leonardo_dicapriflow/leo", "--watch")
        bad = manage(subprocess_env, tmp_path, "deployment", "run", "broken/broken", "--watch")
    finally:
        stop(worker)
    assert good.returncode == 0, (good.stdout, good.stderr, "".join(output))
    assert "is Pending (PENDING)" in good.stdout or "is Running (RUNNING)" in good.stdout
    assert "Hello Leo!" in good.stdout and "is Completed (COMPLETED)" in good.stdout
    assert bad.returncode == 1
    assert "is Failed (FAILED)" in bad.stdout
    assert bad.stderr.strip().startswith("CommandError: Flow run ") and "RuntimeError: no greeting today" in bad.stderr


def test_flowrun_logs_follow_prints_until_the_run_has_ended(leo: Deployment) -> None:
    run, _ = create_flow_run(leo)
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    run.logs.create(message="Hello Leo!", logger="flow", timestamp=timezone.now())
    set_state(run, S.COMPLETED)
    assert "flow - Hello Leo!" in run_command("flowrun", "logs", run.name, "--follow")


def test_run_watch_prints_states_and_logs_in_the_order_they_happened(leo: Deployment) -> None:
    from orchestrator.cli import follow_run

    run, _ = create_flow_run(leo)
    set_state(run, S.PENDING)
    set_state(run, S.RUNNING)
    run.logs.create(message="Hello Leo!", logger="Task run 'log_message'", timestamp=timezone.now())
    set_state(run, S.COMPLETED)
    lines: list[str] = []
    follow_run(lines.append, run, states=True, poll_seconds=0.01)
    order = [
        next(i for i, line in enumerate(lines) if text in line)
        for text in ("is Scheduled", "is Pending", "is Running", "Hello Leo!", "is Completed")
    ]
    assert order == sorted(order), lines
