"""Webhooks in: a POST to /hooks/<slug>/ creates a run of the webhook's deployment."""

from __future__ import annotations

import hashlib
from typing import Any

from deployments.models import Deployment, Webhook
from deployments.services import create_flow_run
from orchestrator.core.errors import NotFound, ValidationError
from orchestrator.mapping import map_parameters
from orchestrator.validation import save_validated
from runs.models import FlowRun


def create_webhook(
    deployment: Deployment, *, name: str, parameter_mapping: dict[str, Any] | None = None, active: bool = True
) -> Webhook:
    """A new webhook with a fresh secret slug. Raises ValidationError (taken name, bad mapping)."""
    return save_validated(
        Webhook(deployment=deployment, name=name, parameter_mapping=parameter_mapping or {}, active=active)
    )


def receive_webhook(slug: str, body: Any, *, delivery_id: str | None = None) -> tuple[FlowRun, bool]:
    """Create a run for a delivery to webhook `slug`. Returns (run, created).

    With a delivery id (the sender's Idempotency-Key or delivery header), a repeated delivery
    returns the run the first one made: the key is derived from the webhook and the id.
    Raises NotFound for an unknown or inactive slug and ValidationError for a body the mapping
    cannot read (and for parameters the deployment refuses)."""
    webhook = Webhook.objects.select_related("deployment").filter(slug=slug, active=True).first()
    if webhook is None:
        raise NotFound("No such webhook.")
    if webhook.parameter_mapping and not isinstance(body, (dict, list)):
        raise ValidationError("The body must be a JSON object.", {"body": ["Expected a JSON object."]})
    parameters = map_parameters(webhook.parameter_mapping, body)
    key = None
    if delivery_id:
        key = f"webhook:{webhook.pk}:{hashlib.sha256(delivery_id.encode()).hexdigest()[:40]}"
    return create_flow_run(
        webhook.deployment, parameters=parameters, idempotency_key=key, created_by=f"webhook:{webhook.name}"
    )
