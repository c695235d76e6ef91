"""Start-up cost and idle memory: `manage.py workpool ls` wall time, an idle worker's RSS, and the
web app + background services' RSS when idle (the processes `make up` runs).

    .venv/bin/python benchmarks/footprint.py [--repeat 7]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_bench .venv/bin/python benchmarks/footprint.py

RSS is read from /proc (VmRSS) after each process has been idle for --settle seconds; shared
pages of forked processes are counted once per process, as `ps` does, so the sums are an upper
bound.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--settle", type=float, default=5.0, help="Seconds idle before reading RSS.")
    args = parser.parse_args()
    h.setup_django()
    from workpools.services import create_work_pool

    tag = f"footprint-{os.getpid()}"
    create_work_pool(tag)

    walls, cpus = [], []
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "workpool", "ls"], cwd=h.ROOT, check=True, capture_output=True)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds: what a busy machine cannot inflate the way it inflates wall time.
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    modules = (
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, runpy; sys.argv = ['manage.py', 'workpool', 'ls'];\n"
                "try:\n    runpy.run_path('manage.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                "import sys as s; print(len(s.modules), file=s.stderr); print(' '.join(sorted(m for m in ('celery', 'rest_framework', 'pydantic', 'kombu', 'drf_spectacular') if m in s.modules)), file=s.stderr)",
            ],
            cwd=h.ROOT,
            capture_output=True,
            text=True,
        )
        .stderr.strip()
        .splitlines()
    )
    h.table(
        f"`manage.py workpool ls` ({args.repeat} runs)",
        ["p50 wall s", "min wall s", "p50 CPU s", "modules loaded", "heavy packages loaded"],
        [
            (
                h.median(walls),
                min(walls),
                h.median(cpus),
                modules[0] if modules else "?",
                (modules[1] if len(modules) > 1 else "") or "none",
            )
        ],
    )

    worker = h.start_worker(tag, "--name", f"{tag}-w")
    web, _ = h.start_web()
    celery = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestrator",
            "worker",
            "--beat",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"{tag}@%h",
        ],
        cwd=h.ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(args.settle + 10)  # Celery takes a while to fork its pool
        launcher = h.descendants(worker.pid)
        rows = [
            ("worker (runworker)", h.rss_mb(worker.pid)),
            ("its pre-warmed launcher", sum(h.rss_mb(pid) for pid in launcher)),
            ("web: gunicorn, 2 workers", h.rss_mb(web.pid, with_children=True)),
            ("services: Celery worker + beat, 2 processes", h.rss_mb(celery.pid, with_children=True)),
        ]
        rows.append(("web + services", rows[2][1] + rows[3][1]))
    finally:
        h.stop(worker, web, celery)
    h.table("Idle resident memory (MB)", ["process", "RSS MB"], rows)


if __name__ == "__main__":
    main()
