"""A worker told to poll particular queues: a queue that does not exist is refused before the
worker shows ONLINE, and a queue deleted while it runs is reported and stops the worker,
instead of an ONLINE worker polling nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestrator.direct import DirectClient
from tests.conftest import wait_for
from tests.workpools.test_runworker import collect, start_worker, stop
from workpools import services
from workpools.health import worker_health
from workpools.models import Worker, WorkPool
from workpools.worker import WorkerLoop

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # on PostgreSQL the command reopens its connection (application_name)
def test_an_unknown_queue_is_refused_and_leaves_no_online_worker(pool: WorkPool) -> None:
    with pytest.raises(CommandError) as error:
        call_command("runworker", "--pool", pool.name, "--queue", "no-such-queue", "--run-once", stdout=io.StringIO())
    assert str(error.value) == "Work pool 'my-process-pool' has no queue 'no-such-queue'."
    assert [worker_health(w).status for w in Worker.objects.all()] in ([], ["OFFLINE"])


def test_a_worker_whose_queue_is_deleted_says_so_and_stops(pool: WorkPool) -> None:
    queue = services.create_work_queue(pool, "nightly")
    client = DirectClient()
    info = client.register_worker(pool.name, name="w1", queues=[str(queue.pk)])
    out = io.StringIO()
    loop = WorkerLoop(info, client=client, out=out, poll_interval=0.05)
    assert not loop.claim_and_start() and not loop.stopping
    queue_id = queue.pk
    services.delete_work_queue(queue)
    loop.claim_and_start()
    assert loop.stopping and loop.exit_code == 1
    assert f"no queue with id {queue_id} any more" in out.getvalue()
    assert "Stopping" in out.getvalue()
    assert loop.finished()  # no child to wait for: the loop ends at once


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_whose_queue_is_deleted_exits_1_and_shows_offline(
    pool: WorkPool, subprocess_env: dict[str, str]
) -> None:
    queue = services.create_work_queue(pool, "nightly")
    worker = start_worker(subprocess_env, pool.name, "--queue", "nightly", "--name", "w1")
    output = collect(worker)
    try:
        wait_for(lambda: "polling for work" in "".join(output), 60, "the worker to start", processes=[worker])
        services.delete_work_queue(queue)
        code = worker.wait(timeout=60)
    finally:
        stop(worker)
    text = "".join(output)
    assert code == 1, text
    assert "has no queue with id" in text and "Stopping: restart the worker with queues that exist." in text
    assert "The worker stopped: it could not go on polling" in text
    assert worker_health(Worker.objects.get(name="w1")).status == "OFFLINE"
