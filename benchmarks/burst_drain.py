"""How fast idle workers drain a burst of runs, each executed exactly once.

    .venv/bin/python benchmarks/burst_drain.py [--runs 1000] [--workers 1 2]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_bench .venv/bin/python benchmarks/burst_drain.py --workers 2

For each worker count: starts that many real `runworker`s on a fresh pool (pre-warmed launchers,
no --limit), waits until they poll, inserts --runs runs at once (one bulk insert, as the scheduler
does), and measures from the insert's commit (the insert itself is not counted) to the first claim and to the last run finished. Each
execution is counted inside the flow (tests/flows/counting.py), and the benchmark fails if any run
ran twice or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    h.setup_django()
    rows = [drain(args.runs, workers) for workers in args.workers]
    h.table(
        f"Burst of {args.runs} runs drained by idle workers (pre-warmed launchers, no limit)",
        ["workers", "first claim s", "drained s", "runs/s", "executed once", "peak in flight"],
        rows,
    )


def drain(runs: int, workers: int) -> tuple[object, ...]:
    from deployments.services.runs import build_flow_runs
    from runs.models import FlowRun
    from runs.services import insert_flow_runs
    from workpools.services import create_work_pool

    tag = f"burst-{os.getpid()}-{workers}"
    pool = create_work_pool(tag)
    marker = tempfile.mkdtemp()
    dep = h.counting_deployment(pool, tag, marker)
    procs = [h.start_worker(pool.name, "--name", f"{tag}-w{i}") for i in range(workers)]
    try:
        from django.utils import timezone

        now = timezone.now()
        burst = build_flow_runs(dep, [now] * runs)
        insert_flow_runs(burst)
        start = time.monotonic()  # committed: the runs are claimable from here
        first = None
        peak = 0
        ours = FlowRun.objects.filter(work_pool=pool)
        while True:
            left = ours.exclude(state_type__in=["COMPLETED", "FAILED", "CRASHED"]).count()
            if first is None and ours.exclude(state_type="SCHEDULED").exists():
                first = time.monotonic() - start
            peak = max(peak, ours.filter(state_type__in=["PENDING", "RUNNING"]).count())
            if not left:
                break
            if time.monotonic() - start > 1800:
                raise SystemExit(f"{left} runs still unfinished after 30 minutes")
            time.sleep(0.2)
        drained = time.monotonic() - start
    finally:
        h.stop(*procs)
    counts = h.executions(marker)
    once = len(counts) == runs and set(counts.values()) == {1}
    failed = ours.exclude(state_type="COMPLETED").count()
    assert once and not failed, (
        f"{failed} runs did not complete; executions: {len(counts)} runs, max {max(counts.values(), default=0)}"
    )
    return workers, first or 0.0, drained, runs / drained, "yes", peak


if __name__ == "__main__":
    main()
