"""Pausing a run for input, and resuming it.

- pause (`pause_flow_run` in a flow): the run goes PAUSED/Paused and its process keeps waiting
  (heartbeating) until someone resumes it (-> RUNNING) or its timeout passes;
- suspend (`suspend_flow_run`): PAUSED/Suspended and the process exits; resuming makes the run
  SCHEDULED for a worker, whose run of the flow finds the input given and carries on.

Each pause of a run has a key (the n-th pause of the flow, unless the flow names it), so a
suspended flow that starts over finds the input given for the pause it reaches again. The input
is checked against the JSON schema of the model the flow asked for; errors name the fields.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.core.errors import InvalidTransition, NotFound, ValidationError
from orchestrator.core.parameters import validate_parameters
from orchestrator.core.states import SUSPENDED_STATE_NAME, StateType
from runs.models import FlowRun, FlowRunInput
from runs.services.state import set_state

S = StateType
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600


def pause_flow_run(
    run: FlowRun,
    *,
    key: str,
    schema: dict[str, Any] | None = None,
    timeout_seconds: float = 3600,
    suspend: bool = False,
    description: str = "",
) -> FlowRunInput:
    """Pause the RUNNING run `run` for input under `key` (returned). When input was already
    given for that key (a suspended flow starting over), the run is not paused again and the
    input comes back with its value. Suspending needs a deployment run (a worker resumes it)."""
    if not key or len(key) > 100:
        raise ValidationError("A pause needs a key of at most 100 characters.", {"key": ["Give a key."]})
    if not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise ValidationError(
            "A pause's timeout is more than 0 seconds and at most 30 days.", {"timeout_seconds": ["Out of range."]}
        )
    if schema is not None and not isinstance(schema, dict):
        raise ValidationError("The input schema is a JSON schema object.", {"schema": ["Expected an object."]})
    given = FlowRunInput.objects.filter(flow_run=run, key=key, provided_at__isnull=False).first()
    if given is not None:
        return given
    if suspend and run.deployment_id is None:
        raise ValidationError(
            "Only a deployment's run can be suspended (a worker runs it again once resumed): use pause_flow_run.",
            {"suspend": ["This run has no deployment."]},
        )
    timeout_at = timezone.now() + timedelta(seconds=timeout_seconds)
    with transaction.atomic():
        try:
            request, _ = FlowRunInput.objects.update_or_create(
                flow_run=run,
                key=key,
                defaults={"schema": schema, "timeout_at": timeout_at, "description": description or ""},
            )
        except IntegrityError:
            raise ValidationError(f"The run is already paused under the key {key!r}.", {"key": ["Taken."]}) from None
        name = SUSPENDED_STATE_NAME if suspend else "Paused"
        set_state(run, S.PAUSED, name=name, expected=S.RUNNING, message=_waiting_message(request, suspend))
        if suspend:  # no process holds it any more: the worker lets go
            FlowRun.objects.filter(pk=run.pk).update(worker=None, pid=None)
            run.worker_id, run.pid = None, None
    return request


def _waiting_message(request: FlowRunInput, suspend: bool) -> str:
    what = "input" if request.schema else "to be resumed"
    verb = "Suspended" if suspend else "Paused"
    return f"{verb}, waiting for {what} until {request.timeout_at:%Y-%m-%d %H:%M:%S} UTC."


def waiting_input(run: FlowRun) -> FlowRunInput | None:
    """The input a PAUSED run waits for (None for a run that is not paused)."""
    if run.state_type != S.PAUSED:
        return None
    return FlowRunInput.objects.filter(flow_run=run, provided_at__isnull=True).order_by("-id").first()


def read_flow_run_input(run: FlowRun, key: str) -> FlowRunInput:
    found = FlowRunInput.objects.filter(flow_run=run, key=key).first()
    if found is None:
        raise NotFound(f"Flow run {run.name!r} has no pause {key!r}.")
    return found


def resume_flow_run(run: FlowRun, *, value: Any = None, by: str) -> FlowRun:
    """Resume the PAUSED run `run`, with `value` for the input it waits for (checked against
    its schema: ValidationError naming the fields). A Paused run goes back to RUNNING in its
    process; a Suspended one to SCHEDULED, for a worker to run again. InvalidTransition for a
    run that is not paused."""
    request = waiting_input(run)
    if run.state_type != S.PAUSED or request is None:
        raise InvalidTransition(run.state_type, S.RUNNING, f"flow run {run.name!r} is not paused")
    if request.schema:
        if value is None:
            raise ValidationError("This run waits for input.", {"input": ["Give the input the flow asks for."]})
        value = validate_parameters(request.schema, value)
    now = timezone.now()
    with transaction.atomic():
        FlowRunInput.objects.filter(pk=request.pk).update(value=value, provided_at=now, provided_by=by[:200])
        if run.state_name == SUSPENDED_STATE_NAME:
            set_state(run, S.SCHEDULED, expected=S.PAUSED, message=f"Resumed by {by}", scheduled_at=now)
        else:
            set_state(run, S.RUNNING, expected=S.PAUSED, message=f"Resumed by {by}")
    return run


def fail_expired_pauses(now: Any = None) -> int:
    """Fail the PAUSED runs whose pause timed out (a Paused run's own process does so too; a
    Suspended run has none, and a Paused one may have died). Returns how many it failed."""
    now = now or timezone.now()
    failed = 0
    expired = FlowRunInput.objects.filter(
        provided_at__isnull=True, timeout_at__lte=now, flow_run__state_type=S.PAUSED
    ).select_related("flow_run")
    for request in expired:
        run = request.flow_run
        waited = (request.timeout_at - request.created_at).total_seconds()
        message = f"The run timed out after waiting {waited:g} s for {'input' if request.schema else 'a resume'}."
        try:
            set_state(run, S.FAILED, expected=S.PAUSED, message=message, retry=False)
        except InvalidTransition:  # resumed or cancelled meanwhile
            continue
        failed += 1
    return failed
