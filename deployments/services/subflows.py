"""Starting a subflow: the flow called inside a running flow run, by name (created on first
use, as a script's flow is), as a child run of that run (runs.services.insert_subflow_run)."""

from __future__ import annotations

from typing import Any

from deployments.services.deployments import get_or_create_flow
from orchestrator.core.errors import ValidationError
from orchestrator.core.parameters import jsonable_parameters
from runs.models import FlowRun
from runs.services import insert_subflow_run


def create_subflow_run(
    parent: FlowRun,
    flow_name: str,
    *,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    task_key: str = "",
    dynamic_key: str = "0",
) -> FlowRun:
    """A child run of `parent` for flow `flow_name` with `parameters` (JSON values; the engine
    checks them against the function before the child starts). Raises ValidationError for a
    blank flow name or parameters that are not a JSON object, InvalidTransition when the parent
    is not RUNNING."""
    if parameters is not None and not isinstance(parameters, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected a JSON object."]})
    flow = get_or_create_flow(flow_name, description=description)
    run = insert_subflow_run(
        parent,
        flow_id=flow.pk,
        parameters=jsonable_parameters(parameters or {}),
        task_key=task_key or flow.name,
        dynamic_key=dynamic_key,
        flow_name=flow.name,
    )
    run.flow = flow
    return run
