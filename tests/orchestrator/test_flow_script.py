"""The tutorial's example run as a plain script, `python hello.py`, for real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.orchestrator.conftest import HELLO_FLOW

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)

SEED = "from orchestrator import flow, task, get_run_logger\n" + HELLO_FLOW + '\nleonardo_dicapriflow("Leo")\n'


LINE = r"\d\d:\d\d:\d\d\.\d{3} \| INFO    \| "


def run_script(tmp_path: Path, source: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "hello.py"
    script.write_text(source)
    # No DJANGO_SETTINGS_MODULE: the SDK sets Django up by itself.
    env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_seed_example_prints_what_happens_and_leaves_a_completed_run(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    result = run_script(tmp_path, SEED, subprocess_env)

    assert result.returncode == 0, result.stderr
    run = FlowRun.objects.get()
    task_run = run.task_runs.get()
    lines = result.stderr.splitlines()
    expected = [
        rf"{LINE}orchestrator\.engine - Created flow run '{run.name}' for flow 'leonardo_dicapriflow'",
        rf"{LINE}Flow run '{run.name}' - Using task runner 'ThreadTaskRunner'",
        rf"{LINE}Flow run '{run.name}' - Created task run '{task_run.name}' for task 'log_message'",
        rf"{LINE}Task run '{task_run.name}' - Hello Leo!",
        rf"{LINE}Task run '{task_run.name}' - Finished in state Completed\(\)",
        rf"{LINE}Flow run '{run.name}' - Finished in state Completed\('All states completed\.'\)",
    ]
    assert len(lines) == len(expected), result.stderr
    for line, pattern in zip(lines, expected):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert re.fullmatch(r"log_message-[0-9a-f]{8}-0", task_run.name)

    assert (run.state_type, run.deployment, run.parameters) == (S.COMPLETED, None, {"name": "Leo"})
    assert task_run.state_type == S.COMPLETED
    hello = run.logs.get(message="Hello Leo!")
    assert hello.task_run == task_run


def test_a_failing_script_exits_non_zero_and_its_run_fails_with_the_exception(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    source = SEED.replace('logger.info(f"Hello {name}!")', 'raise ValueError(f"no greeting for {name}")')
    result = run_script(tmp_path, source, subprocess_env)

    assert result.returncode == 1
    assert "ValueError: no greeting for Leo" in result.stderr
    run = FlowRun.objects.get()
    assert (run.state_type, run.state_message) == (S.FAILED, "ValueError: no greeting for Leo")
    assert run.task_runs.get().state_type == S.FAILED
    tracebacks = run.logs.filter(message__startswith="Encountered exception during execution", level=40)
    assert tracebacks.count() == 2  # the task run's and the flow run's
    assert all("Traceback (most recent call last)" in log.message for log in tracebacks)


def test_the_run_is_visible_in_the_admin(tmp_path: Path, subprocess_env: dict[str, str], admin_client: Any) -> None:
    assert run_script(tmp_path, SEED, subprocess_env).returncode == 0
    run = FlowRun.objects.get()
    page = admin_client.get(f"/admin/runs/flowrun/{run.pk}/change/").content.decode()
    assert run.name in page and run.task_runs.get().name in page
    logs_url = f"/admin/runs/log/?flow_run__id__exact={run.pk}"
    assert logs_url in page
    assert "Hello Leo!" in admin_client.get(logs_url).content.decode()
    task_page = admin_client.get(f"/admin/runs/taskrun/{run.task_runs.get().pk}/change/").content.decode()
    assert "State history" in task_page
