"""A project as a person has it: the tutorial's flow in a git repository whose remote is a local
bare repository; `manage.py` run from that project; a real worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.workpools.test_runworker import collect, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")

HELLO = """from orchestrator import flow, task, get_run_logger


@task
def log_message(name):
    logger = get_run_logger()
    logger.info(f"{greeting()} {name}!")


def greeting():
    return "Hello"


@flow
def leonardo_dicapriflow(name: str = "world"):
    log_message(name)


def not_a_flow(name: str):
    return name
"""

SPEC = """\
deployments:
  - name: leonardo-deployment
    entrypoint: flows/hello.py:leonardo_dicapriflow
    parameters: {name: Leo}
    tags: [tutorial, test]
    work_pool: {name: my-process-pool}
  - name: marvin-deployment
    entrypoint: flows/hello.py:leonardo_dicapriflow
    description: Greets Marvin
    version: "2"
    parameters: {name: Marvin}
    tags: [tutorial, dev]
    work_pool: {name: my-process-pool}
    schedules:
      - interval: 3600
        timezone: Europe/Berlin
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_project(tmp_path: Path) -> tuple[Path, Path]:
    """(project checkout, bare remote): the seed's flow committed and pushed to `main`."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "hello.py").write_text(HELLO)
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "config", "user.email", "leo@example.com")
    git(project, "config", "user.name", "Leo")
    git(project, "remote", "add", "origin", str(remote))
    commit_and_push(project, "The tutorial flow")
    return project, remote


def commit_and_push(project: Path, message: str) -> None:
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", message)
    git(project, "push", "--quiet", "origin", "HEAD:main")


def manage(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, MANAGE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_worker(env: dict[str, str], pool: str, cwd: Path) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, MANAGE, "runworker", "--pool", pool, "--poll-interval", "0.2"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, collect(proc)


def wait_until_finished(run: Any, timeout: float = 90) -> Any:
    wait_for(lambda: _refreshed(run).is_terminal, timeout, f"run {run.name} to finish")
    return run


def _refreshed(run: Any) -> Any:
    run.refresh_from_db()
    return run


def log_text(run: Any) -> str:
    return "\n".join(run.logs.values_list("message", flat=True))


def logged(run: Any, text: str, timeout: float = 30) -> bool:
    """Whether `text` reaches the run's logs within `timeout` (logs are shipped in batches,
    the last one possibly just after the final state)."""
    try:
        wait_for(lambda: text in log_text(run), timeout, f"{text!r} in the logs of {run.name}")
    except AssertionError:
        return False
    return True


__all__ = ["collect", "stop", "wait_for"]
