"""Trigger -> RUNNING and -> COMPLETED over sequential runs triggered through the REST API.

    .venv/bin/python benchmarks/worker_pickup.py [--runs 50] [--gap 0.3] [--cold-start] [--remote] [--profile]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_bench .venv/bin/python benchmarks/worker_pickup.py

Starts gunicorn (as `make up` runs it) and one real `runworker`, then triggers runs one at a time
with POST /api/deployments/ID/runs/ (a trigger key), each after the previous one finished and a
`--gap` in which the worker is idle again. Times come from the run's state history (the
server's clock, the same machine) against the wall clock just before the POST: created ->
PENDING (claimed), -> RUNNING (the engine started the flow), -> COMPLETED. The flow is
tests/flows/counting.py:count_me (it does nothing but record that it ran).

--remote: the worker reaches the orchestrator over HTTP only (its own data directory, no
database settings), long-polling while idle. --cold-start: a fresh interpreter per run instead of
a fork of the pre-warmed launcher. --profile: each flow-run process runs under cProfile, and the
functions with the most cumulative time over all runs are printed (PENDING -> COMPLETED inside
the child).
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
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.3, help="Idle seconds between a run's end and the next trigger.")
    parser.add_argument("--cold-start", action="store_true")
    parser.add_argument("--remote", action="store_true", help="A worker over HTTP, without a database.")
    parser.add_argument("--profile", action="store_true", help="cProfile every flow-run process; print the top.")
    args = parser.parse_args()
    h.setup_django()
    import requests

    from accounts.services import create_api_key
    from runs.models import FlowRun, FlowRunState
    from workpools.services import create_work_pool

    tag = f"pickup-{os.getpid()}"
    pool = create_work_pool(tag)
    marker = tempfile.mkdtemp()
    dep = h.counting_deployment(pool, tag, marker)
    web, url = h.start_web()
    _, trigger_key = create_api_key(f"{tag}-trigger", scope="trigger")
    command = ["--name", tag]
    command += ["--cold-start"] if args.cold_start else []
    worker_env = dict(os.environ)
    profile_dir = tempfile.mkdtemp(prefix="orch-profile-") if args.profile else ""
    if profile_dir:
        worker_env["ORCHESTRATOR_PROFILE_DIR"] = profile_dir
    if args.remote:
        _, key = create_api_key(f"{tag}-worker", scope="worker", pool=pool)
        command += ["--api-url", url, "--api-key", key]
        worker_env = {k: v for k, v in worker_env.items() if k not in ("DATABASE_URL", "ORCHESTRATOR_HOME")}
        worker_env["ORCHESTRATOR_HOME"] = tempfile.mkdtemp(prefix="orch-bench-remote-")
    worker = h.start_worker(pool.name, *command, env=worker_env)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {trigger_key}"
    rows: dict[str, list[float]] = {"PENDING": [], "RUNNING": [], "COMPLETED": []}
    api_ms: list[float] = []
    try:
        for _ in range(args.runs):
            time.sleep(args.gap)
            triggered = time.time()
            began = time.perf_counter()
            response = session.post(f"{url}/api/deployments/{dep.pk}/runs/", json={})
            api_ms.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 201, response.text
            run_id = response.json()["id"]
            deadline = time.monotonic() + 60
            while not FlowRun.objects.filter(pk=run_id, state_type__in=["COMPLETED", "FAILED", "CRASHED"]).exists():
                assert time.monotonic() < deadline, "a run did not finish within 60 s"
                time.sleep(0.02)
            states = {s.type: s.timestamp.timestamp() for s in FlowRunState.objects.filter(flow_run_id=run_id)}
            assert "COMPLETED" in states, FlowRun.objects.get(pk=run_id).state_message
            for kind in rows:
                rows[kind].append(states[kind] - triggered)
    finally:
        h.stop(worker, web)
    counts = h.executions(marker)
    assert len(counts) == args.runs and set(counts.values()) == {1}, "each run must execute exactly once"
    mode = "cold start" if args.cold_start else "pre-warmed launcher"
    where = "remote worker (HTTP, long poll)" if args.remote else "worker on the database"
    h.table(
        f"Trigger through the REST API -> state, {args.runs} sequential runs, one {where}, {mode}",
        ["from the POST to", "p50 ms", "p90 ms", "max ms"],
        [("API answered 201", h.median(api_ms), h.p(api_ms, 0.9), max(api_ms))]
        + [(kind, h.median(v) * 1000, h.p(v, 0.9) * 1000, max(v) * 1000) for kind, v in rows.items()],
    )
    if profile_dir:
        print_profile(profile_dir)


def print_profile(directory: str, top: int = 25) -> None:
    import pstats

    files = [str(p) for p in Path(directory).glob("*.prof")]
    if not files:
        print("(no profiles written)")
        return
    stats = pstats.Stats(files[0])
    for file in files[1:]:
        stats.add(file)
    print(f"\nProfile of {len(files)} flow-run processes (after the fork; cumulative seconds over all of them):\n")
    print("```")
    stats.sort_stats("cumulative").print_stats(top)
    print("```")


if __name__ == "__main__":
    main()
