"""Subflows: a flow called inside a flow run runs as a child flow run, linked to its parent and
to a task run in the parent that stands for the call (so it shows in the parent's task list).
Runs of a flow need the flow's row: deployments.services.subflows resolves the flow by name and
calls `insert_subflow_run` here."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from orchestrator.core.errors import InvalidTransition, ValidationError
from orchestrator.core.states import StateType
from runs.models import FlowRun
from runs.services.creation import insert_flow_run
from runs.services.task_runs import create_task_run

S = StateType


def insert_subflow_run(
    parent: FlowRun, *, flow_id: Any, parameters: dict[str, Any], task_key: str, dynamic_key: str, flow_name: str
) -> FlowRun:
    """A SCHEDULED child run of `parent` (which must be RUNNING), and the PENDING task run that
    stands for it in the parent, in one transaction. The child belongs to no queue (no worker
    claims it: the parent's process runs it) and carries the parent's tags."""
    if parent.state_type != S.RUNNING:
        raise InvalidTransition(
            parent.state_type, S.RUNNING, f"flow run {parent.name!r} is not running, so it cannot start a subflow"
        )
    with transaction.atomic():
        placeholder = create_task_run(
            parent.pk, name=f"{flow_name}-{dynamic_key}", task_key=task_key, dynamic_key=dynamic_key, tags=["subflow"]
        )
        child = insert_flow_run(
            flow_id=flow_id,
            name=None,
            parameters=parameters,
            tags=list(parent.tags or []),
            parent_flow_run=parent,
            parent_task_run=placeholder,
            created_by=f"subflow of {parent.name}",
        )
    return child


def unfinished_children(run: FlowRun) -> list[FlowRun]:
    """The child runs of `run` that have not ended (cancelling a parent cancels these)."""
    return list(FlowRun.objects.filter(parent_flow_run=run).unfinished().select_related("flow"))


def record_flow_run_result(run: FlowRun, *, result_uri: str) -> FlowRun:
    """Where the run's persisted return value is (a URL of result storage; the value itself is
    never put in the database). Raises ValidationError for an empty or over-long URL."""
    result_uri = (result_uri or "").strip()
    if not result_uri or len(result_uri) > 1000:
        raise ValidationError(
            "A result location is a URL of at most 1000 characters.", {"result_uri": ["Give the result's URL."]}
        )
    FlowRun.objects.filter(pk=run.pk).update(result_uri=result_uri)
    run.result_uri = result_uri
    return run
