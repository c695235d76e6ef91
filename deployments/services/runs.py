"""Runs of a deployment: parameters merged with the deployment's defaults and checked against its
schema, tags, and the work queue the run is routed to; then inserted by runs.services.creation."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from accounts import audit
from deployments.models import Deployment
from orchestrator.core.errors import ValidationError
from orchestrator.core.parameters import validate_parameters
from orchestrator.input_policy import check_json
from runs.models import FlowRun
from runs.services.creation import insert_flow_run, new_flow_run
from runs.services.state import S, set_state
from workpools.services import route_to_queue


def create_flow_run(
    deployment: Any,
    *,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    name: str | None = None,
    scheduled_at: datetime | None = None,
    idempotency_key: str | None = None,
    created_by: str = "",
    job_variables: dict[str, Any] | None = None,
) -> tuple[FlowRun, bool]:
    """Create a SCHEDULED run of `deployment`. Returns (run, created).

    Parameters are the deployment's defaults overlaid with the caller's and checked against the
    deployment's parameter schema (ValidationError with a message per parameter). The run is
    routed to the deployment's queue, else the best-matching queue of its pool. With an
    idempotency key, a repeat returns the existing run and created=False, also when two callers
    race: the database's unique (deployment, idempotency_key) constraint decides.
    """
    if idempotency_key:
        existing = FlowRun.objects.filter(deployment=deployment, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    fields = _deployment_run_fields(deployment, parameters=parameters, tags=tags)
    if job_variables:
        from workpools.infrastructure.templates import check_for_pool

        # Checked against the pool's template: a run's job variables override the deployment's.
        fields["job_variables"] = check_for_pool(deployment.work_pool, job_variables)
    try:
        with transaction.atomic():
            run = insert_flow_run(
                name=name,
                scheduled_at=scheduled_at,
                idempotency_key=idempotency_key or None,
                created_by=created_by,
                **fields,
            )
            audit.record(
                "flow_run.create", run, after={"deployment": deployment.full_name, "parameters": run.parameters}
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # Lost a race with a caller using the same key: theirs is the run.
        return FlowRun.objects.get(deployment=deployment, idempotency_key=idempotency_key), False
    # Rows the caller loaded already (the API selects them with the deployment): answering with
    # the new run then costs no query for them.
    for relation in ("flow", "work_pool"):
        field = type(deployment)._meta.get_field(relation)
        if field.is_cached(deployment):
            setattr(run, relation, getattr(deployment, relation))
    return run, True


def build_flow_runs(
    deployment: Any,
    starts: Iterable[datetime],
    *,
    parameters: dict[str, Any] | None = None,
    queues: Iterable[Any] | None = None,
    created_by: str = "",
    **fields: Any,
) -> list[FlowRun]:
    """Unsaved SCHEDULED runs of `deployment`, one per start time, under the rules of
    create_flow_run applied once for all of them: parameters merged and checked against the
    schema (ValidationError), tags, routing (`queues`: the pool's queues when the caller has
    loaded them already). `fields` sets further columns (schedule_slug, ...). Save them with
    insert_flow_runs."""
    common = _deployment_run_fields(deployment, parameters=parameters, queues=queues)
    return [new_flow_run(name=None, scheduled_at=start, created_by=created_by, **common, **fields) for start in starts]


def _deployment_run_fields(
    deployment: Any,
    *,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    queues: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """What every run of `deployment` takes from it: merged, schema-checked parameters, tags
    and the work queue it is routed to."""
    return {
        "flow_id": deployment.flow_id,
        "deployment": deployment,
        "work_pool_id": deployment.work_pool_id,
        "work_queue": route_to_queue(deployment, queues=queues) if deployment.work_pool_id else None,
        "parameters": resolve_parameters(deployment, parameters or {}),
        "tags": list(dict.fromkeys([*(deployment.tags or []), *(tags or [])])),
    }


def create_local_flow_run(
    deployment: Any, *, parameters: dict[str, Any] | None = None, created_by: str = "cli"
) -> FlowRun:
    """A run of `deployment` to execute right here (`deployment execute`), without a worker.

    It is created and moved to PENDING in one transaction, so a worker polling the deployment's
    pool never sees it SCHEDULED and cannot claim it first. Raises ValidationError for bad
    parameters, like create_flow_run."""
    with transaction.atomic():
        run, _ = create_flow_run(deployment, parameters=parameters, created_by=created_by)
        return set_state(run, S.PENDING, message="Executing locally, without a worker")


def resolve_parameters(deployment: Deployment, overrides: dict[str, Any]) -> dict[str, Any]:
    """The parameters a new run gets: the deployment's defaults overlaid with `overrides`.

    With `enforce_parameter_schema`, they are checked against the deployment's parameter schema
    and coerced ("3" for an integer becomes 3); parameters the flow does not take, required ones
    left out and values of the wrong type are refused with a message per parameter
    (ValidationError.errors)."""
    if not isinstance(overrides, dict):
        raise ValidationError("Parameters must be a JSON object.", {"parameters": ["Expected an object."]})
    # Too deep, a NUL, a lone surrogate: refused before anything walks the values.
    check_json(overrides, field="parameters")
    merged = {**(deployment.parameters or {}), **overrides}
    if deployment.enforce_parameter_schema:
        merged = validate_parameters(deployment.parameter_schema or {}, merged)
    _require_json(merged)
    return merged


def _require_json(parameters: dict[str, Any]) -> None:
    """Parameters are stored as JSON: NaN and Infinity are not JSON (PostgreSQL refuses them),
    so they are refused here, naming the parameter, whatever surface sent them."""
    for key, value in parameters.items():
        try:
            json.dumps(value, allow_nan=False)
        except (ValueError, TypeError) as error:
            reason = "must be a finite number" if isinstance(error, ValueError) else "is not JSON data"
            raise ValidationError(
                f"Invalid parameter {key!r}: it {reason}.", {key: [f"This value {reason}."]}
            ) from None
