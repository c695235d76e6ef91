"""Real `manage.py runworker` processes running real flows through the engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from deployments.models import Deployment, Flow
from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.conftest import wait_for
from workpools.models import WorkPool
from workpools.services import create_work_pool, set_concurrency_limit

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "tests" / "flows"
S = StateType


def start_worker(env: dict[str, str], pool: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool, "--poll-interval", "0.2", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def collect(proc: subprocess.Popen) -> list[str]:
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return lines


def stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def events(marker_dir: Path) -> list[tuple[str, str, float]]:
    path = marker_dir / "events.log"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, run_id, at = line.split()
        rows.append((kind, run_id, float(at)))
    return rows


def deployment(pool: WorkPool, name: str, function: str, parameters: dict[str, Any], **kwargs: Any) -> Deployment:
    flow, _ = Flow.objects.get_or_create(name=function)
    return Deployment.objects.create(
        flow=flow,
        name=name,
        work_pool=pool,
        path=str(FLOWS),
        entrypoint=f"counting.py:{function}",
        parameters=parameters,
        enforce_parameter_schema=False,
        **kwargs,
    )


def start_sleeping_run(
    env: dict[str, str], marker_dir: Path, seconds: float, grace: float
) -> tuple[Any, Any, subprocess.Popen, list[str]]:
    """A worker with one flow run in flight: returns (deployment, run, worker, its output)."""
    pool = create_work_pool("graceful")
    dep = deployment(pool, "slow", "sleepy", {"marker_dir": str(marker_dir), "seconds": seconds})
    run, _ = create_flow_run(dep)
    worker = start_worker(env, "graceful", "--grace", str(grace))
    output = collect(worker)
    try:
        wait_for(lambda: any(e[0] == "start" for e in events(marker_dir)), 60, "the flow to start")
    except AssertionError:
        stop(worker)
        raise
    return dep, run, worker, output


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_a_run_in_flight_finish_and_the_worker_exits_0(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    dep, run, worker, output = start_sleeping_run(subprocess_env, tmp_path, seconds=2, grace=30)
    try:
        os.kill(worker.pid, signal.SIGTERM)
        wait_for(lambda: "finishing..." in "".join(output), 30, "the worker to start finishing")
        create_flow_run(dep)  # arrives after the signal: must not be claimed
        assert worker.wait(timeout=60) == 0, "".join(output)
    finally:
        stop(worker)
    run.refresh_from_db()
    assert run.state_type == S.COMPLETED, run.state_message
    assert FlowRun.objects.filter(state_type=S.SCHEDULED).count() == 1
    text = "".join(output)
    assert "finishing..." in text and "Done." in text


@pytest.mark.django_db(transaction=True)
def test_a_second_signal_stops_the_run_and_marks_it_crashed(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    _, run, worker, output = start_sleeping_run(subprocess_env, tmp_path, seconds=60, grace=60)
    try:
        os.kill(worker.pid, signal.SIGTERM)
        wait_for(lambda: "finishing..." in "".join(output), 30, "the worker to start finishing")
        os.kill(worker.pid, signal.SIGINT)
        assert worker.wait(timeout=60) == 0, "".join(output)
    finally:
        stop(worker)
    run.refresh_from_db()
    assert run.state_type == S.CRASHED
    assert "shut down" in run.state_message
    assert not [e for e in events(tmp_path) if e[0] == "end"]


@pytest.mark.django_db(transaction=True)
def test_an_unknown_pool_with_no_create_is_one_line_and_exit_1(subprocess_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--pool", "ghost", "--no-create"],
        cwd=ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: No work pool named 'ghost' (create it with: manage.py workpool create ghost)."
    )
    assert not WorkPool.objects.filter(name="ghost").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_workers_drain_600_runs_exactly_once_within_limits(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    pool = create_work_pool("race")
    set_concurrency_limit(pool, 2)
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    limited = [create_flow_run(dep, parameters={"seconds": 0.3})[0] for _ in range(30)]
    rest = [create_flow_run(dep)[0] for _ in range(570)]

    running_seen: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        from django.db import connection

        try:
            while not sampling.is_set():
                running_seen.append(FlowRun.objects.filter(work_pool=pool).active().count())
                time.sleep(0.02)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample)
    workers = [start_worker(subprocess_env, "race", "--name", f"w{i}", "--limit", "4") for i in range(3)]
    outputs = [collect(w) for w in workers]
    try:
        sampler.start()
        ids = {str(r.pk) for r in limited}
        wait_for(lambda: ids <= {e[1] for e in events(tmp_path) if e[0] == "end"}, 300, "the limited runs")
        sampling.set()
        sampler.join()
        set_concurrency_limit(WorkPool.objects.get(pk=pool.pk), None)
        wait_for(
            lambda: not FlowRun.objects.filter(work_pool=pool).exclude(state_type=S.COMPLETED).exists(),
            900,
            "all 600 runs to complete",
        )
    finally:
        sampling.set()
        codes = [stop(w) for w in workers]
    assert codes == [0, 0, 0], "".join(sum(outputs, []))[-5000:]

    started = Counter(run_id for kind, run_id, _ in events(tmp_path) if kind == "start")
    expected = {str(r.pk) for r in limited + rest}
    assert set(started) == expected
    assert max(started.values()) == 1, "a run was executed more than once"
    # The pool limit held while set: by our states and by what really ran at once.
    assert max(running_seen) <= 2
    spans = {}
    for kind, run_id, at in events(tmp_path):
        if run_id in {str(r.pk) for r in limited}:
            spans.setdefault(run_id, {})[kind] = at
    edges = sorted([(s["start"], 1) for s in spans.values()] + [(s["end"], -1) for s in spans.values()])
    overlap = peak = 0
    for _, delta in edges:
        overlap += delta
        peak = max(peak, overlap)
    assert peak <= 2
    # All three workers took part.
    assert len(set(FlowRun.objects.filter(work_pool=pool).values_list("worker__name", flat=True))) == 3
