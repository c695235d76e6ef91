"""Event-driven pickup: wake-ups instead of polls, runs claimed at their time, isolated forks,
and a LISTEN that survives a database restart. Nothing here asserts a duration: waits have
deadlines, and speed is reported by benchmarks/."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs import wakeups
from runs.models import FlowRun
from tests.conftest import IN_CI, wait_for
from tests.workpools.test_runworker import collect, deployment, events, start_worker, stop
from workpools.infrastructure.launcher import forget_inherited_connections
from workpools.services import claiming, create_work_pool

S = StateType


def _in_thread(fn: Any) -> None:
    """Run `fn` in another thread with its own database connection (its own transaction)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True)
def test_a_run_created_while_the_worker_is_claiming_is_picked_up_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = create_work_pool("wake")
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    client = DirectClient()
    worker = client.register_worker("wake", name="w1")
    created: list[Any] = []

    # Between the claim's look at the due runs and its answer, another process creates a run.
    real_due_runs = claiming._due_runs

    def due_runs_then_create(*args: Any) -> Any:
        result = real_due_runs(*args)
        if not created:
            # Yesterday's slot: due long before the claim's horizon, so only the wake-up
            # (not the due time) can tell the worker about it.
            _in_thread(lambda: created.append(create_flow_run(dep, scheduled_at=timezone.now() - timedelta(days=1))[0]))
            # What the claim saw is what it had read before the run existed.
            return result[0], FlowRun.objects.none()
        return result

    monkeypatch.setattr(claiming, "_due_runs", due_runs_then_create)
    assert client.claim_runs(worker) == []
    assert created
    # The idle worker's wait ends on the wake-up buffered during the claim, well before its timeout.
    assert client.wait_for_runs(worker, timeout=60) is True
    claimed = client.claim_runs(worker)
    assert [run.id for run in claimed] == [str(created[0].pk)]
    client.mark_worker_stopped(worker)


@pytest.mark.django_db(transaction=True)
def test_a_listener_hears_a_committed_run_and_not_a_rolled_back_one(tmp_path: Path) -> None:
    pool = create_work_pool("hear")
    other = create_work_pool("other")
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    elsewhere = deployment(other, "count-elsewhere", "count_me", {"marker_dir": str(tmp_path)})
    with wakeups.listener_for([pool.pk]) as listener:
        assert listener.mechanism == ("postgres" if connection.vendor == "postgresql" else "local")

        def rolled_back() -> None:
            from django.db import transaction

            with pytest.raises(RuntimeError), transaction.atomic():
                create_flow_run(dep)
                raise RuntimeError("changed my mind")

        _in_thread(rolled_back)
        _in_thread(lambda: create_flow_run(elsewhere))  # another pool's run
        assert listener.wait(0.5) is False
        _in_thread(lambda: create_flow_run(dep))
        assert wait_for(lambda: listener.wait(0.5), 30, "the wake-up")
        assert listener.wait(0.2) is False  # consumed: one claim serves every wake-up so far


@pytest.mark.django_db(transaction=True)
def test_a_future_run_is_claimed_at_its_time_not_at_a_later_poll(tmp_path: Path) -> None:
    pool = create_work_pool("later")
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    client = DirectClient()
    worker = client.register_worker("later", name="w1")
    assert client.claim_runs(worker) == []
    due = timezone.now() + timedelta(seconds=1.5)
    run, _ = create_flow_run(dep, scheduled_at=due)
    rounds = 0
    claimed: list[Any] = []
    while not claimed:
        rounds += 1
        assert rounds <= 4, "the worker kept polling instead of sleeping until the run was due"
        # A poll every 60 s would take the whole timeout; the wait ends when the run is due.
        client.wait_for_runs(worker, timeout=60)
        claimed = client.claim_runs(worker)
    run.refresh_from_db()
    assert run.state_type == S.PENDING
    assert run.state_at >= due  # not claimed early either
    client.mark_worker_stopped(worker)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_polling_rarely_picks_up_a_new_run_from_its_wake_up(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    pool = create_work_pool("woken")
    dep = deployment(pool, "count", "count_me", {"marker_dir": str(tmp_path)})
    worker = start_worker(subprocess_env, "woken", "--poll-interval", "600")
    output = collect(worker)
    try:
        wait_for(lambda: "polling for work" in "".join(output), 60, "the worker to start", processes=[worker])
        assert "wake-ups" in "".join(output)
        # Give it something to look at first, so it is idle in its (600 s) wait when runs come.
        first, _ = create_flow_run(dep)
        wait_for(lambda: FlowRun.objects.get(pk=first.pk).state_type == S.COMPLETED, 60, "the first run")
        second, _ = create_flow_run(dep)
        wait_for(lambda: FlowRun.objects.get(pk=second.pk).state_type == S.COMPLETED, 60, "the woken run")
    finally:
        assert stop(worker) == 0, "".join(output)
    assert sorted(e[1] for e in events(tmp_path) if e[0] == "end") == sorted([str(first.pk), str(second.pk)])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_forked_child_never_uses_its_parents_database_connection() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        parent_backend = cursor.fetchone()[0]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            os.close(read_end)
            forget_inherited_connections()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                os.write(write_end, str(cursor.fetchone()[0]).encode())
            connection.close()  # closes the child's own connection only
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_backend = int(pipe.read() or 0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert child_backend and child_backend != parent_backend
    # The parent's session survived the child's connection ending.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] == parent_backend


# --- LISTEN across a database restart, on a PostgreSQL cluster of our own ----------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Any]]:
    """A throw-away PostgreSQL cluster on a free port (never the shared one), run as the postgres
    user. Yields (conninfo, restart)."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not binaries or shutil.which("runuser") is None or os.geteuid() != 0:
        message = "needs PostgreSQL's server binaries and root (to run them as the postgres user)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    bin_dir = Path(binaries[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="orch-own-pg-"))
    shutil.chown(base, "postgres")
    data = base / "data"
    port = _free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"

    def start() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")

    def restart() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        start()

    start()
    try:
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres", restart
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


def _notify(conninfo: str, pool_id: Any) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, '')", [wakeups.channel(pool_id)])


@pytest.mark.slow
def test_listen_survives_a_database_restart(own_postgres: tuple[str, Any]) -> None:
    conninfo, restart = own_postgres
    pool_id = uuid.uuid4()
    listener = wakeups.PostgresListener(conninfo)
    listener.listen(pool_id)
    try:
        _notify(conninfo, pool_id)
        assert wait_for(lambda: listener.wait(0.5), 30, "the wake-up before the restart")
        restart()
        # Back after the outage: it reconnects and reports a wake-up (it may have missed some).
        assert wait_for(lambda: listener.wait(0.5), 60, "the listener to reconnect")
        assert listener.reconnects >= 1
        # ...and it listens again: a new notification reaches it.
        _notify(conninfo, pool_id)
        assert wait_for(lambda: listener.wait(0.5), 30, "the wake-up after the restart")
    finally:
        listener.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_idle_worker_keeps_one_listening_connection(tmp_path: Path) -> None:
    pool = create_work_pool("listening")
    client = DirectClient()
    worker = client.register_worker("listening", name="w1")
    client.claim_runs(worker)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s", [f'LISTEN "{wakeups.channel(pool.pk)}"']
        )
        assert cursor.fetchone()[0] == 1
    client.mark_worker_stopped(worker)
