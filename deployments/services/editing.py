"""Editing a deployment after it was deployed (the API's PATCH, the admin): the same checks
`deploy` makes, so no surface can store defaults that every later run would refuse."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts import audit
from deployments.models import Deployment
from deployments.services.schedules import reschedule_deployment
from orchestrator.core.errors import ValidationError
from orchestrator.core.parameters import validate_parameters
from orchestrator.validation import save_validated

# Fields whose change alters the runs a deployment's schedules already made.
RUN_FIELDS = ("parameters", "tags", "work_pool_id", "work_queue_id", "job_variables", "enforce_parameter_schema")


def check_default_parameters(schema: dict[str, Any], parameters: Any, *, enforce: bool = True) -> dict[str, Any]:
    """A deployment's default parameters checked against its flow's parameter schema and coerced
    ("3" for an integer becomes 3). Required parameters may be left to each run, so only what is
    given is checked. With `enforce` off (the deployment does not enforce its schema) they are
    kept as given. Raises ValidationError({"parameters": [...]}) naming the bad parameter."""
    if not isinstance(parameters, dict):
        raise ValidationError("Default parameters must be a JSON object.", {"parameters": ["Expected a JSON object."]})
    if not enforce:
        return dict(parameters)
    try:
        return validate_parameters({**(schema or {}), "required": []}, parameters)
    except ValidationError as error:
        raise ValidationError(str(error), {"parameters": [str(error)]}) from None


def update_deployment(deployment: Deployment, **fields: Any) -> Deployment:
    """Change a deployment's editable fields (description, parameters, tags, job variables,
    concurrency limit, ...). Default parameters are checked against the schema first; when what
    its runs copy changed, its not-yet-started scheduled runs are replaced. Raises
    ValidationError (field -> messages) and then saves nothing."""
    if "parameters" in fields:
        enforce = fields.get("enforce_parameter_schema", deployment.enforce_parameter_schema)
        schema = fields.get("parameter_schema", deployment.parameter_schema)
        fields["parameters"] = check_default_parameters(schema, fields["parameters"], enforce=enforce)
    before = {name: getattr(deployment, name) for name in RUN_FIELDS}
    changed_before, changed_after = audit.changes(deployment, fields)
    with transaction.atomic():
        for name, value in fields.items():
            setattr(deployment, name, value)
        save_validated(deployment)
        if changed_after:
            audit.record("deployment.update", deployment, before=changed_before, after=changed_after)
        if any(getattr(deployment, name) != value for name, value in before.items()):
            reschedule_deployment(deployment)
    return deployment
