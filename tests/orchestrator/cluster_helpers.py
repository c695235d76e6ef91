"""Helpers for the task-runner tests on real clusters: flow scripts run as `python flow.py`,
and what their tasks record from inside (one O_APPEND line per execution, so a test counts what
really ran on the cluster rather than trusting our own states)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from runs.models import FlowRun, TaskRun

# Every flow script starts with this; RUNNER is filled in by the test (a Dask or Ray runner
# reaching the module's cluster).
PRELUDE = '''
import os, sys, signal, threading, time
from orchestrator import flow, task, get_run_logger, task_input_hash
from orchestrator.task_runners import DaskTaskRunner, RayTaskRunner

MARKERS = {markers!r}
RUNNER = {runner}


def record(event, *details):
    # One short write with O_APPEND: atomic between processes.
    line = " ".join(str(p) for p in (event, os.getpid(), *details)) + "\\n"
    with open(os.path.join(MARKERS, "events.log"), "a") as f:
        f.write(line)


def seen(event):
    path = os.path.join(MARKERS, "events.log")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split()[0] == event)
'''


def write_script(tmp_path: Path, body: str, *, runner: str, name: str = "flow.py") -> Path:
    script = tmp_path / name
    script.write_text(PRELUDE.format(markers=str(tmp_path), runner=runner) + textwrap.dedent(body))
    return script


def script_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    # No DJANGO_SETTINGS_MODULE: the SDK sets Django up by itself, as for a user's script.
    return {**{k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}, **extra}


def run_script(script: Path, env: dict[str, str], *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], cwd=script.parent, env=script_env(env), capture_output=True, text=True,
        timeout=timeout,
    )


def start_script(script: Path, env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=script.parent, env=script_env(env, **extra), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def events(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "events.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def executions(tmp_path: Path, event: str) -> Counter[str]:
    """How often each item was executed: event lines are `event pid item`."""
    return Counter(row[2] for row in events(tmp_path) if row[0] == event)


def only_run() -> FlowRun:
    return FlowRun.objects.get()


def history(task_run: TaskRun) -> list[str]:
    return list(task_run.states.order_by("timestamp", "id").values_list("name", flat=True))


def by_name(run: FlowRun, prefix: str) -> list[TaskRun]:
    return sorted(run.task_runs.filter(name__startswith=prefix), key=lambda t: int(t.dynamic_key))


def describe(result: Any) -> str:
    return f"exit {result.returncode}\n--- stderr ---\n{result.stderr[-6000:]}"
