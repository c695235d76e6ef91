"""The scheduler for real: a Celery worker with beat (and a second beat beside it) against the
configured broker (Redis in CI's PostgreSQL pass, the filesystem broker on the embedded default)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone

from deployments.models import Deployment
from deployments.services import set_deployment_paused, sync_schedules
from runs.models import FlowRun, FlowRunState
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "orchestrator"]
TWO_SECONDS = {"slug": "two-seconds", "kind": "interval", "interval_seconds": 2}

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


class Process:
    """A real process with its output in a file, stopped (whole process group) by stop()."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # Celery's warm shutdown stops its own children
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


def celery_env(subprocess_env: dict[str, str], **settings: str) -> dict[str, str]:
    return {
        **subprocess_env,
        "SCHEDULER_MAX_RUNS": "10",
        "LATE_RUNS_INTERVAL_SECONDS": "1",
        "REAPER_INTERVAL_SECONDS": "60",
        **settings,
    }


def worker_with_beat(env: dict[str, str], tmp_path: Path) -> Process:
    argv = [
        *CELERY,
        "worker",
        "--beat",
        "--schedule",
        str(tmp_path / "beat-a"),
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--hostname",
        f"scheduler-test-{os.getpid()}@%h",
    ]
    return Process(argv, env, tmp_path / "worker.log")


def future_runs(deployment: Deployment) -> int:
    return FlowRun.objects.filter(
        deployment=deployment, state_type="SCHEDULED", expected_start_at__gt=timezone.now()
    ).count()


def ticks(worker: Process) -> int:
    return worker.output().count("deployments.tasks.schedule_deployments[")


def test_beat_schedules_runs_once_beside_a_second_beat_and_pausing_removes_them(
    subprocess_env: dict[str, str], tmp_path: Path, make_deployment: Any
) -> None:
    deployment = make_deployment(
        "every-two-seconds",
        path=str(ROOT / "tests" / "flows"),
        entrypoint="counting.py:count_me",
        parameters={"marker_dir": str(tmp_path)},
        enforce_parameter_schema=False,
    )
    sync_schedules(deployment, [TWO_SECONDS])
    env = celery_env(subprocess_env, SCHEDULER_INTERVAL_SECONDS="1")
    worker = worker_with_beat(env, tmp_path)
    # A real flow worker on the deployment's pool runs what beat schedules.
    runner = Process(
        [sys.executable, "manage.py", "runworker", "--pool", deployment.work_pool.name, "--poll-interval", "0.2"],
        env,
        tmp_path / "runworker.log",
    )
    second_beat = None
    try:
        wait_for(
            lambda: future_runs(deployment) >= 10,
            60,
            "the first runs",
            processes=(
                worker,
                runner,
            ),
        )
        completed = FlowRun.objects.filter(deployment=deployment, state_type="COMPLETED")
        wait_for(
            lambda: completed.count() >= 2,
            60,
            "scheduled runs COMPLETED by the worker",
            processes=(
                worker,
                runner,
            ),
        )
        executions = [
            line.split()[1] for line in (tmp_path / "events.log").read_text().splitlines() if line.startswith("start")
        ]
        assert len(executions) == len(set(executions)), "a scheduled run was executed twice"
        # The window moves on: later ticks add the fire times that came into it.
        first_total = FlowRun.objects.filter(deployment=deployment).count()
        wait_for(
            lambda: FlowRun.objects.filter(deployment=deployment).count() > first_total,
            60,
            "more runs",
            processes=(worker,),
        )

        second_beat = Process(
            [*CELERY, "beat", "--schedule", str(tmp_path / "beat-b"), "--loglevel", "INFO"],
            env,
            tmp_path / "beat-b.log",
        )
        wait_for(
            lambda: second_beat.output().count("Sending due task schedule-deployments") >= 3,
            60,
            "ticks from the second beat",
            processes=(
                worker,
                second_beat,
            ),
        )
        seen = ticks(worker)
        wait_for(
            lambda: ticks(worker) >= seen + 4,
            60,
            "the worker to run the ticks of both beats",
            processes=(
                worker,
                second_beat,
            ),
        )

        runs = FlowRun.objects.filter(deployment=deployment)
        assert not runs.values("schedule_slug", "expected_start_at").annotate(n=Count("id")).filter(n__gt=1).exists()
        first_states = FlowRunState.objects.filter(flow_run__deployment=deployment, name="Scheduled")
        assert first_states.count() == runs.count()  # one creation per run: no duplicate inserts
        assert {int(t.timestamp()) % 2 for t in runs.values_list("expected_start_at", flat=True)} == {0}
        assert "Traceback" not in worker.output()

        set_deployment_paused(deployment, True)
        assert future_runs(deployment) == 0
        seen = ticks(worker)
        wait_for(
            lambda: ticks(worker) >= seen + 3,
            60,
            "ticks after the pause",
            processes=(
                worker,
                second_beat,
            ),
        )
        assert future_runs(deployment) == 0
    finally:
        if second_beat is not None:
            second_beat.stop()
        runner.stop()
        worker.stop()


def test_a_new_deployment_is_scheduled_within_seconds_not_at_the_next_full_pass(
    subprocess_env: dict[str, str], tmp_path: Path, make_deployment: Any
) -> None:
    env = celery_env(subprocess_env, SCHEDULER_INTERVAL_SECONDS="3600")
    worker = worker_with_beat(env, tmp_path)
    try:
        wait_for(lambda: " ready." in worker.output(), 60, "the worker to start", processes=(worker,))
        deployment = make_deployment("brand-new")
        sync_schedules(deployment, [TWO_SECONDS])  # its task is sent when this commits

        # The window is ten fire times; no full pass comes to add more.
        wait_for(
            lambda: FlowRun.objects.filter(deployment=deployment).count() == 10,
            60,  # the full pass is an hour away: only the on-change task can make them this soon
            "the new deployment's runs",
            processes=(worker,),
        )
        assert "deployments.tasks.schedule_deployment[" in worker.output()
    finally:
        worker.stop()
