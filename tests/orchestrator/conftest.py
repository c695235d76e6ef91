"""Helpers for flow tests: flow files on disk, deployments of them, the engine as a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from deployments.models import Deployment
from runs.models import FlowRun

ROOT = Path(__file__).resolve().parents[2]

# Every flow file the tests write starts with these imports.
HEADER = "import time\nfrom datetime import timedelta\nfrom orchestrator import flow, task, get_run_logger\n\n"

# The tutorial's flow (seed 001), after HEADER.
HELLO_FLOW = """
@task
def log_message(name):
    logger = get_run_logger()
    logger.info(f"Hello {name}!")

@flow
def leonardo_dicapriflow(name: str):
    log_message(name)
"""


@pytest.fixture
def write_flow(tmp_path: Path):
    """write_flow("flows/x.py", source) -> the file, in the test's directory."""

    def write(relative: str, source: str, *, header: bool = True) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((HEADER if header else "") + textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def deploy(make_deployment: Any, tmp_path: Path):
    """deploy(entrypoint, **fields) -> a deployment whose path is the test's directory."""
    counter = iter(range(1000))

    def make(entrypoint: str, **fields: Any) -> Deployment:
        fields.setdefault("path", str(tmp_path))
        return make_deployment(f"deployment-{next(counter)}", entrypoint=entrypoint, **fields)

    return make


def run_engine(
    run: FlowRun, env: dict[str, str], *, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m orchestrator.engine RUN_ID`, as a worker starts it."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.engine", str(run.pk)],
        cwd=cwd or ROOT,
        env={**env, "ORCHESTRATOR_RUN_ID": str(run.pk)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
