"""What automations do when a run enters a state.

`fire_automations` is registered with runs.hooks, so it runs after the state change committed,
in whatever process made it; it never raises into set_state (hooks.fire logs what escapes).
Exactly once per matching transition: each firing inserts an AutomationFiring row unique per
(automation, state-history row) in the same transaction as its effect, and a run it starts
carries an idempotency key derived from the same pair. Notifications are sent by a Celery task
(automations.tasks) that retries a failing URL with exponential backoff.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from automations.models import ActionKind, Automation, AutomationFiring, FiringStatus
from deployments.services import create_flow_run
from orchestrator.core.errors import OrchestratorError
from orchestrator.mapping import map_parameters
from orchestrator.validation import save_validated, update_validated
from runs.hooks import StateChange
from runs.models import FlowRun

log = logging.getLogger(__name__)


class NotificationFailed(Exception):
    """The notification URL did not answer 2xx (or could not be reached)."""


def create_automation(**fields: Any) -> Automation:
    """Raises ValidationError naming each field the rules refuse (see Automation.Meta)."""
    return save_validated(Automation(**fields))


def update_automation(automation: Automation, **fields: Any) -> Automation:
    return update_validated(automation, **fields)


def event_for(run: FlowRun, change: StateChange) -> dict[str, Any]:
    """The JSON document describing a transition: the notice's body, and what an automation's
    parameter mapping reads ("$.flow_run.parameters.x")."""
    return {
        "flow_run": {
            "id": str(run.pk),
            "name": run.name,
            "deployment": str(run.deployment_id) if run.deployment_id else None,
            "flow": str(run.flow_id),
            "parameters": run.parameters,
            "tags": run.tags,
        },
        "state": {
            "id": change.state_id,
            "type": str(change.to_type),
            "name": change.to_name,
            "message": change.message,
            "from": str(change.from_type) if change.from_type else None,
        },
    }


def fire_automations(run: FlowRun, change: StateChange) -> None:
    """The runs.hooks hook: fire every automation matching this transition, each at most
    once. One automation's failure is recorded on its firing and does not stop the others."""
    if change.state_id is None:
        return
    for automation in Automation.objects.matching(run, change.to_type):
        try:
            fire_automation(automation, run, change)
        except Exception:
            log.exception("Automation %s failed on run %s (%s)", automation, run.pk, change.to_name)


def fire_automation(automation: Automation, run: FlowRun, change: StateChange) -> AutomationFiring | None:
    """Do what `automation` says for this transition. Returns the firing, or None when this
    transition already fired it (the unique row exists: another call got there first)."""
    event = event_for(run, change)
    assert change.state_id is not None, "set_state fires every change with its history row"
    try:
        with transaction.atomic():
            firing = AutomationFiring.objects.create(
                automation=automation, state_id=change.state_id, flow_run_id=run.pk
            )
            if automation.action == ActionKind.RUN_DEPLOYMENT:
                _run_deployment(automation, firing, event)
    except IntegrityError:
        return None
    if automation.action == ActionKind.NOTIFY:
        from automations.tasks import deliver_notification

        # Queued after the firing row committed; if the broker is down the row stays PENDING.
        deliver_notification.delay(firing.pk)
    return firing


def _run_deployment(automation: Automation, firing: AutomationFiring, event: dict[str, Any]) -> None:
    try:
        parameters = map_parameters(automation.parameters, event)
        created, _ = create_flow_run(
            automation.target_deployment,
            parameters=parameters,
            idempotency_key=f"automation:{automation.pk}:{firing.state_id}",
            created_by=f"automation:{automation.name}",
        )
    except OrchestratorError as error:
        firing.status, firing.last_error = FiringStatus.FAILED, str(error)
    else:
        firing.status, firing.created_run = FiringStatus.DONE, created
    firing.attempts, firing.finished_at = 1, timezone.now()
    firing.save(update_fields=["status", "last_error", "created_run", "attempts", "finished_at"])


def backoff_seconds(retries_done: int) -> float:
    """How long to wait before the next try of a notification: base * 2**retries, capped."""
    base = settings.NOTIFICATION_BACKOFF_SECONDS
    return float(min(settings.NOTIFICATION_BACKOFF_MAX_SECONDS, base * 2**retries_done))


def deliver_notification(firing_id: int) -> bool:
    """POST the firing's notice to its automation's URL, once. Returns True when delivered
    (now or before: safe to call twice); raises NotificationFailed otherwise, with the attempt
    recorded. The receiver may deduplicate on the Idempotency-Key header (the firing's id)."""
    firing = AutomationFiring.objects.select_related("automation", "flow_run", "state").filter(pk=firing_id).first()
    if firing is None or firing.status == FiringStatus.DONE:
        return True
    state = firing.state
    change = StateChange(firing.flow_run_id, None, state.type, state.name, state.message, state_id=state.pk)
    body = {"automation": firing.automation.name, **event_for(firing.flow_run, change)}
    body["state"]["timestamp"] = state.timestamp.isoformat()
    AutomationFiring.objects.filter(pk=firing.pk).update(attempts=firing.attempts + 1)
    try:
        response = requests.post(
            firing.automation.url,
            json=body,
            timeout=settings.NOTIFICATION_TIMEOUT_SECONDS,
            headers={"Idempotency-Key": f"automation-firing-{firing.pk}"},
        )
    except requests.RequestException as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        if response.ok:
            AutomationFiring.objects.filter(pk=firing.pk).update(
                status=FiringStatus.DONE, last_error="", finished_at=timezone.now()
            )
            return True
        problem = f"HTTP {response.status_code}: {response.text[:200]}"
    AutomationFiring.objects.filter(pk=firing.pk).update(last_error=problem)
    raise NotificationFailed(problem)


def give_up_notification(firing_id: int) -> None:
    """No more tries: the firing is FAILED (its last_error says why)."""
    AutomationFiring.objects.filter(pk=firing_id, status=FiringStatus.PENDING).update(
        status=FiringStatus.FAILED, finished_at=timezone.now()
    )
