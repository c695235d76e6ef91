"""Creating runs through the REST API: latency and rate with a few clients, and a burst of
concurrent creates while workers are busy.

    .venv/bin/python benchmarks/api_create.py [--clients 4] [--per-client 100] [--burst 500]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_bench .venv/bin/python benchmarks/api_create.py

gunicorn serves the API as `make up` runs it (2 processes x 16 threads). Part 1: --clients
threads each POST /api/deployments/ID/runs/ --per-client times back to back (keep-alive
sessions); it prints p50/p90 and the overall creates per second, and every error. Part 2: two
workers keep the machine busy with the runs created so far (each flow sleeps 0.5 s), and --burst
creates are sent at the same moment, each on a fresh connection; every call must be answered 201,
or 503 with Retry-After; the table counts each kind of answer and every connection error (reset,
refused, timeout).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-client", type=int, default=100)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    h.setup_django()
    import requests

    from accounts.services import create_api_key
    from deployments.models import Deployment
    from workpools.services import create_work_pool

    tag = f"create-{os.getpid()}"
    pool = create_work_pool(tag)
    marker = tempfile.mkdtemp()
    dep = h.counting_deployment(pool, tag, marker)
    Deployment.objects.filter(pk=dep.pk).update(parameters={"marker_dir": marker, "seconds": 0.5})
    _, key = create_api_key(f"{tag}-trigger", scope="trigger")
    web, url = h.start_web()
    target = f"{url}/api/deployments/{dep.pk}/runs/"
    headers = {"Authorization": f"Bearer {key}"}
    workers: list = []
    try:
        # --- part 1: a few clients back to back -------------------------------------------------
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        lock = threading.Lock()

        def client() -> None:
            session = requests.Session()
            session.headers.update(headers)
            for _ in range(args.per_client):
                began = time.perf_counter()
                try:
                    response = session.post(target, json={}, timeout=30)
                    kind = str(response.status_code)
                except requests.RequestException as error:
                    kind = type(error).__name__
                took = time.perf_counter() - began
                with lock:
                    if kind == "201":
                        latencies.append(took)
                    else:
                        errors[kind] += 1

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        h.table(
            f"API create-run, {args.clients} concurrent clients x {args.per_client} creates (keep-alive)",
            ["p50 ms", "p90 ms", "max ms", "creates/s", "errors"],
            [
                (
                    h.median(latencies) * 1000,
                    h.p(latencies, 0.9) * 1000,
                    max(latencies) * 1000,
                    len(latencies) / elapsed,
                    dict(errors) or 0,
                )
            ],
        )

        # --- part 2: a burst while workers are busy -------------------------------------------
        workers = [h.start_worker(pool.name, "--name", f"{tag}-w{i}", "--limit", "8") for i in range(2)]
        answers: Counter[str] = Counter()
        retry_after_missing = 0
        gate = threading.Event()

        def one() -> None:
            nonlocal retry_after_missing
            gate.wait()
            try:
                response = requests.post(target, json={}, headers=headers, timeout=120)
                kind = str(response.status_code)
                if response.status_code == 503 and "Retry-After" not in response.headers:
                    with lock:
                        retry_after_missing += 1
            except requests.ConnectionError as error:
                kind = (
                    "connection reset"
                    if "reset" in str(error).lower()
                    else f"connection error ({type(error).__name__})"
                )
            except requests.RequestException as error:
                kind = type(error).__name__
            with lock:
                answers[kind] += 1

        burst = [threading.Thread(target=one) for _ in range(args.burst)]
        for t in burst:
            t.start()
        time.sleep(1)  # every thread is waiting at the gate
        began = time.perf_counter()
        gate.set()
        for t in burst:
            t.join()
        elapsed = time.perf_counter() - began
        h.table(
            f"Burst of {args.burst} concurrent creates (fresh connections) while 2 workers run flows",
            ["answer", "count"],
            sorted(answers.items()) + [("503 without Retry-After", retry_after_missing), ("seconds for all", elapsed)],
        )
    finally:
        h.stop(*workers, web)


if __name__ == "__main__":
    main()
