"""A flow that prints far more than anyone should cannot fill the worker's disk: the worker
relays at most WORKER_OUTPUT_MAX_BYTES of each run's output, then one line saying the rest is
dropped, and still reads the pipe to its end (the flow never blocks on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployments.models import Deployment, Flow
from deployments.services import create_flow_run
from orchestrator.core.states import StateType
from runs.models import FlowRun
from tests.conftest import wait_for
from tests.workpools.test_runworker import collect, start_worker, stop
from workpools.services import create_work_pool

FLOWS = Path(__file__).resolve().parents[1] / "flows"
CAP = 64 * 1024


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_flow_printing_20_mb_gets_64_kb_relayed_and_completes(subprocess_env: dict[str, str]) -> None:
    pool = create_work_pool("loud")
    flow = Flow.objects.create(name="loud")
    dep = Deployment.objects.create(
        flow=flow,
        name="loud",
        work_pool=pool,
        path=str(FLOWS),
        entrypoint="chatty.py:loud",
        parameters={"megabytes": 20},
        enforce_parameter_schema=False,
    )
    run, _ = create_flow_run(dep)
    worker = start_worker({**subprocess_env, "WORKER_OUTPUT_MAX_BYTES": str(CAP)}, "loud")
    output = collect(worker)
    try:
        wait_for(
            lambda: FlowRun.objects.filter(pk=run.pk, state_type=StateType.COMPLETED).exists(),
            300,
            "the loud run to complete",
            processes=[worker],
        )
        wait_for(lambda: "final state Completed" in "".join(output), 30, "the worker to reap the run")
    finally:
        assert stop(worker) == 0
    relayed = [line for line in output if line.startswith(f"{run.name} | ")]
    assert sum(len(line.encode()) for line in relayed) < CAP + 100 * len(relayed) + 1000
    notices = [line for line in relayed if "is not relayed (WORKER_OUTPUT_MAX_BYTES)" in line]
    assert len(notices) == 1
    assert len("".join(output).encode()) < 2 * CAP  # not 20 MB
