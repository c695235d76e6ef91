"""claim_runs: priority, order, pausing, every concurrency limit, no starvation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.models import WorkPool, WorkQueue
from workpools.services import (
    claim_runs,
    create_work_queue,
    register_worker,
    set_concurrency_limit,
    set_work_pool_paused,
    set_work_queue_paused,
)

pytestmark = pytest.mark.django_db
S = StateType


@pytest.fixture
def worker(pool: WorkPool) -> Any:
    return register_worker(pool.name, name="w1")[0]


def past(seconds: int) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def test_a_claim_moves_due_runs_to_pending_with_the_worker_recorded(worker: Any, make_run: Any) -> None:
    run = make_run()
    claimed = claim_runs(worker)
    assert [r.pk for r in claimed] == [run.pk]
    run.refresh_from_db()
    assert (run.state_type, run.worker_id) == (S.PENDING, worker.pk)
    assert run.states.last().message == "Claimed by worker w1"
    assert claim_runs(worker) == []  # nothing twice


def test_runs_start_in_scheduled_order_and_future_runs_wait(worker: Any, make_run: Any) -> None:
    later = make_run(scheduled_at=past(10))
    earlier = make_run(scheduled_at=past(20))
    future = make_run(scheduled_at=timezone.now() + timedelta(minutes=5))
    assert [r.pk for r in claim_runs(worker)] == [earlier.pk, later.pk]
    assert [r.pk for r in claim_runs(worker, prefetch_seconds=600)] == [future.pk]


def test_higher_priority_queues_are_served_first(
    pool: WorkPool, worker: Any, make_deployment: Any, make_run: Any
) -> None:
    urgent = create_work_queue(pool, "urgent", priority=1)
    WorkQueue.objects.filter(pool=pool, name="default").update(priority=5)
    slow_run = make_run(make_deployment("plain"), scheduled_at=past(60))  # older, but lower priority
    fast_run = make_run(make_deployment("urgent-one", work_queue=urgent), scheduled_at=past(1))
    assert [r.pk for r in claim_runs(worker, max_runs=1)] == [fast_run.pk]
    assert [r.pk for r in claim_runs(worker, max_runs=1)] == [slow_run.pk]


def test_a_paused_queue_and_a_paused_pool_are_not_served(pool: WorkPool, worker: Any, make_run: Any) -> None:
    make_run()
    queue = pool.queues.get(name="default")
    set_work_queue_paused(queue, True)
    assert claim_runs(worker) == []
    set_work_queue_paused(queue, False)
    set_work_pool_paused(pool, True)
    assert claim_runs(worker) == []
    set_work_pool_paused(pool, False)
    assert len(claim_runs(worker)) == 1


def test_a_worker_polling_named_queues_takes_only_from_them(
    pool: WorkPool, worker: Any, make_deployment: Any, make_run: Any
) -> None:
    tutorial = create_work_queue(pool, "tutorial_queue", tags=["tutorial"])
    tagged = make_run(make_deployment("leo", tags=["tutorial"]))
    untagged = make_run(make_deployment("other"))
    assert tagged.work_queue == tutorial
    assert [r.pk for r in claim_runs(worker, queue_ids=[tutorial.pk])] == [tagged.pk]
    assert FlowRun.objects.get(pk=untagged.pk).state_type == S.SCHEDULED


def test_a_poll_is_recorded_on_each_polled_queue(pool: WorkPool, worker: Any) -> None:
    claim_runs(worker)
    assert pool.queues.get().last_polled_at is not None


@pytest.mark.parametrize("where", ["worker", "queue", "pool"])
def test_concurrency_limits_are_never_overshot(pool: WorkPool, make_run: Any, where: str) -> None:
    worker = register_worker(pool.name, name="w", limit=2 if where == "worker" else None)[0]
    if where == "queue":
        set_concurrency_limit(pool.queues.get(), 2)
    if where == "pool":
        set_concurrency_limit(pool, 2)
    runs = [make_run(scheduled_at=past(10 - i)) for i in range(5)]
    assert len(claim_runs(worker)) == 2
    assert claim_runs(worker) == []  # both slots in use (PENDING)
    first = FlowRun.objects.get(pk=runs[0].pk)
    set_state(first, S.RUNNING)
    assert claim_runs(worker) == []  # RUNNING still holds its slot
    set_state(first, S.COMPLETED)
    assert len(claim_runs(worker)) == 1  # a finished run frees exactly one


def test_a_deployment_at_its_limit_does_not_starve_the_others(
    pool: WorkPool, worker: Any, make_deployment: Any, make_run: Any
) -> None:
    busy = make_deployment("busy", concurrency_limit=1)
    other = make_deployment("other")
    busy_runs = [make_run(busy, scheduled_at=past(100 - i)) for i in range(30)]  # older: first in line
    other_run = make_run(other, scheduled_at=past(1))
    claimed = claim_runs(worker, max_runs=5)
    assert [r.pk for r in claimed] == [busy_runs[0].pk, other_run.pk]
    # The next of `busy` goes only when its first finishes, still in scheduled order.
    first = FlowRun.objects.get(pk=busy_runs[0].pk)
    set_state(first, S.RUNNING)
    set_state(first, S.COMPLETED)
    assert [r.pk for r in claim_runs(worker, max_runs=5)] == [busy_runs[1].pk]


def test_a_limit_of_zero_stops_all_claims(pool: WorkPool, worker: Any, make_run: Any) -> None:
    make_run()
    set_concurrency_limit(pool, 0)
    assert claim_runs(worker) == []
