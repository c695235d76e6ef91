"""A healthy worker loses no run under a burst: one real `runworker` on SQLite drains 500 runs
that are due at once, while the reaper runs as it would from Celery beat. The worker's
heartbeat beats from its own thread however busy its loop is, and it claims only what it can
start before the runs' lease runs out, so the reaper finds nothing to crash."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.utils import timezone

from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.conftest import wait_for
from tests.workpools.test_runworker import collect, deployment, events, start_worker, stop
from workpools.health import worker_offline_after
from workpools.models import Worker
from workpools.services import create_work_pool, recover_lost_runs

S = StateType
BURST = 500


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_worker_drains_a_burst_of_500_runs_and_none_crashes(
    subprocess_env: dict[str, str], tmp_path: Path, settings: object
) -> None:
    # Short leases, so the test sees in seconds what the defaults show in 30 s: a run claimed
    # but not started within 6 s, or a worker silent for 6 s, is presumed dead.
    beats = {
        "WORKER_HEARTBEAT_SECONDS": 2.0,
        "RUN_HEARTBEAT_SECONDS": 2.0,
        "WORKER_HEARTBEAT_MISSES": 3,
        "RUN_HEARTBEAT_MISSES": 3,
    }
    for name, value in beats.items():
        setattr(settings, name, value)
    env = {**subprocess_env, **{name: str(value) for name, value in beats.items()}}
    pool = create_work_pool("burst")
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    runs = [create_flow_run(dep)[0] for _ in range(BURST)]

    worker = start_worker(env, "burst")
    output = collect(worker)
    silences: list[float] = [0.0]

    def drained() -> bool:
        recover_lost_runs()  # the reaper, as beat runs it
        beat = Worker.objects.filter(pool=pool, stopped_at__isnull=True).values_list("last_heartbeat_at", flat=True)
        silences.extend((timezone.now() - at).total_seconds() for at in beat if at is not None)
        return (
            not FlowRun.objects.filter(work_pool=pool)
            .exclude(state_type__in=[S.COMPLETED, S.CRASHED, S.FAILED])
            .exists()
        )

    try:
        wait_for(drained, 600, f"the worker to drain {BURST} runs", processes=[worker], interval=0.5)
    finally:
        code = stop(worker)
    assert code == 0, "".join(output)[-3000:]
    states = Counter(FlowRun.objects.filter(work_pool=pool).values_list("state_type", flat=True))
    assert states == Counter({S.COMPLETED: BURST}), (states, "".join(output)[-3000:])
    longest = max(silences)
    print(f"longest heartbeat silence seen: {longest:.2f} s")
    assert longest < worker_offline_after().total_seconds(), "the busy worker looked dead"
    started = Counter(run_id for kind, run_id, _ in events(tmp_path) if kind == "start")
    assert set(started) == {str(r.pk) for r in runs} and max(started.values()) == 1
