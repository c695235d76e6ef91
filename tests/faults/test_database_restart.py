"""A PostgreSQL restart under two direct-transport workers loses nothing.

The test makes its own cluster on a free port (tests/faults/pg_cluster.py), migrates it, starts
two real `manage.py runworker` processes on it (the default, direct transport), and six runs
that each log 300 numbered lines (one every 50 ms). While they log, the cluster is shut down (every connection
cut) and started again. Then every run is COMPLETED, every line is stored exactly once, and
every flow body ran exactly once (counted from inside the flow); the same with `retries=1`,
where a lost final state used to run the whole body a second time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.pg_cluster import PrivateCluster

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "tests" / "flows"
RUNS = 6
LINES = 300

pytestmark = [pytest.mark.postgres, pytest.mark.subprocess, pytest.mark.slow]


class Process:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


SEED = """
from deployments.models import Deployment, Flow
from deployments.services import create_flow_run
from workpools.services import create_work_pool
pool = create_work_pool("faults")
flow, _ = Flow.objects.get_or_create(name="{function}")
dep = Deployment.objects.create(
    flow=flow, name="restart", work_pool=pool, path="{flows}", entrypoint="chatty.py:{function}",
    enforce_parameter_schema=False,
)
for index in range({runs}):
    create_flow_run(dep, parameters={{"marker_dir": "{marker}", "index": index, "lines": {lines}, "pause": 0.05}})
"""


def query(cluster: PrivateCluster, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(cluster.url.replace("postgres://", "postgresql://"), connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(("function", "buffer_lines"), [("numbered_lines", ""), ("numbered_lines_with_a_retry", "10")])
def test_a_database_restart_mid_run_loses_no_run_no_line_and_runs_no_body_twice(
    cluster: PrivateCluster, tmp_path: Path, function: str, buffer_lines: str
) -> None:
    """With buffer_lines, a flow keeps only that many unsent lines in memory: the rest of what
    it logs during the outage waits in a spill file."""
    marker = tmp_path / "markers"
    marker.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DATABASE_URL=cluster.url,
        ORCHESTRATOR_HOME=str(tmp_path / "home"),
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
        CELERY_BROKER_URL="filesystem://",
        ORCHESTRATOR_LOG_BUFFER_LINES=buffer_lines,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "shell", "-c", SEED.format(function=function, flows=FLOWS, marker=marker, runs=RUNS, lines=LINES))

    workers = [
        Process(
            [
                sys.executable,
                "manage.py",
                "runworker",
                "--pool",
                "faults",
                "--poll-interval",
                "0.2",
                "--name",
                f"fault-worker-{n}",
            ],
            env,
        )
        for n in range(2)
    ]
    try:

        def logging_midway() -> bool:
            # Every run RUNNING with some lines stored, none near its end.
            rows = query(
                cluster,
                "SELECT r.state_type, (SELECT count(*) FROM runs_log l WHERE l.flow_run_id = r.id "
                "AND l.message LIKE 'run % line %') FROM runs_flowrun r",
            )
            return all(state == "RUNNING" and count >= 10 for state, count in rows)

        wait_for(logging_midway, 120, "all six runs logging", processes=workers)

        cluster.stop()
        wait_for(
            # The runs' log shippers met the lost connection (and their lines wait meanwhile).
            lambda: sum(w.output().count("connection lost during storing") for w in workers) >= 2,
            60,
            "the runs to notice the lost connection",
            processes=workers,
        )
        cluster.start()

        early: list[Any] = []

        def finished() -> list[tuple[Any, ...]]:
            # One statement, one snapshot: a run seen COMPLETED must already have all its lines.
            rows = query(
                cluster,
                "SELECT r.id, r.state_type, r.state_message, (SELECT count(*) FROM runs_log l "
                "WHERE l.flow_run_id = r.id AND l.message LIKE 'run % line %') FROM runs_flowrun r",
            )
            early.extend(r for r in rows if r[1] == "COMPLETED" and r[3] < LINES)
            return rows if all(r[1] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in rows) else []

        rows = wait_for(finished, 240, "every run to finish", processes=workers)
        assert [r[1] for r in rows] == ["COMPLETED"] * RUNS, rows
        assert early == [], "runs were COMPLETED before their logs were stored"
        if buffer_lines:
            wait_for(
                lambda: "waited in a spill file" in "".join(w.output() for w in workers),
                30,
                "the spill report",
                processes=workers,
            )

        stored = Counter(m for (m,) in query(cluster, "SELECT message FROM runs_log WHERE message LIKE 'run % line %'"))
        expected = {f"run {i} line {n}" for i in range(RUNS) for n in range(1, LINES + 1)}
        assert set(stored) == expected, f"missing: {sorted(expected - set(stored))[:10]}"
        assert [m for m, c in stored.items() if c != 1] == [], "lines stored more than once"

        bodies = Counter(line.split()[0] for line in (marker / "bodies.log").read_text().splitlines())
        assert bodies == Counter({str(i): 1 for i in range(RUNS)})

    finally:
        codes: list[Any] = []
        for worker in workers:  # each one, even if stopping another failed
            try:
                codes.append(worker.stop())
            except Exception as error:
                codes.append(repr(error))
    assert codes == [0, 0], "\n".join(w.output()[-3000:] for w in workers)
