from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import OrchestratorError, ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services import set_state
from workpools.models import WorkPool, WorkQueue
from workpools.services import create_work_queue, delete_work_pool, delete_work_queue, get_work_queue

pytestmark = pytest.mark.django_db


def test_a_queue_can_be_found_by_name_or_id(pool: WorkPool) -> None:
    queue = create_work_queue(pool, "tutorial_queue", tags=["tutorial"])
    assert get_work_queue(pool, "tutorial_queue") == queue
    assert get_work_queue(pool, str(queue.pk)) == queue
    with pytest.raises(OrchestratorError, match="has no queue 'nope'"):
        get_work_queue(pool, "nope")


def test_new_queues_go_after_existing_ones_unless_given_a_priority(pool: WorkPool) -> None:
    assert create_work_queue(pool, "second").priority == 2
    assert create_work_queue(pool, "first", priority=1).priority == 1


def test_bad_queue_input_is_refused(pool: WorkPool) -> None:
    with pytest.raises(ValidationError, match="negative"):
        create_work_queue(pool, "q", concurrency_limit=-1)
    with pytest.raises(ValidationError, match="already has a queue named 'default'"):
        create_work_queue(pool, "default")
    assert pool.queues.count() == 1


def test_deleting_a_queue_moves_its_scheduled_runs_to_the_default_queue(
    pool: WorkPool, make_deployment: Any, make_run: Any
) -> None:
    queue = create_work_queue(pool, "tutorial_queue", tags=["tutorial"])
    run = make_run(make_deployment("leo", tags=["tutorial"]))
    assert run.work_queue == queue
    assert delete_work_queue(queue) == 1
    assert FlowRun.objects.get(pk=run.pk).work_queue.name == "default"


def test_the_default_queue_cannot_be_deleted(pool: WorkPool) -> None:
    with pytest.raises(OrchestratorError, match="cannot be deleted"):
        delete_work_queue(pool.queues.get(name="default"))


def test_a_pool_with_runs_in_flight_cannot_be_deleted(pool: WorkPool, run: FlowRun) -> None:
    set_state(run, StateType.PENDING)
    with pytest.raises(OrchestratorError, match="1 run in flight"):
        delete_work_pool(pool)
    assert WorkPool.objects.filter(pk=pool.pk).exists()


def test_a_pool_used_by_deployments_cannot_be_deleted(pool: WorkPool, deployment: Any) -> None:
    with pytest.raises(OrchestratorError, match="used by deployments \\(leonardo_dicapriflow/leonardo-deployment\\)"):
        delete_work_pool(pool)


def test_an_unused_pool_is_deleted_with_its_queues(make_pool: Any) -> None:
    pool = make_pool("scratch")
    delete_work_pool(pool)
    assert not WorkQueue.objects.filter(pool_id=pool.pk).exists()
