"""Business rules of deployments."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from deployments.models import Deployment, Flow
from deployments.parameters import validate_parameters
from runs.errors import NotFound, ValidationError


def get_deployment(full_name: str) -> Deployment:
    """Find a deployment by `flow/deployment` name."""
    flow_name, sep, name = (full_name or "").partition("/")
    if not sep or not flow_name or not name:
        raise NotFound(f"{full_name!r} is not a deployment name; use FLOW/DEPLOYMENT.")
    try:
        return Deployment.objects.select_related("flow", "work_pool", "work_queue").get(
            flow__name=flow_name, name=name
        )
    except Deployment.DoesNotExist:
        raise NotFound(f"No deployment named {full_name!r}.") from None


def set_deployment_paused(deployment: Deployment, paused: bool) -> Deployment:
    """Pause or resume a deployment: a paused deployment gets no scheduled runs."""
    Deployment.objects.filter(pk=deployment.pk).update(paused=paused)
    deployment.paused = paused
    return deployment


def resolve_parameters(deployment: Deployment, overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameters a new run gets: the deployment's defaults overlaid with `overrides`.

    With `enforce_parameter_schema`, they are checked against the deployment's parameter schema
    and coerced ("3" for an integer becomes 3); parameters the flow does not take, required ones
    left out and values of the wrong type are refused with a message per parameter
    (ValidationError.errors)."""
    if not isinstance(overrides, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected an object."]})
    merged = {**(deployment.parameters or {}), **overrides}
    if not deployment.enforce_parameter_schema:
        return merged
    return validate_parameters(deployment.parameter_schema or {}, merged)


def get_or_create_flow(name: str, *, description: str = "") -> Flow:
    """The flow named `name`, created on first use (a script's first run). Two processes
    creating it at once both get the same row: the unique name decides."""
    name = (name or "").strip()
    if not name:
        raise ValidationError("A flow needs a name.", {"name": ["This field may not be blank."]})
    flow = Flow.objects.filter(name=name).first()
    if flow is not None:
        return flow
    try:
        with transaction.atomic():
            return Flow.objects.create(name=name, description=description)
    except IntegrityError:
        # Lost the race with another process creating the same flow: theirs is the row.
        return Flow.objects.get(name=name)
