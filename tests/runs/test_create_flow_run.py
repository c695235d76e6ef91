"""Creating runs: parameters, names, routing to queues, idempotency."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deployments.models import Deployment
from deployments.services import create_flow_run
from orchestrator.core.errors import ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun
from workpools.models import WorkPool, WorkQueue

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "greeting": {"type": "string", "default": "Hello"}},
    "required": ["name"],
}


def test_a_new_run_is_scheduled_with_a_readable_name_and_merged_parameters(make_deployment: Any) -> None:
    dep = make_deployment(parameters={"name": "Leo", "greeting": "Hello"}, parameter_schema=SCHEMA)
    run, created = create_flow_run(dep, parameters={"greeting": "Ciao"}, created_by="api:ci")
    assert created
    assert re.fullmatch(r"[a-z]+-[a-z]+", run.name), run.name
    assert run.parameters == {"name": "Leo", "greeting": "Ciao"}
    assert (run.state_type, run.state_name) == (StateType.SCHEDULED, "Scheduled")
    assert run.flow_id == dep.flow_id and run.work_pool_id == dep.work_pool_id
    assert run.created_by == "api:ci"
    assert list(run.states.values_list("name", flat=True)) == ["Scheduled"]


def test_parameters_the_flow_does_not_take_are_refused_by_name(make_deployment: Any) -> None:
    dep = make_deployment(parameters={"name": "Leo"}, parameter_schema=SCHEMA)
    with pytest.raises(ValidationError) as excinfo:
        create_flow_run(dep, parameters={"nmae": "typo"})
    assert excinfo.value.errors == {"nmae": ["The flow takes no parameter 'nmae'."]}
    assert not FlowRun.objects.exists()


def test_a_missing_required_parameter_is_refused(make_deployment: Any) -> None:
    dep = make_deployment(parameter_schema=SCHEMA)
    with pytest.raises(ValidationError, match="'name'"):
        create_flow_run(dep)
    assert not FlowRun.objects.exists()


def test_the_same_idempotency_key_returns_the_same_run(deployment: Deployment) -> None:
    first, created_first = create_flow_run(deployment, idempotency_key="button-123")
    again, created_again = create_flow_run(deployment, idempotency_key="button-123")
    assert (created_first, created_again) == (True, False)
    assert again.pk == first.pk
    assert FlowRun.objects.count() == 1


def test_a_deployment_with_its_own_queue_goes_there(make_deployment: Any, pool: WorkPool) -> None:
    special = WorkQueue.objects.create(pool=pool, name="special", priority=5)
    run, _ = create_flow_run(make_deployment(work_queue=special))
    assert run.work_queue == special


def test_a_tag_filtered_queue_takes_deployments_carrying_its_tags(make_deployment: Any, pool: WorkPool) -> None:
    tutorial = WorkQueue.objects.create(pool=pool, name="tutorial_queue", priority=10, tags=["tutorial"])
    WorkQueue.objects.create(pool=pool, name="dev_queue", priority=20, tags=["dev", "tutorial"])
    leo = make_deployment("leonardo-deployment", tags=["tutorial", "test"])
    marvin = make_deployment("marvin-deployment", tags=["tutorial", "dev"])
    plain = make_deployment("untagged")
    assert create_flow_run(leo)[0].work_queue == tutorial
    assert create_flow_run(marvin)[0].work_queue == tutorial  # first matching queue by priority
    assert create_flow_run(plain)[0].work_queue.name == "default"


def test_a_pool_of_only_tag_filtered_queues_leaves_an_unmatched_run_unrouted(
    make_deployment: Any, pool: WorkPool
) -> None:
    pool.queues.all().delete()
    WorkQueue.objects.create(pool=pool, name="gpu", tags=["gpu"])
    run, _ = create_flow_run(make_deployment(tags=["cpu"]))
    assert run.work_queue is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_number_is_refused_by_name_on_every_surface(deployment: Deployment, value: float) -> None:
    with pytest.raises(ValidationError) as excinfo:
        create_flow_run(deployment, parameters={"name": "Leo", "ratio": value})
    assert excinfo.value.errors == {"ratio": ["This value must be a finite number."]}
    assert not FlowRun.objects.exists()
