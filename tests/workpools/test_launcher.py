"""The pre-warmed launcher: real flows forked from a process that has Django loaded."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs.models import FlowRun
from runs.services import request_cancellation
from tests.workpools.test_runworker import deployment, events
from workpools.infrastructure import ProcessInfrastructure
from workpools.models import WorkPool
from workpools.services import create_work_pool
from workpools.worker import WorkerLoop

S = StateType
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loop(subprocess_env: dict[str, str]) -> WorkerLoop:
    pool = create_work_pool("warm")
    client = DirectClient()
    worker = client.register_worker(pool.name, name="warm-1")
    infrastructure = ProcessInfrastructure(prewarm=True, base_env=subprocess_env)
    w = WorkerLoop(worker, client=client, infrastructure=infrastructure, out=io.StringIO(), kill_after=2, grace=0)
    yield w
    for child in w.children.values():
        child.kill()
    infrastructure.close()


def pool_of(loop: WorkerLoop) -> WorkPool:
    return WorkPool.objects.get(name=loop.worker.pool_name)


def step_until(loop: WorkerLoop, condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loop.reap_children()
        loop.handle_cancellations()
        loop.claim_and_start()
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; worker output:\n{loop.out.getvalue()}")


def test_a_forked_run_completes_and_its_output_reaches_the_worker(loop: WorkerLoop, tmp_path: Path) -> None:
    run, _ = create_flow_run(deployment(pool_of(loop), "count", "count_me", {"marker_dir": str(tmp_path)}))
    # The output is read by a thread, so it may trail the state by a moment: wait for both.
    step_until(loop, lambda: not loop.children and "Finished in state Completed" in loop.out.getvalue())
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, run.state_message
    assert loop.infrastructure.launcher.process is not None  # it went through the launcher
    assert f"{run.name} | " in loop.out.getvalue()
    assert [e[0] for e in events(tmp_path)] == ["start", "end"]


def test_a_forked_run_killed_with_sigkill_is_crashed(loop: WorkerLoop, tmp_path: Path) -> None:
    run, _ = create_flow_run(deployment(pool_of(loop), "slow", "sleepy", {"marker_dir": str(tmp_path)}))
    step_until(loop, lambda: events(tmp_path))
    os.killpg(loop.children[str(run.pk)].pid, signal.SIGKILL)
    step_until(loop, lambda: not loop.children)
    run.refresh_from_db()
    assert run.state_type == S.CRASHED
    assert "was killed by SIGKILL while the run was Running" in run.state_message


def test_cancelling_a_forked_run_stops_it(loop: WorkerLoop, tmp_path: Path) -> None:
    run, _ = create_flow_run(deployment(pool_of(loop), "slow", "sleepy", {"marker_dir": str(tmp_path)}))
    step_until(loop, lambda: events(tmp_path))
    pid = loop.children[str(run.pk)].pid
    request_cancellation(FlowRun.objects.get(pk=run.pk), by="alice")
    step_until(loop, lambda: not loop.children)
    run.refresh_from_db()
    assert run.state_type == S.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_run_that_changes_the_settings_gets_a_fresh_interpreter(
    loop: WorkerLoop, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    dep = deployment(
        pool_of(loop),
        "own-db",
        "count_me",
        {"marker_dir": str(tmp_path)},
        job_variables={"env": {"DATABASE_URL": subprocess_env["DATABASE_URL"]}},
    )
    run, _ = create_flow_run(dep)
    loop.claim_and_start()
    assert loop.children[str(run.pk)].popen is not None  # a plain subprocess, not a fork
    step_until(loop, lambda: not loop.children)
    assert FlowRun.objects.get(pk=run.pk).state_type == S.COMPLETED


def test_when_the_launcher_dies_runs_still_start(loop: WorkerLoop, tmp_path: Path) -> None:
    dep = deployment(pool_of(loop), "count", "count_me", {"marker_dir": str(tmp_path)})
    first, _ = create_flow_run(dep)
    step_until(loop, lambda: FlowRun.objects.get(pk=first.pk).is_terminal)
    launcher = loop.infrastructure.launcher
    launcher.process.kill()
    launcher.process.wait()
    second, _ = create_flow_run(dep)
    step_until(loop, lambda: FlowRun.objects.get(pk=second.pk).is_terminal)
    assert FlowRun.objects.get(pk=second.pk).state_type == S.COMPLETED
