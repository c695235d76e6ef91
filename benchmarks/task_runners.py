"""What a task run costs on each task runner: 1,000 trivial tasks and 16 CPU-bound ones.

    .venv/bin/python benchmarks/task_runners.py [--trivial 1000] [--cpu 16] [--workers 2] [--runners thread,dask,ray]

Uses a throw-away data directory (SQLite) unless DATABASE_URL is set. For each runner it runs
one flow (an ad-hoc run, as `python flow.py` does) that maps a trivial task over `--trivial`
inputs, then a CPU-bound task (a pure-Python loop of about `--cpu-seconds` on one core) over
`--cpu` inputs, and prints the wall time of each map from its first submit to its last result,
with the per-task overhead in ms, and the time spent outside the maps (starting and stopping
the temporary cluster: a LocalCluster of `--workers` process workers of one thread, a local Ray
with `--workers` CPUs, each started by the runner as a run without an address does):
  trivial: wall / tasks (the task does nothing, so this is what recording a task run costs);
  CPU-bound: (wall - tasks x one task's time / parallelism) / tasks x parallelism.
Every task run is recorded with its states and logs, as in production.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def burn(seconds_of_work: int) -> int:
    total = 0
    for i in range(seconds_of_work):
        total += i * i % 7
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trivial", type=int, default=1000)
    parser.add_argument("--cpu", type=int, default=16)
    parser.add_argument("--cpu-seconds", type=float, default=0.5, help="Work per CPU-bound task on one core.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runners", default="thread,dask,ray")
    args = parser.parse_args()
    os.environ.setdefault("ORCHESTRATOR_HOME", tempfile.mkdtemp(prefix="orch-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    sys.path.insert(0, str(ROOT))
    import logging

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("orchestrator.runs").setLevel(logging.WARNING)  # 1,000 console lines would time the terminal
    logging.getLogger("distributed").setLevel(logging.WARNING)

    from orchestrator import flow, task
    from orchestrator.task_runners import DaskTaskRunner, RayTaskRunner, ThreadTaskRunner

    # How many loop steps make --cpu-seconds here, measured once.
    steps = 200_000
    started = time.perf_counter()
    burn(steps)
    one = time.perf_counter() - started
    steps = int(steps * args.cpu_seconds / one)
    started = time.perf_counter()
    burn(steps)
    one_task = time.perf_counter() - started

    @task
    def trivial(x: int) -> int:
        return x

    @task
    def cpu_bound(steps: int) -> int:
        return burn(steps)

    figures: list[tuple[str, str, int, float, float]] = []

    def measure(name: str, runner: Any, parallelism: int) -> None:
        @flow(name=f"bench-{name}", task_runner=runner)
        def bench() -> None:
            started = time.perf_counter()
            assert [f.result() for f in trivial.map(range(args.trivial))] == list(range(args.trivial))
            wall = time.perf_counter() - started
            figures.append((name, f"{args.trivial} trivial", args.trivial, wall, wall / args.trivial * 1000))
            started = time.perf_counter()
            [f.result() for f in cpu_bound.map([steps] * args.cpu)]
            wall = time.perf_counter() - started
            ideal = args.cpu * one_task / parallelism
            overhead = max(0.0, wall - ideal) / args.cpu * parallelism * 1000
            figures.append((name, f"{args.cpu} CPU-bound", args.cpu, wall, overhead))

        bench()

    wanted = args.runners.split(",")
    print(f"One CPU-bound task takes {one_task:.2f} s on one core here; {os.cpu_count()} cores, shared.")
    runners: list[tuple[str, Any, int]] = []
    if "thread" in wanted:
        runners.append(("thread", ThreadTaskRunner(), 1))  # the GIL: CPU-bound threads take turns
    if "dask" in wanted:
        cluster = {"n_workers": args.workers, "threads_per_worker": 1}  # process workers
        runners.append(("dask", DaskTaskRunner(cluster_kwargs=cluster), args.workers))
    if "ray" in wanted:
        init = {"num_cpus": args.workers, "object_store_memory": 100 * 1024 * 1024, "log_to_driver": False}
        runners.append(("ray", RayTaskRunner(init_kwargs=init), args.workers))
    for name, runner, parallelism in runners:
        started = time.perf_counter()
        measure(name, runner, parallelism)
        total = time.perf_counter() - started
        maps = sum(wall for runner_name, _, _, wall, _ in figures if runner_name == name)
        print(
            f"{name}: the flow run took {total:.1f} s, of which {total - maps:.1f} s outside the maps (cluster start and stop)"
        )
    print()
    print(f"{'runner':<8} {'tasks':<14} {'wall (s)':>9} {'per task overhead (ms)':>24}")
    for name, what, _, wall, overhead in figures:
        print(f"{name:<8} {what:<14} {wall:>9.2f} {overhead:>24.1f}")


if __name__ == "__main__":
    main()
