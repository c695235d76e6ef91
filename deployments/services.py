"""Business rules of deployments."""

from __future__ import annotations

from typing import Any

from deployments.models import Deployment
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

    With `enforce_parameter_schema`, parameters the flow does not take and required ones left
    out are refused with a message per parameter (ValidationError.errors)."""
    if not isinstance(overrides, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected an object."]})
    merged = {**(deployment.parameters or {}), **overrides}
    schema = deployment.parameter_schema or {}
    if not deployment.enforce_parameter_schema or "properties" not in schema:
        return merged
    errors: dict[str, list[str]] = {}
    properties = schema.get("properties", {})
    if not schema.get("additionalProperties", False):
        for key in merged:
            if key not in properties:
                errors[key] = [f"The flow takes no parameter {key!r}."]
    for key in schema.get("required", []):
        if key not in merged:
            errors[key] = ["This parameter is required."]
    if errors:
        first_key = next(iter(errors))
        raise ValidationError(f"Invalid parameter {first_key!r}: {errors[first_key][0]}", errors)
    return merged
