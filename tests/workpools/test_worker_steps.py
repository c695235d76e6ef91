"""The worker loop one step at a time, with real child processes.

The child here is a plain sleeping Python process: these tests are about how the worker
starts, watches, cancels and stops processes. Running real flows through the engine is in
test_runworker.py.
"""

from __future__ import annotations

import io
import signal
import sys
from typing import Any

import pytest

from orchestrator.core.states import StateType
from orchestrator.direct import DirectClient
from runs.models import FlowRun
from runs.services import request_cancellation, set_state
from tests.conftest import wait_for
from workpools.infrastructure import ProcessInfrastructure
from workpools.worker import WorkerLoop

pytestmark = pytest.mark.django_db
S = StateType


class SleepingProcess(ProcessInfrastructure):
    """Starts `python -c 'sleep'` instead of the engine; SIGTERM ends it like a flow would."""

    def command(self, run: Any) -> list[str]:
        return [sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(60)"]


def worker_loop(pool: Any, name: str, **options: Any) -> WorkerLoop:
    """A registered worker's loop on the direct transport."""
    client = DirectClient()
    return WorkerLoop(client.register_worker(pool.name, name=name), client=client, out=io.StringIO(), **options)


@pytest.fixture
def loop(pool: Any) -> WorkerLoop:
    w = worker_loop(pool, "w1", infrastructure=SleepingProcess(), kill_after=2, grace=0)
    yield w
    for child in w.children.values():
        child.kill()


def started(loop: WorkerLoop, run: FlowRun) -> Any:
    assert loop.claim_and_start()
    child = loop.children[str(run.pk)]
    wait_for(lambda: "child up" in loop.out.getvalue(), 10, "the worker step")
    return child


def test_a_claimed_run_is_started_in_its_own_process_group(loop: WorkerLoop, run: FlowRun) -> None:
    child = started(loop, run)
    run.refresh_from_db()
    assert run.state_type == S.PENDING and run.pid == child.pid
    import os

    assert os.getpgid(child.pid) == child.pid  # its own session: Ctrl-C at the worker does not reach it
    assert f"{run.name} | child up" in loop.out.getvalue()


def test_a_process_killed_with_sigkill_leaves_its_run_crashed(loop: WorkerLoop, run: FlowRun) -> None:
    child = started(loop, run)
    set_state(FlowRun.objects.get(pk=run.pk), S.RUNNING)  # as the engine would
    child.popen.send_signal(signal.SIGKILL)
    wait_for(lambda: child.popen.poll() is not None, 10, "the worker step")
    assert loop.reap_children()
    run.refresh_from_db()
    assert run.state_type == S.CRASHED
    assert "was killed by SIGKILL while the run was Running" in run.state_message


def test_cancelling_a_run_stops_its_process_and_ends_it_cancelled(loop: WorkerLoop, run: FlowRun) -> None:
    child = started(loop, run)
    request_cancellation(FlowRun.objects.get(pk=run.pk), by="alice")
    assert loop.handle_cancellations()
    wait_for(lambda: child.popen.poll() is not None, 10, "the worker step")
    loop.reap_children()
    run.refresh_from_db()
    assert run.state_type == S.CANCELLED
    assert child.popen.returncode == -signal.SIGTERM
    assert not loop.children


def test_a_process_that_ignores_sigterm_is_killed(pool: Any, run: FlowRun) -> None:
    class Stubborn(ProcessInfrastructure):
        def command(self, run: Any) -> list[str]:
            code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('child up', flush=True); time.sleep(60)"
            return [sys.executable, "-c", code]

    loop = worker_loop(pool, "w2", infrastructure=Stubborn(), kill_after=0.5)
    child = started(loop, run)
    request_cancellation(FlowRun.objects.get(pk=run.pk), by="alice")
    loop.handle_cancellations()
    wait_for(loop.handle_cancellations, 10, "the escalation to SIGKILL after kill_after")
    wait_for(lambda: child.popen.poll() is not None, 10, "the worker step")
    loop.reap_children()
    run.refresh_from_db()
    assert run.state_type == S.CANCELLED
    assert child.popen.returncode == -signal.SIGKILL


def test_a_stop_signal_stops_claiming_and_stops_children_after_the_grace(loop: WorkerLoop, make_run: Any) -> None:
    first = make_run()
    child = started(loop, first)
    make_run()  # another due run that must not be claimed after the signal
    loop.on_signal(signal.SIGTERM, None)
    assert not loop.claim_and_start()
    assert loop.handle_stop()  # grace=0: stop it now
    wait_for(lambda: child.popen.poll() is not None, 10, "the worker step")
    loop.reap_children()
    first.refresh_from_db()
    assert first.state_type == S.CRASHED
    assert first.state_message == "The worker shut down and stopped the flow run's process."
    assert loop.finished()
    assert FlowRun.objects.filter(state_type=S.SCHEDULED).count() == 1


def test_a_restarted_worker_adopts_live_processes_and_crashes_lost_ones(
    pool: Any, make_run: Any, loop: WorkerLoop
) -> None:
    alive_run, lost_run = make_run(), make_run()
    started(loop, alive_run)
    loop.claim_and_start()  # starts the second one too
    lost = loop.children[str(lost_run.pk)]
    lost.popen.kill()
    wait_for(lambda: lost.popen.poll() is not None, 10, "the worker step")

    restarted = worker_loop(pool, "w1", infrastructure=SleepingProcess())
    restarted.reconcile()
    assert list(restarted.children) == [str(alive_run.pk)]
    lost_run.refresh_from_db()
    assert lost_run.state_type == S.CRASHED
    assert "restarted" in lost_run.state_message
    # The adopted process is watched: when it ends, the run is settled.
    loop.children[str(alive_run.pk)].popen.kill()
    loop.children[str(alive_run.pk)].popen.wait()
    assert restarted.reap_children()
    alive_run.refresh_from_db()
    assert alive_run.state_type == S.CRASHED


def test_a_run_that_cannot_be_started_fails_with_the_reason(pool: Any, run: FlowRun) -> None:
    class Broken(ProcessInfrastructure):
        def command(self, run: Any) -> list[str]:
            return ["/nonexistent/python"]

    loop = worker_loop(pool, "w3", infrastructure=Broken())
    loop.claim_and_start()
    run.refresh_from_db()
    assert run.state_type == S.FAILED
    assert "could not start the flow run: FileNotFoundError" in run.state_message


def test_job_variables_layer_pool_then_deployment_then_run(pool: Any, make_deployment: Any, make_run: Any) -> None:
    from workpools.infrastructure import job_variables_for

    pool.job_variables = {"env": {"A": "pool", "B": "pool"}, "working_dir": "/srv"}
    pool.save()
    dep = make_deployment("jv", job_variables={"env": {"B": "deployment", "C": "deployment"}})
    run = make_run(dep)
    FlowRun.objects.filter(pk=run.pk).update(job_variables={"env": {"C": "run"}})
    run = FlowRun.objects.with_related().get(pk=run.pk)
    # Under them all, the defaults of the pool's base job template.
    assert job_variables_for(run) == {
        "env": {"A": "pool", "B": "deployment", "C": "run"},
        "working_dir": "/srv",
        "command": None,
        "stream_output": True,
    }
